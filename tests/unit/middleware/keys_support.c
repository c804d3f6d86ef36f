/* keys_support: key generation, JWK export and signing with OpenSSL 3. */
#include "keys_support.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/b64.h"

EVP_PKEY *test_key_rsa(unsigned bits)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)bits);
}

EVP_PKEY *test_key_p256(void)
{
    return EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
}

EVP_PKEY *test_shared_rsa2048(void)
{
    static EVP_PKEY *k;
    if (k == NULL) {
        k = test_key_rsa(2048);
    }
    return k;
}

EVP_PKEY *test_shared_p256(void)
{
    static EVP_PKEY *k;
    if (k == NULL) {
        k = test_key_p256();
    }
    return k;
}

void test_b64(const void *p, size_t n, char *out)
{
    size_t len = b64url_encode(p, n, out);
    out[len] = '\0';
}

static void bn_b64(EVP_PKEY *key, const char *param, char *out)
{
    BIGNUM *bn = NULL;
    uint8_t buf[1100];
    if (EVP_PKEY_get_bn_param(key, param, &bn) != 1) {
        out[0] = '\0';
        return;
    }
    int n = BN_bn2bin(bn, buf);
    BN_free(bn);
    test_b64(buf, (size_t)n, out);
}

void test_jwk(EVP_PKEY *key, const char *kid, const char *extra, char *out, size_t outlen)
{
    if (EVP_PKEY_is_a(key, "RSA")) {
        char n[1500], e[32];
        bn_b64(key, OSSL_PKEY_PARAM_RSA_N, n);
        bn_b64(key, OSSL_PKEY_PARAM_RSA_E, e);
        snprintf(out, outlen, "{%s\"kty\":\"RSA\",\"kid\":\"%s\",\"n\":\"%s\",\"e\":\"%s\"}",
                 extra ? extra : "", kid, n, e);
        return;
    }
    uint8_t pub[65];
    size_t len = 0;
    EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &len);
    char x[64], y[64];
    test_b64(pub + 1, 32, x);
    test_b64(pub + 33, 32, y);
    snprintf(out, outlen, "{%s\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"}",
             extra ? extra : "", kid, x, y);
}

void test_token_with_sig(const char *header_json, const char *payload_json, const uint8_t *sig, size_t siglen,
                         char *out, size_t outlen)
{
    char h[2048], p[4096], s[1500];
    test_b64(header_json, strlen(header_json), h);
    test_b64(payload_json, strlen(payload_json), p);
    test_b64(sig, siglen, s);
    snprintf(out, outlen, "%s.%s.%s", h, p, s);
}

void test_sign(const char *alg, EVP_PKEY *key, const char *secret, const char *header_json,
               const char *payload_json, char *out, size_t outlen)
{
    char h[2048], p[4096], input[6200];
    test_b64(header_json, strlen(header_json), h);
    test_b64(payload_json, strlen(payload_json), p);
    int n = snprintf(input, sizeof(input), "%s.%s", h, p);
    uint8_t sig[1024];
    size_t siglen = sizeof(sig);
    if (strcmp(alg, "HS256") == 0) {
        unsigned int ml = 0;
        HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)input, (size_t)n, sig, &ml);
        siglen = ml;
    } else {
        EVP_MD_CTX *ctx = EVP_MD_CTX_new();
        EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, key);
        EVP_DigestSign(ctx, sig, &siglen, (const unsigned char *)input, (size_t)n);
        EVP_MD_CTX_free(ctx);
        if (strcmp(alg, "ES256") == 0) {
            /* DER SEQUENCE { r, s } -> R || S (RFC 7518 section 3.4) */
            const unsigned char *d = sig;
            ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &d, (long)siglen);
            const BIGNUM *r, *s;
            ECDSA_SIG_get0(es, &r, &s);
            BN_bn2binpad(r, sig, 32);
            BN_bn2binpad(s, sig + 32, 32);
            siglen = 64;
            ECDSA_SIG_free(es);
        }
    }
    char s64[1500];
    test_b64(sig, siglen, s64);
    snprintf(out, outlen, "%s.%s", input, s64);
}
