/* auth: the per-thread cache of verified tokens never outlives exp or the
   key set a token verified under. */
#include "middleware/auth.h"
#include "middleware/keys_support.h"
#include "test.h"

#define NOW 1800000000

static jwks_t *one_key_set(EVP_PKEY *key, const char *kid)
{
    char jwk[2048], doc[2200];
    test_jwk(key, kid, NULL, jwk, sizeof(jwk));
    snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", jwk);
    jwks_t *k = NULL;
    char err[128];
    if (jwks_parse(doc, strlen(doc), &k, NULL, err, sizeof(err)) != 0) {
        test_fail(__FILE__, __LINE__, "%s", err);
    }
    return k;
}

TEST(auth_cache_serves_verified_tokens_until_exp)
{
    jwt_verifier_opts_t o = {.leeway_s = 0, .require_exp = true, .dynamic_keys = true};
    jwt_verifier_t *v = jwt_verifier_new(&o);
    jwks_t *set = one_key_set(test_shared_p256(), "ec-1");
    jwt_verifier_set_keys(v, set);
    char tok[1024];
    test_sign("ES256", test_shared_p256(), NULL, "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}",
              "{\"sub\":\"cache\",\"exp\":1800000010}", tok, sizeof(tok));
    jwt_claims_t fresh;
    jwt_error_t e;
    const jwt_claims_t *c = mw_auth_verify_cached(v, str_from_cstr(tok), NOW, &fresh, &e);
    CHECK(c == &fresh && e == JWT_OK);
    c = mw_auth_verify_cached(v, str_from_cstr(tok), NOW + 9, &fresh, &e);
    CHECK(c != NULL && c != &fresh && e == JWT_OK); /* from the cache */
    CHECK_MEM_EQ(c->sub, c->sub_len, "cache");
    /* at exp it is verified again, and refused */
    CHECK(mw_auth_verify_cached(v, str_from_cstr(tok), NOW + 10, &fresh, &e) == NULL);
    CHECK_INT_EQ(e, JWT_EXPIRED);
    /* a token differing in one byte of its signature is not a cache hit */
    tok[strlen(tok) - 2] = tok[strlen(tok) - 2] == 'A' ? 'B' : 'A';
    CHECK(mw_auth_verify_cached(v, str_from_cstr(tok), NOW, &fresh, &e) == NULL);
    CHECK_INT_EQ(e, JWT_BAD_SIGNATURE);
    jwks_unref(set);
    jwt_verifier_free(v);
}

TEST(auth_cache_forgets_tokens_whose_key_left)
{
    jwt_verifier_opts_t o = {.leeway_s = 5, .require_exp = true, .dynamic_keys = true};
    jwt_verifier_t *v = jwt_verifier_new(&o);
    jwks_t *set = one_key_set(test_shared_p256(), "ec-1");
    jwt_verifier_set_keys(v, set);
    char tok[1024];
    test_sign("ES256", test_shared_p256(), NULL, "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}",
              "{\"exp\":1800000300}", tok, sizeof(tok));
    jwt_claims_t fresh;
    jwt_error_t e;
    CHECK(mw_auth_verify_cached(v, str_from_cstr(tok), NOW, &fresh, &e) == &fresh);
    CHECK(mw_auth_verify_cached(v, str_from_cstr(tok), NOW, &fresh, &e) != &fresh);
    jwks_t *other = one_key_set(test_shared_rsa2048(), "rsa-1");
    jwt_verifier_set_keys(v, other);
    CHECK(mw_auth_verify_cached(v, str_from_cstr(tok), NOW, &fresh, &e) == NULL);
    CHECK_INT_EQ(e, JWT_UNKNOWN_KEY);
    jwks_unref(set);
    jwks_unref(other);
    jwt_verifier_free(v);
}
