/*
 * keys_support: real RSA and P-256 keys for the JWT/JWKS tests (and the
 * verify benchmark), made with OpenSSL at run time: JWK text for their
 * public halves and JWS compact tokens signed with them.
 */
#ifndef TEST_KEYS_SUPPORT_H
#define TEST_KEYS_SUPPORT_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

/* Fresh keys; the caller frees them with EVP_PKEY_free. NULL on failure. */
EVP_PKEY *test_key_rsa(unsigned bits);
EVP_PKEY *test_key_p256(void);
/* The same keys for every caller of one process (made on first use). */
EVP_PKEY *test_shared_rsa2048(void);
EVP_PKEY *test_shared_p256(void);

/* A JWK object ({"kty":...,"kid":kid,...}) for key's public half, with
   extra members (e.g. "\"alg\":\"RS256\",") inserted after "{" verbatim. */
void test_jwk(EVP_PKEY *key, const char *kid, const char *extra, char *out, size_t outlen);

/* base64url of n bytes into out (NUL-terminated). */
void test_b64(const void *p, size_t n, char *out);

/* header.payload.signature, the signature made by key with alg "RS256"
   or "ES256" (raw R||S), or "HS256" with key NULL and secret. */
void test_sign(const char *alg, EVP_PKEY *key, const char *secret, const char *header_json,
               const char *payload_json, char *out, size_t outlen);

/* header.payload. with the given raw signature bytes. */
void test_token_with_sig(const char *header_json, const char *payload_json, const uint8_t *sig, size_t siglen,
                         char *out, size_t outlen);

#endif
