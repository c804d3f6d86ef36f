/*
 * jwks: parsing with jansson, key import with OpenSSL 3's EVP_PKEY_fromdata
 * (no deprecated RSA / EC_KEY calls), and signature checks. Every key is
 * validated once here (EVP_PKEY_public_check) so verification is only the
 * signature operation.
 */
#include "middleware/jwks.h"

#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/param_build.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/b64.h"
#include "base/err.h"
#include "base/banned.h"

#define MAX_RSA_BYTES (JWKS_MAX_RSA_BITS / 8)
#define MAX_E_BYTES   8
#define P256_BYTES    32

struct jwks {
    _Atomic unsigned refs;
    size_t n;
    jwks_key_t keys[];
};

const char *jwks_alg_name(jwt_alg_t alg)
{
    switch (alg) {
    case JWT_ALG_HS256:
        return "HS256";
    case JWT_ALG_RS256:
        return "RS256";
    case JWT_ALG_ES256:
        return "ES256";
    }
    return "?";
}

/* A base64url member of 1..max decoded bytes; 0 or ERR_INVAL. */
static int get_b64(json_t *jwk, const char *name, uint8_t *out, size_t max, size_t *n)
{
    json_t *v = json_object_get(jwk, name);
    if (!json_is_string(v)) {
        return ERR_INVAL;
    }
    str_t s = str_make(json_string_value(v), json_string_length(v));
    if (s.len == 0 || b64url_decoded_max(s.len) > max) {
        return ERR_INVAL;
    }
    if (b64url_decode(s, out, n) != 0 || *n == 0) {
        return ERR_INVAL;
    }
    return 0;
}

/* The key is usable by this server only once it passed OpenSSL's checks:
   for RSA, n and e odd and e > 1; for EC, the point is on the curve and
   not the point at infinity. */
static bool public_key_ok(EVP_PKEY *pkey)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    bool ok = ctx != NULL && EVP_PKEY_public_check(ctx) == 1;
    EVP_PKEY_CTX_free(ctx);
    return ok;
}

static EVP_PKEY *from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    EVP_PKEY *pkey = NULL;
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (params == NULL || ctx == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

/* RFC 7518 section 6.3.1: "n" and "e", big-endian, base64url. */
static const char *import_rsa(json_t *jwk, EVP_PKEY **out)
{
    uint8_t n[MAX_RSA_BYTES + 1], e[MAX_E_BYTES];
    size_t nlen, elen;
    if (get_b64(jwk, "n", n, sizeof(n), &nlen) != 0) {
        return "RSA key without a valid \"n\"";
    }
    if (get_b64(jwk, "e", e, sizeof(e), &elen) != 0) {
        return "RSA key without a valid \"e\"";
    }
    const char *why = NULL;
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    BIGNUM *bn_n = BN_bin2bn(n, (int)nlen, NULL);
    BIGNUM *bn_e = BN_bin2bn(e, (int)elen, NULL);
    EVP_PKEY *pkey = NULL;
    if (bld == NULL || bn_n == NULL || bn_e == NULL ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e) != 1) {
        why = "out of memory";
        goto out;
    }
    /* Checked on the number, not the encoding: leading zero bytes in "n"
       must not make a short key look long. */
    int bits = BN_num_bits(bn_n);
    if (bits < JWKS_MIN_RSA_BITS) {
        why = "RSA key under 2048 bits";
        goto out;
    }
    if (bits > JWKS_MAX_RSA_BITS) {
        why = "RSA key over 8192 bits";
        goto out;
    }
    pkey = from_params("RSA", bld);
    if (pkey == NULL || !public_key_ok(pkey)) {
        why = "RSA key rejected by OpenSSL";
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
out:
    *out = pkey;
    BN_free(bn_n);
    BN_free(bn_e);
    OSSL_PARAM_BLD_free(bld);
    return why;
}

/* RFC 7518 section 6.2.1: "crv" P-256, "x" and "y" of exactly 32 bytes. */
static const char *import_p256(json_t *jwk, EVP_PKEY **out)
{
    *out = NULL;
    json_t *crv = json_object_get(jwk, "crv");
    if (!json_is_string(crv) || strcmp(json_string_value(crv), "P-256") != 0) {
        return "EC key not on P-256";
    }
    uint8_t pub[1 + 2 * P256_BYTES];
    uint8_t tmp[P256_BYTES + 2];
    size_t xl, yl;
    if (get_b64(jwk, "x", tmp, sizeof(tmp), &xl) != 0 || xl != P256_BYTES) {
        return "EC key without a 32-byte \"x\"";
    }
    memcpy(pub + 1, tmp, P256_BYTES);
    if (get_b64(jwk, "y", tmp, sizeof(tmp), &yl) != 0 || yl != P256_BYTES) {
        return "EC key without a 32-byte \"y\"";
    }
    memcpy(pub + 1 + P256_BYTES, tmp, P256_BYTES);
    pub[0] = 0x04; /* SEC 1 uncompressed point */
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    if (bld == NULL || OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "P-256", 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub)) != 1) {
        OSSL_PARAM_BLD_free(bld);
        return "out of memory";
    }
    /* OpenSSL 3.0 refuses a point that is not on the curve at import;
       public_key_ok checks again, whichever version this runs on. */
    EVP_PKEY *pkey = from_params("EC", bld);
    OSSL_PARAM_BLD_free(bld);
    if (pkey == NULL || !public_key_ok(pkey)) {
        EVP_PKEY_free(pkey);
        return "EC point not on the curve";
    }
    *out = pkey;
    return NULL;
}

static bool has_member(json_t *o, const char *name)
{
    return json_object_get(o, name) != NULL;
}

/* Imports one JWK into *k, or says why it is skipped. */
static const char *import_key(json_t *jwk, const jwks_t *so_far, jwks_key_t *k)
{
    if (!json_is_object(jwk)) {
        return "a key that is not an object";
    }
    json_t *kty = json_object_get(jwk, "kty");
    json_t *kid = json_object_get(jwk, "kid");
    json_t *use = json_object_get(jwk, "use");
    json_t *alg = json_object_get(jwk, "alg");
    json_t *ops = json_object_get(jwk, "key_ops");
    if (!json_is_string(kty)) {
        return "a key without \"kty\"";
    }
    bool rsa = strcmp(json_string_value(kty), "RSA") == 0;
    bool ec = strcmp(json_string_value(kty), "EC") == 0;
    if (!rsa && !ec) {
        return "a key of a type other than RSA or EC";
    }
    /* Tokens select keys by kid, so a key without one can never be used. */
    if (!json_is_string(kid) || json_string_length(kid) == 0 || json_string_length(kid) > JWKS_MAX_KID) {
        return "a key without a usable \"kid\"";
    }
    if (use != NULL && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0)) {
        return "a key whose \"use\" is not \"sig\"";
    }
    if (ops != NULL) {
        bool verify = false;
        size_t i;
        json_t *op;
        json_array_foreach(ops, i, op)
        {
            verify |= json_is_string(op) && strcmp(json_string_value(op), "verify") == 0;
        }
        if (!verify) {
            return "a key whose \"key_ops\" lack \"verify\"";
        }
    }
    const char *want = rsa ? "RS256" : "ES256";
    if (alg != NULL && (!json_is_string(alg) || strcmp(json_string_value(alg), want) != 0)) {
        return "a key for an algorithm other than RS256 or ES256";
    }
    /* A published private key is a leaked key: trust nothing it signed. */
    if (has_member(jwk, "d") || has_member(jwk, "p") || has_member(jwk, "q")) {
        return "a key with private parts";
    }
    str_t kid_s = str_make(json_string_value(kid), json_string_length(kid));
    if (jwks_find(so_far, kid_s) != NULL) {
        return "a duplicate \"kid\"";
    }
    const char *why = rsa ? import_rsa(jwk, &k->pkey) : import_p256(jwk, &k->pkey);
    if (why != NULL) {
        return why;
    }
    memcpy(k->kid, kid_s.ptr, kid_s.len);
    k->kid[kid_s.len] = '\0';
    k->kid_len = kid_s.len;
    k->alg = rsa ? JWT_ALG_RS256 : JWT_ALG_ES256;
    return NULL;
}

int jwks_parse(const char *json, size_t len, jwks_t **out, jwks_report_t *rep, char *err, size_t errlen)
{
    jwks_report_t local;
    if (rep == NULL) {
        rep = &local;
    }
    *rep = (jwks_report_t){0};
    *out = NULL;
    if (len > JWKS_MAX_DOC) {
        snprintf(err, errlen, "the key set is larger than %u bytes", JWKS_MAX_DOC);
        return ERR_INVAL;
    }
    json_error_t jerr;
    json_t *doc = json_loadb(json, len, JSON_REJECT_DUPLICATES, &jerr);
    if (doc == NULL) {
        snprintf(err, errlen, "the key set is not JSON (line %d: %s)", jerr.line, jerr.text);
        return ERR_INVAL;
    }
    json_t *keys = json_object_get(doc, "keys");
    if (!json_is_object(doc) || !json_is_array(keys)) {
        snprintf(err, errlen, "not a key set: no \"keys\" array");
        json_decref(doc);
        return ERR_INVAL;
    }
    size_t total = json_array_size(keys);
    size_t cap = total < JWKS_MAX_KEYS ? total : JWKS_MAX_KEYS;
    jwks_t *set = calloc(1, sizeof(*set) + cap * sizeof(jwks_key_t));
    if (set == NULL) {
        json_decref(doc);
        snprintf(err, errlen, "out of memory");
        return ERR_NOMEM;
    }
    atomic_init(&set->refs, 1);
    for (size_t i = 0; i < total; i++) {
        const char *why = i < cap ? import_key(json_array_get(keys, i), set, &set->keys[set->n])
                                  : "a key past the 64 a set may hold";
        if (why == NULL) {
            set->n++;
            continue;
        }
        if (rep->skipped++ == 0) {
            snprintf(rep->why, sizeof(rep->why), "key %zu: %s", i, why);
        }
    }
    rep->used = set->n;
    json_decref(doc);
    *out = set;
    return 0;
}

jwks_t *jwks_ref(jwks_t *k)
{
    atomic_fetch_add_explicit(&k->refs, 1, memory_order_relaxed);
    return k;
}

void jwks_unref(jwks_t *k)
{
    if (k == NULL) {
        return;
    }
    /* acq_rel: every use of the keys by other holders happens before the free */
    if (atomic_fetch_sub_explicit(&k->refs, 1, memory_order_acq_rel) != 1) {
        return;
    }
    for (size_t i = 0; i < k->n; i++) {
        EVP_PKEY_free(k->keys[i].pkey);
    }
    free(k);
}

size_t jwks_count(const jwks_t *k)
{
    return k ? k->n : 0;
}

const jwks_key_t *jwks_key_at(const jwks_t *k, size_t i)
{
    return k != NULL && i < k->n ? &k->keys[i] : NULL;
}

const jwks_key_t *jwks_find(const jwks_t *k, str_t kid)
{
    if (k == NULL) {
        return NULL;
    }
    for (size_t i = 0; i < k->n; i++) {
        if (str_eq(str_make(k->keys[i].kid, k->keys[i].kid_len), kid)) {
            return &k->keys[i];
        }
    }
    return NULL;
}

bool jwks_equal(const jwks_t *a, const jwks_t *b)
{
    if (jwks_count(a) != jwks_count(b)) {
        return false;
    }
    for (size_t i = 0; i < jwks_count(a); i++) {
        const jwks_key_t *x = &a->keys[i];
        const jwks_key_t *y = jwks_find(b, str_make(x->kid, x->kid_len));
        if (y == NULL || y->alg != x->alg || EVP_PKEY_eq(x->pkey, y->pkey) != 1) {
            return false;
        }
    }
    return true;
}

/* RFC 7518 section 3.4: R || S as two 32-byte big-endian integers; OpenSSL
   wants the DER SEQUENCE of two INTEGERs. r or s of zero (the all-zero
   "psychic signature") is encoded faithfully and then refused by OpenSSL's
   range check (1 <= r, s < n). */
static int es256_to_der(const uint8_t *sig, uint8_t *der, size_t cap, size_t *derlen)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, P256_BYTES, NULL);
    BIGNUM *s = BN_bin2bn(sig + P256_BYTES, P256_BYTES, NULL);
    if (es == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return ERR_NOMEM;
    }
    /* es owns r and s now */
    int n = i2d_ECDSA_SIG(es, NULL);
    int rc = ERR_NOMEM;
    if (n > 0 && (size_t)n <= cap) {
        unsigned char *p = der;
        *derlen = (size_t)i2d_ECDSA_SIG(es, &p);
        rc = 0;
    }
    ECDSA_SIG_free(es);
    return rc;
}

bool jwks_verify(const jwks_key_t *key, const EVP_MD *sha256, str_t signing_input, const uint8_t *sig,
                 size_t siglen)
{
    uint8_t der[2 * P256_BYTES + 16];
    const uint8_t *check = sig;
    size_t checklen = siglen;
    switch (key->alg) {
    case JWT_ALG_RS256:
        if (siglen != (size_t)EVP_PKEY_get_size(key->pkey)) {
            return false;
        }
        break;
    case JWT_ALG_ES256:
        if (siglen != 2 * P256_BYTES || es256_to_der(sig, der, sizeof(der), &checklen) != 0) {
            return false;
        }
        check = der;
        break;
    case JWT_ALG_HS256:
        return false; /* never a JWKS key */
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    bool ok = ctx != NULL && EVP_DigestVerifyInit(ctx, NULL, sha256, NULL, key->pkey) == 1 &&
              EVP_DigestVerify(ctx, check, checklen, (const unsigned char *)signing_input.ptr,
                               signing_input.len) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}
