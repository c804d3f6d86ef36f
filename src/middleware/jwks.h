/*
 * jwks: JSON Web Key Sets (RFC 7517) of an OAuth2 / OpenID Connect server,
 * imported once into OpenSSL keys, and the RS256 / ES256 signature checks
 * (RFC 7518 sections 3.3 and 3.4) made with them.
 *
 * A key set is immutable once parsed and reference-counted, so any number
 * of threads may verify with it while another thread builds its successor;
 * the last jwks_unref() frees it. Each key carries the one algorithm it may
 * verify (RFC 8725 section 3.1): an RSA key is RS256 only, a P-256 key ES256
 * only, whatever a token says.
 *
 * Parsing is strict about each key and lenient about the set: a key this
 * server cannot use (another kty, curve or alg, "use" other than "sig", no
 * "kid", a duplicate "kid", RSA under 2048 bits, a point off the curve,
 * private key material) is skipped and reported, never fatal, because
 * identity providers publish keys for other clients too. Only a document
 * that is not a key set at all is an error. Nothing here does I/O.
 */
#ifndef MIDDLEWARE_JWKS_H
#define MIDDLEWARE_JWKS_H

#include <openssl/evp.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str.h"

#define JWKS_MAX_KEYS     64         /* keys looked at per set; more are skipped */
#define JWKS_MAX_KID      128        /* bytes of a "kid" */
#define JWKS_MIN_RSA_BITS 2048       /* RFC 7518 section 3.3 */
#define JWKS_MAX_RSA_BITS 8192       /* bounds the cost of one verification */
#define JWKS_MAX_DOC      (4u << 20) /* hard cap of a document, whatever the configuration */

/* The signature algorithms a key may be pinned to. */
typedef enum { JWT_ALG_HS256, JWT_ALG_RS256, JWT_ALG_ES256 } jwt_alg_t;

typedef struct jwks jwks_t;

typedef struct {
    char kid[JWKS_MAX_KID + 1];
    size_t kid_len;
    jwt_alg_t alg;
    EVP_PKEY *pkey;
} jwks_key_t;

/* What parsing kept and skipped; `why` names the first skipped key. */
typedef struct {
    size_t used;
    size_t skipped;
    char why[160];
} jwks_report_t;

/*
 * Parses a JWKS document (`{"keys": [...]}`) of len bytes. On success *out
 * holds a new set with one reference (it may hold zero keys: see rep) and 0
 * is returned. ERR_INVAL when the document is not JSON, not an object, has
 * no "keys" array or is over JWKS_MAX_DOC; err then says why in one line.
 * ERR_NOMEM on allocation failure. rep may be NULL.
 */
int jwks_parse(const char *json, size_t len, jwks_t **out, jwks_report_t *rep, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Takes another reference (any thread). Returns k. */
jwks_t *jwks_ref(jwks_t *k);
/* Drops a reference (any thread); the last one frees the set. NULL is fine. */
void jwks_unref(jwks_t *k);

size_t jwks_count(const jwks_t *k);
const jwks_key_t *jwks_key_at(const jwks_t *k, size_t i);
/* The key with this kid, or NULL. k may be NULL (no set). */
const jwks_key_t *jwks_find(const jwks_t *k, str_t kid);
/* Same kids, algorithms and public keys, in any order (so a refresh that
   changed nothing need not disturb caches). */
bool jwks_equal(const jwks_t *a, const jwks_t *b);

/*
 * Checks the JWS signature sig (siglen bytes, already base64url-decoded) of
 * signing_input under key with its own algorithm, SHA-256 being sha256.
 * RS256: RSASSA-PKCS1-v1_5, sig exactly the modulus size. ES256: sig is the
 * raw R || S pair of 32 bytes each (RFC 7518 section 3.4), converted to DER
 * for OpenSSL; any other length is refused. Returns true only for a valid
 * signature. Thread-safe: the key is only read.
 */
bool jwks_verify(const jwks_key_t *key, const EVP_MD *sha256, str_t signing_input, const uint8_t *sig,
                 size_t siglen);

/* "RS256" / "ES256" / "HS256". */
const char *jwks_alg_name(jwt_alg_t alg);

#endif
