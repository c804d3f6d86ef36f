/*
 * jwt: verification. Order of checks: shape and sizes, header (alg against
 * the key), signature, and only then the claims, so nothing from an
 * unauthenticated payload is acted on.
 */
#include "middleware/jwt.h"

#include <jansson.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/b64.h"
#include "base/banned.h"

#define MAX_HEADER_JSON  1024
#define MAX_PAYLOAD_JSON 4096
#define MAX_SIG          (JWKS_MAX_RSA_BITS / 8)

struct jwt_verifier {
    uint64_t id; /* tells readers of different verifiers apart */
    unsigned char *hs256_secret;
    size_t hs256_secret_len;
    char *issuer;
    char *audience;
    int64_t leeway_s;
    bool require_exp;
    jwks_t *static_keys;
    bool dynamic;
    void (*on_unknown_kid)(void *arg);
    void *on_unknown_kid_arg;
    EVP_MD *sha256; /* fetched once, not per verification */

    /* The dynamic set: `current` only under `lock`; `gen` is what the hot
       path reads (see the header). Starts at 1; claims carry 0 never. */
    pthread_mutex_t lock;
    jwks_t *current;
    _Atomic uint64_t gen;
    _Atomic bool loaded;
};

/* One per thread: its own reference to one verifier's dynamic set. */
typedef struct {
    uint64_t verifier_id;
    uint64_t gen;
    jwks_t *keys;
} reader_t;

static _Atomic uint64_t next_verifier_id = 1;
static _Thread_local reader_t *tl_reader;
static pthread_key_t reader_key;
static pthread_once_t reader_once = PTHREAD_ONCE_INIT;

static void reader_free(void *p)
{
    reader_t *r = p;
    jwks_unref(r->keys);
    free(r);
}

static void reader_key_init(void)
{
    /* The destructor drops a worker's reference when its thread exits. */
    if (pthread_key_create(&reader_key, reader_free) != 0) {
        abort(); /* only fails when the process is out of keys or memory at start */
    }
}

/* The dynamic set for this thread, refreshed if a swap happened. NULL when
   no set has arrived, or when out of memory (then no dynamic key matches). */
static const jwks_t *dynamic_keys(const jwt_verifier_t *cv)
{
    jwt_verifier_t *v = (jwt_verifier_t *)cv; /* the lock is the only mutable part */
    uint64_t gen = atomic_load_explicit(&v->gen, memory_order_acquire);
    reader_t *r = tl_reader;
    if (r != NULL && r->verifier_id == v->id && r->gen == gen) {
        return r->keys;
    }
    if (r == NULL) {
        pthread_once(&reader_once, reader_key_init);
        r = calloc(1, sizeof(*r));
        if (r == NULL || pthread_setspecific(reader_key, r) != 0) {
            free(r);
            return NULL;
        }
        tl_reader = r;
    }
    pthread_mutex_lock(&v->lock);
    jwks_t *keys = v->current ? jwks_ref(v->current) : NULL;
    gen = atomic_load_explicit(&v->gen, memory_order_relaxed);
    pthread_mutex_unlock(&v->lock);
    jwks_t *old = r->keys;
    *r = (reader_t){.verifier_id = v->id, .gen = gen, .keys = keys};
    jwks_unref(old);
    return keys;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

jwt_verifier_t *jwt_verifier_new(const jwt_verifier_opts_t *opts)
{
    jwt_verifier_t *v = calloc(1, sizeof(*v));
    if (v == NULL) {
        return NULL;
    }
    v->id = atomic_fetch_add(&next_verifier_id, 1);
    pthread_mutex_init(&v->lock, NULL);
    atomic_init(&v->gen, 1);
    atomic_init(&v->loaded, false);
    if (opts->hs256_secret != NULL) {
        v->hs256_secret = malloc(opts->hs256_secret_len);
        if (v->hs256_secret == NULL) {
            jwt_verifier_free(v);
            return NULL;
        }
        memcpy(v->hs256_secret, opts->hs256_secret, opts->hs256_secret_len);
        v->hs256_secret_len = opts->hs256_secret_len;
    }
    v->issuer = dup_or_null(opts->issuer);
    v->audience = dup_or_null(opts->audience);
    v->leeway_s = opts->leeway_s > 0 ? opts->leeway_s : 0;
    v->require_exp = opts->require_exp;
    v->static_keys = opts->static_keys ? jwks_ref(opts->static_keys) : NULL;
    v->dynamic = opts->dynamic_keys;
    v->on_unknown_kid = opts->on_unknown_kid;
    v->on_unknown_kid_arg = opts->on_unknown_kid_arg;
    v->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (v->sha256 == NULL || (opts->issuer && !v->issuer) || (opts->audience && !v->audience)) {
        jwt_verifier_free(v);
        return NULL;
    }
    return v;
}

void jwt_verifier_free(jwt_verifier_t *v)
{
    if (v == NULL) {
        return;
    }
    /* The calling thread's reference; other threads dropped theirs when
       they exited, or drop them then. */
    reader_t *r = tl_reader;
    if (r != NULL && r->verifier_id == v->id) {
        jwks_unref(r->keys);
        *r = (reader_t){0};
    }
    if (v->hs256_secret != NULL) {
        OPENSSL_cleanse(v->hs256_secret, v->hs256_secret_len);
        free(v->hs256_secret);
    }
    free(v->issuer);
    free(v->audience);
    jwks_unref(v->static_keys);
    jwks_unref(v->current);
    pthread_mutex_destroy(&v->lock);
    EVP_MD_free(v->sha256);
    free(v);
}

void jwt_verifier_set_keys(jwt_verifier_t *v, jwks_t *keys)
{
    if (keys != NULL) {
        jwks_ref(keys);
    }
    pthread_mutex_lock(&v->lock);
    jwks_t *old = v->current;
    bool same = old != NULL && keys != NULL && jwks_equal(old, keys);
    if (same) {
        old = keys; /* keep the installed set and its generation */
    } else {
        v->current = keys;
        atomic_fetch_add_explicit(&v->gen, 1, memory_order_release);
    }
    pthread_mutex_unlock(&v->lock);
    atomic_store(&v->loaded, true);
    jwks_unref(old);
}

bool jwt_verifier_has_dynamic_keys(const jwt_verifier_t *v)
{
    return atomic_load(&v->loaded);
}

uint64_t jwt_verifier_generation(const jwt_verifier_t *v)
{
    return atomic_load_explicit(&((jwt_verifier_t *)v)->gen, memory_order_acquire);
}

int64_t jwt_add_sat(int64_t a, int64_t b)
{
    int64_t r;
    if (__builtin_add_overflow(a, b, &r)) {
        return b > 0 ? INT64_MAX : INT64_MIN;
    }
    return r;
}

const char *jwt_error_text(jwt_error_t e)
{
    switch (e) {
    case JWT_OK:
        return "ok";
    case JWT_MALFORMED:
        return "the token is not a well-formed JWT";
    case JWT_UNSUPPORTED_ALG:
        return "the token's algorithm is not accepted";
    case JWT_UNKNOWN_KEY:
        return "the token's signing key is unknown";
    case JWT_BAD_SIGNATURE:
        return "the token's signature is invalid";
    case JWT_EXPIRED:
        return "the token has expired";
    case JWT_NOT_YET_VALID:
        return "the token is not valid yet";
    case JWT_BAD_ISSUER:
        return "the token's issuer is not accepted";
    case JWT_BAD_AUDIENCE:
        return "the token is not meant for this audience";
    case JWT_BAD_CLAIMS:
        return "the token's claims are invalid";
    case JWT_NO_EXPIRY:
        return "the token has no expiry time";
    }
    return "invalid token";
}

/* Decodes a base64url segment and parses it as a JSON object. */
static json_t *decode_json_segment(str_t seg, size_t max)
{
    if (seg.len == 0 || b64url_decoded_max(seg.len) > max) {
        return NULL;
    }
    uint8_t buf[MAX_PAYLOAD_JSON];
    size_t n;
    if (b64url_decode(seg, buf, &n) != 0) {
        return NULL;
    }
    json_t *j = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, NULL);
    if (j != NULL && !json_is_object(j)) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* NumericDate (RFC 7519 section 2): integer or fractional seconds. */
static int get_time(json_t *claims, const char *name, int64_t *out, bool *present)
{
    json_t *v = json_object_get(claims, name);
    *present = v != NULL;
    if (v == NULL) {
        return 0;
    }
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_real(v) && isfinite(json_real_value(v)) && fabs(json_real_value(v)) < 1e15) {
        *out = (int64_t)floor(json_real_value(v));
        return 0;
    }
    return -1;
}

static bool audience_matches(json_t *aud, const char *want)
{
    if (json_is_string(aud)) {
        return strcmp(json_string_value(aud), want) == 0;
    }
    if (json_is_array(aud)) {
        size_t i;
        json_t *x;
        json_array_foreach(aud, i, x)
        {
            if (json_is_string(x) && strcmp(json_string_value(x), want) == 0) {
                return true;
            }
        }
    }
    return false;
}

static jwt_error_t check_claims(const jwt_verifier_t *v, json_t *c, int64_t now_s, jwt_claims_t *out)
{
    int64_t exp = 0, nbf = 0;
    bool has_exp, has_nbf;
    if (get_time(c, "exp", &exp, &has_exp) != 0 || get_time(c, "nbf", &nbf, &has_nbf) != 0) {
        return JWT_BAD_CLAIMS;
    }
    if (!has_exp && v->require_exp) {
        return JWT_NO_EXPIRY;
    }
    /* RFC 7519 4.1.4: reject on or after exp (plus leeway); the sums
       saturate, so an exp near INT64_MAX is "never", not a wrap-around. */
    if (has_exp && now_s >= jwt_add_sat(exp, v->leeway_s)) {
        return JWT_EXPIRED;
    }
    if (has_nbf && jwt_add_sat(now_s, v->leeway_s) < nbf) {
        return JWT_NOT_YET_VALID;
    }
    if (v->issuer != NULL) {
        json_t *iss = json_object_get(c, "iss");
        if (!json_is_string(iss) || strcmp(json_string_value(iss), v->issuer) != 0) {
            return JWT_BAD_ISSUER;
        }
    }
    if (v->audience != NULL && !audience_matches(json_object_get(c, "aud"), v->audience)) {
        return JWT_BAD_AUDIENCE;
    }
    out->has_exp = has_exp;
    out->has_nbf = has_nbf;
    out->exp = exp;
    out->nbf = nbf;

    json_t *sub = json_object_get(c, "sub");
    out->sub_len = 0;
    if (sub != NULL) {
        if (!json_is_string(sub) || json_string_length(sub) == 0 || json_string_length(sub) > JWT_MAX_SUB) {
            return JWT_BAD_CLAIMS;
        }
        out->sub_len = json_string_length(sub);
        memcpy(out->sub, json_string_value(sub), out->sub_len);
    }
    out->sub[out->sub_len] = '\0';

    /* "scope" is a space-separated string (RFC 8693 4.2); some servers send
       an array ("scp"-style), which is accepted and joined. */
    json_t *scope = json_object_get(c, "scope");
    out->scope_len = 0;
    if (json_is_string(scope)) {
        if (json_string_length(scope) > JWT_MAX_SCOPE) {
            return JWT_BAD_CLAIMS;
        }
        out->scope_len = json_string_length(scope);
        memcpy(out->scope, json_string_value(scope), out->scope_len);
    } else if (json_is_array(scope)) {
        size_t i;
        json_t *x;
        json_array_foreach(scope, i, x)
        {
            if (!json_is_string(x)) {
                return JWT_BAD_CLAIMS;
            }
            size_t n = json_string_length(x);
            if (out->scope_len + n + 1 > JWT_MAX_SCOPE) {
                return JWT_BAD_CLAIMS;
            }
            if (out->scope_len > 0) {
                out->scope[out->scope_len++] = ' ';
            }
            memcpy(out->scope + out->scope_len, json_string_value(x), n);
            out->scope_len += n;
        }
    } else if (scope != NULL) {
        return JWT_BAD_CLAIMS;
    }
    out->scope[out->scope_len] = '\0';
    return JWT_OK;
}

/* The key a token's header names, or why there is none. */
static jwt_error_t select_key(const jwt_verifier_t *v, json_t *header, jwt_alg_t *alg, const jwks_key_t **key)
{
    json_t *a = json_object_get(header, "alg");
    json_t *kid = json_object_get(header, "kid");
    if (kid != NULL && !json_is_string(kid)) {
        return JWT_MALFORMED;
    }
    const char *name = json_string_value(a);
    *key = NULL;
    if (strcmp(name, "HS256") == 0) {
        *alg = JWT_ALG_HS256;
        /* No secret, no HS256: the JWKS keys are never HMAC keys. */
        return v->hs256_secret != NULL ? JWT_OK : JWT_UNSUPPORTED_ALG;
    }
    if (strcmp(name, "RS256") == 0) {
        *alg = JWT_ALG_RS256;
    } else if (strcmp(name, "ES256") == 0) {
        *alg = JWT_ALG_ES256;
    } else {
        return JWT_UNSUPPORTED_ALG; /* none, HS384, PS256, EdDSA, ... */
    }
    if (v->static_keys == NULL && !v->dynamic) {
        return JWT_UNSUPPORTED_ALG;
    }
    if (kid == NULL) {
        return JWT_UNKNOWN_KEY; /* keys are chosen by kid only */
    }
    str_t k = str_make(json_string_value(kid), json_string_length(kid));
    *key = jwks_find(v->static_keys, k);
    if (*key == NULL && v->dynamic) {
        *key = jwks_find(dynamic_keys(v), k);
        if (*key == NULL && v->on_unknown_kid != NULL) {
            v->on_unknown_kid(v->on_unknown_kid_arg);
        }
    }
    if (*key == NULL) {
        return JWT_UNKNOWN_KEY;
    }
    /* RFC 8725 3.1: the key's algorithm, not the token's, decides. */
    return (*key)->alg == *alg ? JWT_OK : JWT_UNSUPPORTED_ALG;
}

static bool hs256_ok(const jwt_verifier_t *v, str_t signing_input, const uint8_t *sig, size_t siglen)
{
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (HMAC(v->sha256, v->hs256_secret, (int)v->hs256_secret_len, (const unsigned char *)signing_input.ptr,
             signing_input.len, mac, &maclen) == NULL) {
        return false;
    }
    return siglen == maclen && CRYPTO_memcmp(sig, mac, maclen) == 0;
}

jwt_error_t jwt_verify(const jwt_verifier_t *v, str_t token, int64_t now_s, jwt_claims_t *claims)
{
    if (token.len == 0 || token.len > JWT_MAX_TOKEN) {
        return JWT_MALFORMED;
    }
    const char *dot1 = memchr(token.ptr, '.', token.len);
    if (dot1 == NULL) {
        return JWT_MALFORMED;
    }
    size_t rest = token.len - (size_t)(dot1 + 1 - token.ptr);
    const char *dot2 = memchr(dot1 + 1, '.', rest);
    if (dot2 == NULL || memchr(dot2 + 1, '.', token.len - (size_t)(dot2 + 1 - token.ptr)) != NULL) {
        return JWT_MALFORMED;
    }
    str_t h64 = str_make(token.ptr, (size_t)(dot1 - token.ptr));
    str_t p64 = str_make(dot1 + 1, (size_t)(dot2 - dot1 - 1));
    str_t s64 = str_make(dot2 + 1, token.len - (size_t)(dot2 + 1 - token.ptr));
    str_t signing_input = str_make(token.ptr, (size_t)(dot2 - token.ptr));
    /* Read before the keys: a claim verified under a set that is swapped
       meanwhile then looks stale to the cache, never the other way round. */
    uint64_t gen = atomic_load_explicit(&v->gen, memory_order_acquire);

    jwt_error_t rc = JWT_MALFORMED;
    json_t *header = decode_json_segment(h64, MAX_HEADER_JSON);
    json_t *payload = NULL;
    if (header == NULL) {
        goto out;
    }
    json_t *alg = json_object_get(header, "alg");
    json_t *typ = json_object_get(header, "typ");
    if (!json_is_string(alg) || (typ != NULL && !json_is_string(typ))) {
        goto out;
    }
    /* RFC 7515 4.1.11: we implement no extensions, so any "crit" is fatal. */
    if (json_object_get(header, "crit") != NULL) {
        rc = JWT_UNSUPPORTED_ALG;
        goto out;
    }
    jwt_alg_t which;
    const jwks_key_t *key;
    rc = select_key(v, header, &which, &key);
    if (rc != JWT_OK) {
        goto out;
    }
    rc = JWT_MALFORMED;
    uint8_t sig[MAX_SIG];
    size_t siglen;
    if (s64.len == 0 || s64.len > b64url_encoded_len(sizeof(sig)) || b64url_decode(s64, sig, &siglen) != 0) {
        goto out;
    }
    bool good = which == JWT_ALG_HS256 ? hs256_ok(v, signing_input, sig, siglen)
                                       : jwks_verify(key, v->sha256, signing_input, sig, siglen);
    if (!good) {
        rc = JWT_BAD_SIGNATURE;
        goto out;
    }
    payload = decode_json_segment(p64, MAX_PAYLOAD_JSON);
    if (payload == NULL) {
        goto out;
    }
    rc = check_claims(v, payload, now_s, claims);
    claims->keys_gen = gen;
out:
    json_decref(header);
    json_decref(payload);
    return rc;
}

bool jwt_claims_current(const jwt_verifier_t *v, const jwt_claims_t *c, int64_t now_s)
{
    if (c->keys_gen != atomic_load_explicit(&v->gen, memory_order_acquire)) {
        return false; /* its key may have left the set: verify again */
    }
    if (v->require_exp && !c->has_exp) {
        return false;
    }
    if (c->has_exp && now_s >= jwt_add_sat(c->exp, v->leeway_s)) {
        return false;
    }
    return !c->has_nbf || jwt_add_sat(now_s, v->leeway_s) >= c->nbf;
}

bool jwt_scope_has(str_t scopes, str_t want)
{
    size_t i = 0;
    while (i < scopes.len) {
        while (i < scopes.len && scopes.ptr[i] == ' ') {
            i++;
        }
        size_t start = i;
        while (i < scopes.len && scopes.ptr[i] != ' ') {
            i++;
        }
        if (i > start && str_eq(str_make(scopes.ptr + start, i - start), want)) {
            return true;
        }
    }
    return false;
}
