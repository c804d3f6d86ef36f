/*
 * jwt: JSON Web Token verification (RFC 7519, RFC 7515 compact form) on
 * OpenSSL's libcrypto, for an OAuth2 resource server.
 *
 * The algorithm is a property of the key, never of the token: a token whose
 * header "alg" differs from its key's algorithm is rejected, which rules out
 * algorithm confusion and "alg":"none". exp and nbf are enforced with a small
 * leeway; iss and aud when configured. A verifier is immutable after set-up
 * and may be shared by all workers (verification allocates only inside
 * jansson and frees before returning).
 *
 * Today: HS256 from JWT_SECRET. RS256/ES256 keys from a JWKS slot into
 * jwt_key_t (kid + EVP_PKEY) without changing callers.
 */
#ifndef MIDDLEWARE_JWT_H
#define MIDDLEWARE_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str.h"

#define JWT_MAX_TOKEN 8192
#define JWT_MAX_SUB   255
#define JWT_MAX_SCOPE 1024

typedef enum { JWT_ALG_HS256 } jwt_alg_t;

typedef struct jwt_verifier jwt_verifier_t;

typedef struct {
    const char *hs256_secret; /* NULL: no HS256 key */
    size_t hs256_secret_len;
    const char *issuer;   /* NULL: iss not checked */
    const char *audience; /* NULL: aud not checked */
    int64_t leeway_s;     /* allowed clock skew for exp/nbf */
} jwt_verifier_opts_t;

typedef struct {
    char sub[JWT_MAX_SUB + 1];
    size_t sub_len; /* 0: the token has no subject */
    char scope[JWT_MAX_SCOPE + 1];
    size_t scope_len;
    int64_t exp; /* 0: none */
    int64_t nbf; /* 0: none */
} jwt_claims_t;

/* Why a token was refused; jwt_error_text() gives a client-safe sentence. */
typedef enum {
    JWT_OK = 0,
    JWT_MALFORMED,
    JWT_UNSUPPORTED_ALG,
    JWT_UNKNOWN_KEY,
    JWT_BAD_SIGNATURE,
    JWT_EXPIRED,
    JWT_NOT_YET_VALID,
    JWT_BAD_ISSUER,
    JWT_BAD_AUDIENCE,
    JWT_BAD_CLAIMS,
} jwt_error_t;

/* Copies what it needs from opts. NULL on no memory. */
jwt_verifier_t *jwt_verifier_new(const jwt_verifier_opts_t *opts);
void jwt_verifier_free(jwt_verifier_t *v);

/* Verifies token at wall time now_s; fills *claims on JWT_OK. */
jwt_error_t jwt_verify(const jwt_verifier_t *v, str_t token, int64_t now_s, jwt_claims_t *claims);
const char *jwt_error_text(jwt_error_t e);

/* Whether claims that verified earlier are still valid at now_s (exp/nbf
   with the verifier's leeway): what a cache of verified tokens checks. */
bool jwt_claims_current(const jwt_verifier_t *v, const jwt_claims_t *c, int64_t now_s);

/* Whether the space-separated scope list contains want. */
bool jwt_scope_has(str_t scopes, str_t want);

#endif
