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
#include <stdlib.h>
#include <string.h>

#include "base/b64.h"
#include "base/banned.h"

#define MAX_HEADER_JSON  1024
#define MAX_PAYLOAD_JSON 4096

struct jwt_verifier {
    unsigned char *hs256_secret;
    size_t hs256_secret_len;
    char *issuer;
    char *audience;
    int64_t leeway_s;
    EVP_MD *sha256; /* fetched once, not per verification */
};

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
    if (opts->hs256_secret != NULL) {
        v->hs256_secret = malloc(opts->hs256_secret_len);
        if (v->hs256_secret == NULL) {
            free(v);
            return NULL;
        }
        memcpy(v->hs256_secret, opts->hs256_secret, opts->hs256_secret_len);
        v->hs256_secret_len = opts->hs256_secret_len;
    }
    v->issuer = dup_or_null(opts->issuer);
    v->audience = dup_or_null(opts->audience);
    v->leeway_s = opts->leeway_s;
    v->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (v->sha256 == NULL) {
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
    if (v->hs256_secret != NULL) {
        OPENSSL_cleanse(v->hs256_secret, v->hs256_secret_len);
        free(v->hs256_secret);
    }
    free(v->issuer);
    free(v->audience);
    EVP_MD_free(v->sha256);
    free(v);
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
    /* RFC 7519 4.1.4: reject on or after exp (plus leeway). */
    if (has_exp && now_s >= exp + v->leeway_s) {
        return JWT_EXPIRED;
    }
    if (has_nbf && now_s + v->leeway_s < nbf) {
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
    out->exp = has_exp ? exp : 0;
    out->nbf = has_nbf ? nbf : 0;

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
    if (strcmp(json_string_value(alg), "HS256") != 0) {
        rc = JWT_UNSUPPORTED_ALG;
        goto out;
    }
    if (v->hs256_secret == NULL) {
        rc = JWT_UNKNOWN_KEY;
        goto out;
    }

    uint8_t sig[64];
    size_t siglen;
    if (s64.len > b64url_encoded_len(sizeof(sig)) || b64url_decode(s64, sig, &siglen) != 0) {
        goto out;
    }
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    if (HMAC(v->sha256, v->hs256_secret, (int)v->hs256_secret_len, (const unsigned char *)signing_input.ptr,
             signing_input.len, mac, &maclen) == NULL) {
        rc = JWT_BAD_SIGNATURE;
        goto out;
    }
    if (siglen != maclen || CRYPTO_memcmp(sig, mac, maclen) != 0) {
        rc = JWT_BAD_SIGNATURE;
        goto out;
    }

    payload = decode_json_segment(p64, MAX_PAYLOAD_JSON);
    if (payload == NULL) {
        goto out;
    }
    rc = check_claims(v, payload, now_s, claims);
out:
    json_decref(header);
    json_decref(payload);
    return rc;
}

bool jwt_claims_current(const jwt_verifier_t *v, const jwt_claims_t *c, int64_t now_s)
{
    if (c->exp != 0 && now_s >= c->exp + v->leeway_s) {
        return false;
    }
    return c->nbf == 0 || now_s + v->leeway_s >= c->nbf;
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
