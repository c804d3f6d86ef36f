/*
 * jwks: a JSON Web Key Set document as an identity provider serves it
 * (JWT_JWKS_URL / JWT_JWKS_FILE), through jwks_parse.
 *
 * Properties: a document is either refused with a reason or parsed into a
 * set whose counts add up; every key kept has a unique, non-empty kid of
 * at most JWKS_MAX_KID bytes, an OpenSSL key of the type its algorithm
 * needs (RSA of 2048..8192 bits for RS256, P-256 for ES256); a set equals
 * itself; a signature of the wrong length never verifies.
 */
#include <openssl/evp.h>
#include <string.h>

#include "base/err.h"
#include "middleware/jwks.h"
#include "fuzz.h"

static EVP_MD *sha256;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    FUZZ_ASSERT(sha256 != NULL);
    return 0;
}

static void check_key(const jwks_t *set, const jwks_key_t *k)
{
    FUZZ_ASSERT(k->kid_len > 0 && k->kid_len <= JWKS_MAX_KID && k->kid[k->kid_len] == '\0');
    FUZZ_ASSERT(jwks_find(set, str_make(k->kid, k->kid_len)) == k); /* kids are unique */
    FUZZ_ASSERT(k->pkey != NULL);
    uint8_t sig[1] = {0};
    switch (k->alg) {
    case JWT_ALG_RS256:
        FUZZ_ASSERT(EVP_PKEY_is_a(k->pkey, "RSA"));
        FUZZ_ASSERT(EVP_PKEY_get_bits(k->pkey) >= JWKS_MIN_RSA_BITS);
        FUZZ_ASSERT(EVP_PKEY_get_bits(k->pkey) <= JWKS_MAX_RSA_BITS);
        break;
    case JWT_ALG_ES256: {
        FUZZ_ASSERT(EVP_PKEY_is_a(k->pkey, "EC"));
        char group[32];
        size_t glen = 0;
        FUZZ_ASSERT(EVP_PKEY_get_utf8_string_param(k->pkey, "group", group, sizeof(group), &glen) == 1);
        FUZZ_ASSERT(strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0);
        break;
    }
    case JWT_ALG_HS256:
        FUZZ_ASSERT(!"a JWKS key pinned to HS256");
    }
    FUZZ_ASSERT(!jwks_verify(k, sha256, STR("a.b"), sig, sizeof(sig)));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    jwks_t *set = NULL;
    jwks_report_t rep;
    char err[200] = "";
    int rc = jwks_parse((const char *)data, size, &set, &rep, err, sizeof(err));
    if (rc != 0) {
        FUZZ_ASSERT(rc == ERR_INVAL && set == NULL && err[0] != '\0');
        return 0;
    }
    FUZZ_ASSERT(set != NULL);
    FUZZ_ASSERT(rep.used == jwks_count(set) && rep.used <= JWKS_MAX_KEYS);
    FUZZ_ASSERT((rep.skipped == 0) == (rep.why[0] == '\0'));
    for (size_t i = 0; i < jwks_count(set); i++) {
        check_key(set, jwks_key_at(set, i));
    }
    FUZZ_ASSERT(jwks_key_at(set, jwks_count(set)) == NULL);
    FUZZ_ASSERT(jwks_equal(set, set));
    jwks_unref(jwks_ref(set));
    jwks_unref(set);
    return 0;
}
