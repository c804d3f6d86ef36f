/* jwt: HS256 verification and every way a token is refused. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>

#include "base/b64.h"
#include "middleware/jwt.h"
#include "test.h"

#define SECRET "unit-test-secret-unit-test-secret-0123"
#define NOW    1800000000

static size_t enc(const char *json, char *out)
{
    return b64url_encode((const uint8_t *)json, strlen(json), out);
}

/* Builds header.payload.signature with HMAC-SHA256 under key. */
static void make_token(const char *header, const char *payload, const char *key, char *out, size_t outlen)
{
    char h[512], p[1024];
    size_t hn = enc(header, h), pn = enc(payload, p);
    int n = snprintf(out, outlen, "%.*s.%.*s", (int)hn, h, (int)pn, p);
    unsigned char mac[32];
    unsigned int ml = 0;
    HMAC(EVP_sha256(), key, (int)strlen(key), (const unsigned char *)out, (size_t)n, mac, &ml);
    out[n++] = '.';
    size_t sn = b64url_encode(mac, ml, out + n);
    out[n + (int)sn] = '\0';
}

static jwt_verifier_t *verifier(const char *iss, const char *aud)
{
    jwt_verifier_opts_t o = {.hs256_secret = SECRET,
                             .hs256_secret_len = strlen(SECRET),
                             .issuer = iss,
                             .audience = aud,
                             .leeway_s = 5,
                             .require_exp = true};
    return jwt_verifier_new(&o);
}

static jwt_error_t verify(jwt_verifier_t *v, const char *header, const char *payload, const char *key,
                          jwt_claims_t *c)
{
    char tok[2048];
    make_token(header, payload, key, tok, sizeof(tok));
    return jwt_verify(v, str_from_cstr(tok), NOW, c);
}

#define HS "{\"alg\":\"HS256\",\"typ\":\"JWT\"}"

TEST(jwt_accepts_valid_token)
{
    jwt_verifier_t *v = verifier(NULL, NULL);
    jwt_claims_t c;
    CHECK_INT_EQ(
        verify(v, HS, "{\"sub\":\"u1\",\"scope\":\"users:read users:write\",\"exp\":1800000100}", SECRET, &c),
        JWT_OK);
    CHECK_MEM_EQ(c.sub, c.sub_len, "u1");
    CHECK(jwt_scope_has(str_make(c.scope, c.scope_len), STR("users:write")));
    CHECK(!jwt_scope_has(str_make(c.scope, c.scope_len), STR("users")));
    /* scope as an array is joined */
    CHECK_INT_EQ(verify(v, HS, "{\"scope\":[\"a\",\"users:read\"],\"exp\":1800000100}", SECRET, &c), JWT_OK);
    CHECK(jwt_scope_has(str_make(c.scope, c.scope_len), STR("users:read")));
    jwt_verifier_free(v);
}

TEST(jwt_time_claims)
{
    jwt_verifier_t *v = verifier(NULL, NULL);
    jwt_claims_t c;
    CHECK_INT_EQ(verify(v, HS, "{\"exp\":1799999900}", SECRET, &c), JWT_EXPIRED);
    CHECK_INT_EQ(verify(v, HS, "{\"exp\":1799999997}", SECRET, &c), JWT_OK); /* within the 5 s leeway */
    CHECK_INT_EQ(verify(v, HS, "{\"nbf\":1800000100,\"exp\":1800000200}", SECRET, &c), JWT_NOT_YET_VALID);
    CHECK_INT_EQ(verify(v, HS, "{\"exp\":\"tomorrow\"}", SECRET, &c), JWT_BAD_CLAIMS);
    jwt_verifier_free(v);
}

TEST(jwt_refuses_wrong_alg_and_signature)
{
    jwt_verifier_t *v = verifier(NULL, NULL);
    jwt_claims_t c;
    CHECK_INT_EQ(verify(v, HS, "{}", "another-key-another-key-another-key", &c), JWT_BAD_SIGNATURE);
    CHECK_INT_EQ(verify(v, "{\"alg\":\"none\"}", "{}", SECRET, &c), JWT_UNSUPPORTED_ALG);
    CHECK_INT_EQ(verify(v, "{\"alg\":\"HS512\"}", "{}", SECRET, &c), JWT_UNSUPPORTED_ALG);
    CHECK_INT_EQ(verify(v, "{\"alg\":\"RS256\"}", "{}", SECRET, &c), JWT_UNSUPPORTED_ALG);
    CHECK_INT_EQ(verify(v, "{\"alg\":\"HS256\",\"crit\":[\"x\"]}", "{}", SECRET, &c), JWT_UNSUPPORTED_ALG);
    /* alg none with an empty signature */
    char h[64], p[64], tok[160];
    size_t hn = enc("{\"alg\":\"none\"}", h), pn = enc("{}", p);
    snprintf(tok, sizeof(tok), "%.*s.%.*s.", (int)hn, h, (int)pn, p);
    CHECK(jwt_verify(v, str_from_cstr(tok), NOW, &c) != JWT_OK);
    jwt_verifier_free(v);
}

TEST(jwt_refuses_malformed)
{
    jwt_verifier_t *v = verifier(NULL, NULL);
    jwt_claims_t c;
    const char *bad[] = {"", "abc", "a.b", "a.b.c.d", "...", "e30.e30.", "!!.e30.sig", "e30.e30.e30"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (jwt_verify(v, str_from_cstr(bad[i]), NOW, &c) == JWT_OK) {
            test_fail(__FILE__, __LINE__, "\"%s\" accepted", bad[i]);
        }
    }
    CHECK_INT_EQ(verify(v, HS, "[1,2]", SECRET, &c), JWT_MALFORMED);
    CHECK_INT_EQ(verify(v, HS, "{\"sub\":1,\"exp\":1800000100}", SECRET, &c), JWT_BAD_CLAIMS);
    CHECK_INT_EQ(verify(v, "{\"alg\":\"HS256\",\"alg\":\"none\"}", "{}", SECRET, &c), JWT_MALFORMED);
    jwt_verifier_free(v);
}

TEST(jwt_issuer_and_audience)
{
    jwt_verifier_t *v = verifier("https://issuer.test", "api");
    jwt_claims_t c;
    CHECK_INT_EQ(
        verify(v, HS, "{\"iss\":\"https://issuer.test\",\"aud\":\"api\",\"exp\":1800000100}", SECRET, &c),
        JWT_OK);
    CHECK_INT_EQ(verify(v, HS, "{\"iss\":\"https://issuer.test\",\"aud\":[\"x\",\"api\"],\"exp\":1800000100}",
                        SECRET, &c),
                 JWT_OK);
    CHECK_INT_EQ(
        verify(v, HS, "{\"iss\":\"https://evil.test\",\"aud\":\"api\",\"exp\":1800000100}", SECRET, &c),
        JWT_BAD_ISSUER);
    CHECK_INT_EQ(
        verify(v, HS, "{\"iss\":\"https://issuer.test\",\"aud\":\"other\",\"exp\":1800000100}", SECRET, &c),
        JWT_BAD_AUDIENCE);
    CHECK_INT_EQ(verify(v, HS, "{\"aud\":\"api\",\"exp\":1800000100}", SECRET, &c), JWT_BAD_ISSUER);
    jwt_verifier_free(v);
}

TEST(jwt_claims_current_rechecks_time)
{
    jwt_verifier_t *v = verifier(NULL, NULL);
    jwt_claims_t c;
    CHECK_INT_EQ(verify(v, HS, "{\"sub\":\"u\",\"exp\":1800000100,\"nbf\":1799999990}", SECRET, &c), JWT_OK);
    CHECK(jwt_claims_current(v, &c, NOW));
    CHECK(jwt_claims_current(v, &c, 1800000104));  /* inside the 5 s leeway */
    CHECK(!jwt_claims_current(v, &c, 1800000105)); /* expired since it was cached */
    CHECK(!jwt_claims_current(v, &c, 1799999980)); /* before nbf - leeway */
    jwt_verifier_free(v);
}

TEST(jwt_exp_required_by_default)
{
    jwt_verifier_t *v = verifier(NULL, NULL);
    jwt_claims_t c;
    CHECK_INT_EQ(verify(v, HS, "{\"sub\":\"u\"}", SECRET, &c), JWT_NO_EXPIRY);
    jwt_verifier_free(v);
    jwt_verifier_opts_t o = {
        .hs256_secret = SECRET, .hs256_secret_len = strlen(SECRET), .require_exp = false};
    v = jwt_verifier_new(&o);
    CHECK_INT_EQ(verify(v, HS, "{\"sub\":\"u\"}", SECRET, &c), JWT_OK);
    CHECK(!c.has_exp);
    CHECK(jwt_claims_current(v, &c, NOW + 86400 * 365));
    jwt_verifier_free(v);
}

/* exp + leeway, now + leeway: claims at the ends of the int64 range must
   neither wrap around nor trip UBSan's signed-overflow check. */
TEST(jwt_time_arithmetic_saturates)
{
    CHECK_INT_EQ(jwt_add_sat(INT64_MAX, 5), INT64_MAX);
    CHECK_INT_EQ(jwt_add_sat(INT64_MIN, -5), INT64_MIN);
    CHECK_INT_EQ(jwt_add_sat(1, 2), 3);
    jwt_verifier_t *v = verifier(NULL, NULL);
    jwt_claims_t c;
    CHECK_INT_EQ(verify(v, HS, "{\"exp\":9223372036854775807}", SECRET, &c), JWT_OK);
    CHECK(jwt_claims_current(v, &c, NOW));
    CHECK(jwt_claims_current(v, &c, INT64_MAX - 1));
    CHECK_INT_EQ(verify(v, HS, "{\"exp\":9223372036854775806}", SECRET, &c), JWT_OK);
    CHECK_INT_EQ(verify(v, HS, "{\"exp\":-9223372036854775808}", SECRET, &c), JWT_EXPIRED);
    CHECK_INT_EQ(verify(v, HS, "{\"exp\":1800000100,\"nbf\":9223372036854775807}", SECRET, &c),
                 JWT_NOT_YET_VALID);
    CHECK_INT_EQ(verify(v, HS, "{\"exp\":1800000100,\"nbf\":-9223372036854775808}", SECRET, &c), JWT_OK);
    CHECK(jwt_claims_current(v, &c, NOW));
    /* at the far end of time, now + leeway saturates too */
    char tok[512];
    make_token(HS, "{\"exp\":9223372036854775807,\"nbf\":9223372036854775800}", SECRET, tok, sizeof(tok));
    CHECK_INT_EQ(jwt_verify(v, str_from_cstr(tok), INT64_MAX - 2, &c), JWT_OK);
    CHECK(jwt_claims_current(v, &c, INT64_MAX - 2));
    jwt_verifier_free(v);
}

TEST(jwt_hs256_only_with_a_secret)
{
    /* A verifier with no secret (JWKS-only deployments) refuses HS256
       outright, whatever key a token was signed with. */
    jwt_verifier_opts_t o = {.leeway_s = 5, .require_exp = true};
    jwt_verifier_t *v = jwt_verifier_new(&o);
    jwt_claims_t c;
    CHECK_INT_EQ(verify(v, HS, "{\"exp\":1800000100}", SECRET, &c), JWT_UNSUPPORTED_ALG);
    CHECK_INT_EQ(verify(v, HS, "{\"exp\":1800000100}", "", &c), JWT_UNSUPPORTED_ALG);
    jwt_verifier_free(v);
}
