/*
 * jwt: JSON Web Token verification (RFC 7519, RFC 7515 compact form) on
 * OpenSSL's libcrypto, for an OAuth2 resource server.
 *
 * The algorithm is a property of the key, never of the token (RFC 8725
 * section 3.1): HS256 only with the configured secret, RS256 / ES256 only
 * with the JWKS key the token's "kid" names, and only that key's own
 * algorithm. So a token signed "HS256" with an RSA public key as the secret,
 * an RS256 token naming an EC key, or "alg":"none" are all refused. exp
 * (required unless configured otherwise) and nbf are enforced with a small
 * leeway, iss and aud when configured; time arithmetic saturates.
 *
 * Keys: an optional static set (JWT_JWKS_FILE) fixed at set-up, and an
 * optional dynamic set (JWT_JWKS_URL) that another thread may replace at
 * any time with jwt_verifier_set_keys().
 *
 * Threads and the key swap. Workers verify on the hot path with no lock:
 * each thread keeps its own counted reference to the dynamic set and the
 * generation it belongs to. A verification reads the verifier's generation
 * with one acquire load; while it matches, the thread's own reference keeps
 * the set alive, so the set cannot be freed under it. Only when the
 * generation moved (once per swap per thread) does the thread take a mutex
 * to pick up a reference to the new set and drop its old one; the swapping
 * thread takes the same mutex only to exchange the pointer. A set is freed
 * by whichever thread drops its last reference, which can only happen after
 * every thread that used it has moved on (or exited: a thread's reference is
 * dropped by a pthread key destructor). This is the refcounted immutable
 * snapshot of DESIGN.md with the increment moved off the hot path; its cost
 * is that an idle thread pins an old set until it next verifies or exits.
 */
#ifndef MIDDLEWARE_JWT_H
#define MIDDLEWARE_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str.h"
#include "middleware/jwks.h"

#define JWT_MAX_TOKEN 8192
#define JWT_MAX_SUB   255
#define JWT_MAX_SCOPE 1024

typedef struct jwt_verifier jwt_verifier_t;

typedef struct {
    const char *hs256_secret; /* NULL: no HS256 at all */
    size_t hs256_secret_len;
    const char *issuer;   /* NULL: iss not checked */
    const char *audience; /* NULL: aud not checked */
    int64_t leeway_s;     /* allowed clock skew for exp/nbf, >= 0 */
    bool require_exp;     /* a token without exp is refused */
    jwks_t *static_keys;  /* NULL, or a set the verifier takes a reference to */
    bool dynamic_keys;    /* keys also arrive through jwt_verifier_set_keys() */
    /* Called on the verifying thread when a token names a kid that no set
       holds (with dynamic_keys only). Must not block. NULL: nothing. */
    void (*on_unknown_kid)(void *arg);
    void *on_unknown_kid_arg;
} jwt_verifier_opts_t;

typedef struct {
    char sub[JWT_MAX_SUB + 1];
    size_t sub_len; /* 0: the token has no subject */
    char scope[JWT_MAX_SCOPE + 1];
    size_t scope_len;
    bool has_exp, has_nbf;
    int64_t exp, nbf;
    uint64_t keys_gen; /* the key generation it verified under */
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
    JWT_NO_EXPIRY,
} jwt_error_t;

/* Copies what it needs from opts. NULL on no memory. */
jwt_verifier_t *jwt_verifier_new(const jwt_verifier_opts_t *opts);
/* After every other thread has stopped verifying with v. */
void jwt_verifier_free(jwt_verifier_t *v);

/*
 * Replaces the dynamic key set (any thread, concurrently with jwt_verify):
 * the verifier takes its own reference to keys (the caller keeps its own),
 * NULL empties it. Cached verifications made under the old set stop
 * counting (jwt_claims_current) unless the new set is jwks_equal to it.
 */
void jwt_verifier_set_keys(jwt_verifier_t *v, jwks_t *keys);
/* Whether a dynamic set has been installed yet (any thread). */
bool jwt_verifier_has_dynamic_keys(const jwt_verifier_t *v);
/* The dynamic set's generation: it moves on every jwt_verifier_set_keys()
   that changed the set (any thread). */
uint64_t jwt_verifier_generation(const jwt_verifier_t *v);

/* Verifies token at wall time now_s; fills *claims on JWT_OK. Any thread. */
jwt_error_t jwt_verify(const jwt_verifier_t *v, str_t token, int64_t now_s, jwt_claims_t *claims);
const char *jwt_error_text(jwt_error_t e);

/* Whether claims that verified earlier are still valid at now_s: exp/nbf
   with the verifier's leeway, and the key set they verified under is still
   the current one. What a cache of verified tokens checks. */
bool jwt_claims_current(const jwt_verifier_t *v, const jwt_claims_t *c, int64_t now_s);

/* Whether the space-separated scope list contains want. */
bool jwt_scope_has(str_t scopes, str_t want);

/* a + b, clamped to the int64_t range (time arithmetic on token claims). */
int64_t jwt_add_sat(int64_t a, int64_t b);

#endif
