/* jwks: key set parsing, key import, and RS256/ES256 tokens checked with
   them, every refusal in one table. Keys are generated per run. */
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/pem.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/b64.h"
#include "base/err.h"
#include "middleware/jwks.h"
#include "middleware/jwt.h"
#include "middleware/keys_support.h"
#include "test.h"

#define NOW    1800000000
#define SECRET "unit-test-secret-unit-test-secret-0123"
#define GOOD   "{\"sub\":\"client-1\",\"scope\":\"users:read\",\"exp\":1800000300}"

static jwks_t *parse(const char *doc, jwks_report_t *rep)
{
    jwks_t *k = NULL;
    char err[200];
    if (jwks_parse(doc, strlen(doc), &k, rep, err, sizeof(err)) != 0) {
        test_fail(__FILE__, __LINE__, "parse failed: %s", err);
        return NULL;
    }
    return k;
}

/* A set of the two shared keys: "rsa-1" (RS256) and "ec-1" (ES256). */
static jwks_t *shared_set(void)
{
    char a[2048], b[512], doc[4096];
    test_jwk(test_shared_rsa2048(), "rsa-1", "\"use\":\"sig\",\"alg\":\"RS256\",", a, sizeof(a));
    test_jwk(test_shared_p256(), "ec-1", NULL, b, sizeof(b));
    snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s]}", a, b);
    return parse(doc, NULL);
}

TEST(jwks_parses_rsa_and_ec_keys)
{
    jwks_report_t rep;
    char a[2048], b[512], doc[4096];
    test_jwk(test_shared_rsa2048(), "rsa-1", "\"use\":\"sig\",\"alg\":\"RS256\",\"key_ops\":[\"verify\"],", a,
             sizeof(a));
    test_jwk(test_shared_p256(), "ec-1", "\"alg\":\"ES256\",", b, sizeof(b));
    snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s],\"other\":1}", a, b);
    jwks_t *k = parse(doc, &rep);
    CHECK_INT_EQ(rep.used, 2);
    CHECK_INT_EQ(rep.skipped, 0);
    CHECK_INT_EQ(jwks_count(k), 2);
    const jwks_key_t *r = jwks_find(k, STR("rsa-1"));
    const jwks_key_t *e = jwks_find(k, STR("ec-1"));
    CHECK(r != NULL && r->alg == JWT_ALG_RS256 && EVP_PKEY_eq(r->pkey, test_shared_rsa2048()) == 1);
    CHECK(e != NULL && e->alg == JWT_ALG_ES256 && EVP_PKEY_eq(e->pkey, test_shared_p256()) == 1);
    CHECK(jwks_find(k, STR("rsa-")) == NULL);
    CHECK(jwks_find(NULL, STR("rsa-1")) == NULL);
    jwks_unref(k);
}

/* A JWK with one member replaced: builds {"kty":"EC",...} by hand. */
static void ec_jwk(const char *crv, const char *x, const char *y, char *out, size_t n)
{
    snprintf(out, n, "{\"kty\":\"EC\",\"kid\":\"k\",\"crv\":\"%s\",\"x\":\"%s\",\"y\":\"%s\"}", crv, x, y);
}

TEST(jwks_skips_keys_it_cannot_use)
{
    /* Each document has one key this server must not use; none of them
       is fatal, and the report says why. */
    EVP_PKEY *small = test_key_rsa(1024);
    EVP_PKEY *ec = test_shared_p256();
    uint8_t pub[65];
    size_t plen;
    EVP_PKEY_get_octet_string_param(ec, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &plen);
    char x[64], y[64], y_off[64], x31[64];
    test_b64(pub + 1, 32, x);
    test_b64(pub + 33, 32, y);
    test_b64(pub + 1, 31, x31);
    pub[64] ^= 1; /* one bit off: no longer on the curve */
    test_b64(pub + 33, 32, y_off);

    /* A 1024-bit modulus padded with leading zero bytes to 2048 bits'
       worth of octets must still count as 1024 bits. */
    BIGNUM *bn = NULL;
    EVP_PKEY_get_bn_param(small, OSSL_PKEY_PARAM_RSA_N, &bn);
    uint8_t padded[256];
    BN_bn2binpad(bn, padded, sizeof(padded));
    BN_free(bn);
    char n_padded[400];
    test_b64(padded, sizeof(padded), n_padded);

    char rsa_small[1024], rsa_pad[1024], off_curve[400], p384[400], short_x[400], rsa_enc[2048],
        rsa_rs384[2048], rsa_es256[2048], rsa_nokid[2048], rsa_priv[2048], rsa_sign_only[2048],
        rsa_longkid[2048];
    test_jwk(small, "small", NULL, rsa_small, sizeof(rsa_small));
    snprintf(rsa_pad, sizeof(rsa_pad), "{\"kty\":\"RSA\",\"kid\":\"pad\",\"n\":\"%s\",\"e\":\"AQAB\"}",
             n_padded);
    ec_jwk("P-256", x, y_off, off_curve, sizeof(off_curve));
    ec_jwk("P-384", x, y, p384, sizeof(p384));
    ec_jwk("P-256", x31, y, short_x, sizeof(short_x));
    test_jwk(test_shared_rsa2048(), "enc", "\"use\":\"enc\",", rsa_enc, sizeof(rsa_enc));
    test_jwk(test_shared_rsa2048(), "rs384", "\"alg\":\"RS384\",", rsa_rs384, sizeof(rsa_rs384));
    test_jwk(test_shared_rsa2048(), "es", "\"alg\":\"ES256\",", rsa_es256, sizeof(rsa_es256));
    test_jwk(test_shared_rsa2048(), "", NULL, rsa_nokid, sizeof(rsa_nokid));
    test_jwk(test_shared_rsa2048(), "priv", "\"d\":\"AQAB\",", rsa_priv, sizeof(rsa_priv));
    test_jwk(test_shared_rsa2048(), "sign", "\"key_ops\":[\"sign\"],", rsa_sign_only, sizeof(rsa_sign_only));
    char longkid[200];
    memset(longkid, 'k', 129);
    longkid[129] = '\0';
    test_jwk(test_shared_rsa2048(), longkid, NULL, rsa_longkid, sizeof(rsa_longkid));

    struct {
        const char *name;
        const char *jwk;
        const char *why;
    } cases[] = {
        {"rsa-1024", rsa_small, "under 2048"},
        {"rsa-1024-zero-padded", rsa_pad, "under 2048"},
        {"ec-off-curve", off_curve, "not on the curve"},
        {"ec-p384", p384, "P-256"},
        {"ec-short-x", short_x, "32-byte"},
        {"use-enc", rsa_enc, "use"},
        {"alg-rs384", rsa_rs384, "algorithm"},
        {"rsa-as-es256", rsa_es256, "algorithm"},
        {"no-kid", rsa_nokid, "kid"},
        {"kid-too-long", rsa_longkid, "kid"},
        {"private-key", rsa_priv, "private"},
        {"key-ops-sign", rsa_sign_only, "key_ops"},
        {"oct", "{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"c2VjcmV0\"}", "type"},
        {"okp", "{\"kty\":\"OKP\",\"kid\":\"o\",\"crv\":\"Ed25519\",\"x\":\"AAAA\"}", "type"},
        {"no-kty", "{\"kid\":\"x\"}", "kty"},
        {"not-an-object", "\"RSA\"", "object"},
        {"rsa-bad-n", "{\"kty\":\"RSA\",\"kid\":\"b\",\"n\":\"!!\",\"e\":\"AQAB\"}", "\"n\""},
        {"rsa-no-e", "{\"kty\":\"RSA\",\"kid\":\"b\",\"n\":\"AQAB\"}", "\"e\""},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char doc[4096];
        snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", cases[i].jwk);
        jwks_report_t rep;
        jwks_t *k = parse(doc, &rep);
        if (jwks_count(k) != 0 || rep.skipped != 1 || strstr(rep.why, cases[i].why) == NULL) {
            test_fail(__FILE__, __LINE__, "%s: %zu keys, %zu skipped, why \"%s\"", cases[i].name,
                      jwks_count(k), rep.skipped, rep.why);
        }
        jwks_unref(k);
    }
    EVP_PKEY_free(small);
}

TEST(jwks_keeps_good_keys_next_to_bad_ones)
{
    char good[2048], doc[8192];
    test_jwk(test_shared_rsa2048(), "good", NULL, good, sizeof(good));
    snprintf(doc, sizeof(doc), "{\"keys\":[{\"kty\":\"oct\",\"kid\":\"h\",\"k\":\"AA\"},%s,%s,7]}", good,
             good);
    jwks_report_t rep;
    jwks_t *k = parse(doc, &rep);
    CHECK_INT_EQ(jwks_count(k), 1);
    CHECK_INT_EQ(rep.skipped, 3); /* oct, the duplicate kid, the number */
    CHECK(strstr(rep.why, "key 0") != NULL);
    jwks_unref(k);
}

TEST(jwks_refuses_documents_that_are_not_key_sets)
{
    const char *bad[] = {"",
                         "not json",
                         "[]",
                         "{}",
                         "{\"keys\":{}}",
                         "{\"keys\":[]",
                         "{\"keys\":1}",
                         "{\"keys\":[],\"keys\":[]}"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        jwks_t *k = NULL;
        char err[200] = "";
        if (jwks_parse(bad[i], strlen(bad[i]), &k, NULL, err, sizeof(err)) != ERR_INVAL || k != NULL ||
            err[0] == '\0') {
            test_fail(__FILE__, __LINE__, "\"%s\" accepted", bad[i]);
        }
    }
    jwks_t *k = parse("{\"keys\":[]}", NULL);
    CHECK(k != NULL && jwks_count(k) == 0);
    jwks_unref(k);
}

TEST(jwks_caps_the_number_of_keys)
{
    char one[512];
    test_jwk(test_shared_p256(), "PLACEHOLDER", NULL, one, sizeof(one));
    size_t cap = 100 * 600;
    char *doc = malloc(cap);
    size_t n = (size_t)snprintf(doc, cap, "{\"keys\":[");
    for (int i = 0; i < 100; i++) {
        char jwk[512];
        test_jwk(test_shared_p256(), "", NULL, jwk, sizeof(jwk));
        /* give each a distinct kid */
        char kid[16];
        snprintf(kid, sizeof(kid), "k%d", i);
        char *k = strstr(jwk, "\"kid\":\"\"");
        n += (size_t)snprintf(doc + n, cap - n, "%s%.*s\"kid\":\"%s\"%s", i ? "," : "", (int)(k - jwk), jwk,
                              kid, k + 8);
    }
    n += (size_t)snprintf(doc + n, cap - n, "]}");
    jwks_report_t rep;
    jwks_t *k = parse(doc, &rep);
    CHECK_INT_EQ(jwks_count(k), JWKS_MAX_KEYS);
    CHECK_INT_EQ(rep.skipped, 100 - JWKS_MAX_KEYS);
    CHECK(jwks_find(k, STR("k63")) != NULL);
    CHECK(jwks_find(k, STR("k64")) == NULL);
    jwks_unref(k);
    free(doc);
}

TEST(jwks_equal_ignores_order_only)
{
    char a[2048], b[512], d1[4096], d2[4096], d3[4096];
    test_jwk(test_shared_rsa2048(), "rsa-1", NULL, a, sizeof(a));
    test_jwk(test_shared_p256(), "ec-1", NULL, b, sizeof(b));
    snprintf(d1, sizeof(d1), "{\"keys\":[%s,%s]}", a, b);
    snprintf(d2, sizeof(d2), "{\"keys\":[%s,%s]}", b, a);
    EVP_PKEY *other = test_key_p256();
    test_jwk(other, "ec-1", NULL, b, sizeof(b));
    snprintf(d3, sizeof(d3), "{\"keys\":[%s,%s]}", a, b);
    jwks_t *k1 = parse(d1, NULL), *k2 = parse(d2, NULL), *k3 = parse(d3, NULL);
    CHECK(jwks_equal(k1, k2));
    CHECK(!jwks_equal(k1, k3)); /* same kid, another key */
    CHECK(!jwks_equal(k1, NULL));
    jwks_unref(k1);
    jwks_unref(k2);
    jwks_unref(k3);
    EVP_PKEY_free(other);
}

/* ---- tokens against a key set ---- */

static jwt_verifier_t *verifier_with(jwks_t *keys, const char *secret, bool dynamic)
{
    jwt_verifier_opts_t o = {
        .hs256_secret = secret,
        .hs256_secret_len = secret ? strlen(secret) : 0,
        .issuer = "https://idp.test",
        .audience = "https://api.test",
        .leeway_s = 5,
        .require_exp = true,
        .static_keys = keys,
        .dynamic_keys = dynamic,
    };
    return jwt_verifier_new(&o);
}

#define CLAIMS(extra)                                                                                        \
    "{\"iss\":\"https://idp.test\",\"aud\":\"https://"                                                       \
    "api.test\",\"sub\":\"c1\",\"scope\":\"users:read\"" extra "}"
#define EXP ",\"exp\":1800000300"

TEST(jwt_rs256_and_es256_tokens_and_every_refusal)
{
    jwks_t *keys = shared_set();
    jwt_verifier_t *with_secret = verifier_with(keys, SECRET, false);
    jwt_verifier_t *no_secret = verifier_with(keys, NULL, false);
    EVP_PKEY *rsa = test_shared_rsa2048(), *ec = test_shared_p256();
    EVP_PKEY *stranger = test_key_p256();

    /* The RSA key's public half in PEM, as an attacker would use it for
       the HS256 "key confusion" attack (RFC 8725 section 2.1). */
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, rsa);
    char *pem_data;
    long pem_len = BIO_get_mem_data(bio, &pem_data);
    char *pub_as_secret = malloc((size_t)pem_len + 1);
    memcpy(pub_as_secret, pem_data, (size_t)pem_len);
    pub_as_secret[pem_len] = '\0';
    BIO_free(bio);

    uint8_t zeros[64] = {0};
    uint8_t ones[64];
    memset(ones, 0xff, sizeof(ones));
    char es_good[1024], rs_good[2048];
    test_sign("ES256", ec, NULL, "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}", CLAIMS(EXP), es_good,
              sizeof(es_good));
    test_sign("RS256", rsa, NULL, "{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", CLAIMS(EXP), rs_good,
              sizeof(rs_good));

    struct {
        const char *name;
        const char *alg; /* how it is signed; NULL: raw signature below */
        EVP_PKEY *key;
        const char *secret;
        const char *header;
        const char *payload;
        jwt_error_t want_with_secret, want_without;
    } cases[] = {
        {"rs256-ok", "RS256", rsa, NULL, "{\"alg\":\"RS256\",\"kid\":\"rsa-1\",\"typ\":\"at+jwt\"}",
         CLAIMS(EXP), JWT_OK, JWT_OK},
        {"es256-ok", "ES256", ec, NULL, "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}", CLAIMS(EXP), JWT_OK, JWT_OK},
        {"aud-in-array", "ES256", ec, NULL, "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}",
         "{\"iss\":\"https://idp.test\",\"aud\":[\"x\",\"https://api.test\"]" EXP "}", JWT_OK, JWT_OK},
        {"rs256-naming-the-ec-key", "RS256", rsa, NULL, "{\"alg\":\"RS256\",\"kid\":\"ec-1\"}", CLAIMS(EXP),
         JWT_UNSUPPORTED_ALG, JWT_UNSUPPORTED_ALG},
        {"es256-naming-the-rsa-key", "ES256", ec, NULL, "{\"alg\":\"ES256\",\"kid\":\"rsa-1\"}", CLAIMS(EXP),
         JWT_UNSUPPORTED_ALG, JWT_UNSUPPORTED_ALG},
        {"hs256-with-rsa-public-key", "HS256", NULL, pub_as_secret, "{\"alg\":\"HS256\",\"kid\":\"rsa-1\"}",
         CLAIMS(EXP), JWT_BAD_SIGNATURE, JWT_UNSUPPORTED_ALG},
        {"hs256-with-the-secret", "HS256", NULL, SECRET, "{\"alg\":\"HS256\",\"kid\":\"rsa-1\"}", CLAIMS(EXP),
         JWT_OK, JWT_UNSUPPORTED_ALG},
        {"alg-none", "HS256", NULL, SECRET, "{\"alg\":\"none\",\"kid\":\"rsa-1\"}", CLAIMS(EXP),
         JWT_UNSUPPORTED_ALG, JWT_UNSUPPORTED_ALG},
        {"alg-None", "HS256", NULL, SECRET, "{\"alg\":\"None\",\"kid\":\"rsa-1\"}", CLAIMS(EXP),
         JWT_UNSUPPORTED_ALG, JWT_UNSUPPORTED_ALG},
        {"alg-rs384", "RS256", rsa, NULL, "{\"alg\":\"RS384\",\"kid\":\"rsa-1\"}", CLAIMS(EXP),
         JWT_UNSUPPORTED_ALG, JWT_UNSUPPORTED_ALG},
        {"alg-ps256", "RS256", rsa, NULL, "{\"alg\":\"PS256\",\"kid\":\"rsa-1\"}", CLAIMS(EXP),
         JWT_UNSUPPORTED_ALG, JWT_UNSUPPORTED_ALG},
        {"unknown-kid", "ES256", ec, NULL, "{\"alg\":\"ES256\",\"kid\":\"ec-2\"}", CLAIMS(EXP),
         JWT_UNKNOWN_KEY, JWT_UNKNOWN_KEY},
        {"no-kid", "ES256", ec, NULL, "{\"alg\":\"ES256\"}", CLAIMS(EXP), JWT_UNKNOWN_KEY, JWT_UNKNOWN_KEY},
        {"kid-not-a-string", "ES256", ec, NULL, "{\"alg\":\"ES256\",\"kid\":1}", CLAIMS(EXP), JWT_MALFORMED,
         JWT_MALFORMED},
        {"signed-by-another-key", "ES256", stranger, NULL, "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}",
         CLAIMS(EXP), JWT_BAD_SIGNATURE, JWT_BAD_SIGNATURE},
        {"es256-all-zero-signature", NULL, NULL, NULL, "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}", CLAIMS(EXP),
         JWT_BAD_SIGNATURE, JWT_BAD_SIGNATURE},
        {"es256-all-ones-signature", NULL, ec, NULL, "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}", CLAIMS(EXP),
         JWT_BAD_SIGNATURE, JWT_BAD_SIGNATURE},
        {"expired", "RS256", rsa, NULL, "{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}",
         CLAIMS(",\"exp\":1799999990"), JWT_EXPIRED, JWT_EXPIRED},
        {"no-exp", "RS256", rsa, NULL, "{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", CLAIMS(""), JWT_NO_EXPIRY,
         JWT_NO_EXPIRY},
        {"nbf-ahead", "ES256", ec, NULL, "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}",
         CLAIMS(EXP ",\"nbf\":1800000100"), JWT_NOT_YET_VALID, JWT_NOT_YET_VALID},
        {"wrong-issuer", "ES256", ec, NULL, "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}",
         "{\"iss\":\"https://evil.test\",\"aud\":\"https://api.test\"" EXP "}", JWT_BAD_ISSUER,
         JWT_BAD_ISSUER},
        {"wrong-audience", "ES256", ec, NULL, "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}",
         "{\"iss\":\"https://idp.test\",\"aud\":[\"https://other.test\"]" EXP "}", JWT_BAD_AUDIENCE,
         JWT_BAD_AUDIENCE},
        {"no-audience", "ES256", ec, NULL, "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}",
         "{\"iss\":\"https://idp.test\"" EXP "}", JWT_BAD_AUDIENCE, JWT_BAD_AUDIENCE},
        {"crit-header", "ES256", ec, NULL, "{\"alg\":\"ES256\",\"kid\":\"ec-1\",\"crit\":[\"exp\"]}",
         CLAIMS(EXP), JWT_UNSUPPORTED_ALG, JWT_UNSUPPORTED_ALG},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char tok[4096];
        if (cases[i].alg != NULL) {
            test_sign(cases[i].alg, cases[i].key, cases[i].secret, cases[i].header, cases[i].payload, tok,
                      sizeof(tok));
        } else {
            test_token_with_sig(cases[i].header, cases[i].payload, cases[i].key ? ones : zeros, 64, tok,
                                sizeof(tok));
        }
        jwt_claims_t c;
        jwt_error_t a = jwt_verify(with_secret, str_from_cstr(tok), NOW, &c);
        jwt_error_t b = jwt_verify(no_secret, str_from_cstr(tok), NOW, &c);
        if (a != cases[i].want_with_secret || b != cases[i].want_without) {
            test_fail(__FILE__, __LINE__, "%s: got %d/%d, want %d/%d", cases[i].name, a, b,
                      cases[i].want_with_secret, cases[i].want_without);
        }
    }

    /* Signature encodings: only raw R||S of 64 bytes for ES256, only the
       modulus size for RS256. */
    char *dot = strrchr(es_good, '.');
    uint8_t raw[64];
    size_t rawlen;
    CHECK(b64url_decode(str_from_cstr(dot + 1), raw, &rawlen) == 0 && rawlen == 64);
    struct {
        const char *name;
        size_t len;
    } lengths[] = {{"es256-63-bytes", 63}, {"es256-65-bytes", 65}, {"es256-empty", 0}};
    for (size_t i = 0; i < sizeof(lengths) / sizeof(lengths[0]); i++) {
        uint8_t sig[65];
        memcpy(sig, raw, 64);
        sig[64] = 0;
        char tok[1024];
        test_token_with_sig("{\"alg\":\"ES256\",\"kid\":\"ec-1\"}", CLAIMS(EXP), sig, lengths[i].len, tok,
                            sizeof(tok));
        jwt_claims_t c;
        if (jwt_verify(no_secret, str_from_cstr(tok), NOW, &c) == JWT_OK) {
            test_fail(__FILE__, __LINE__, "%s accepted", lengths[i].name);
        }
    }
    /* The same signature in OpenSSL's DER form is not a JWS signature. */
    {
        ECDSA_SIG *es = ECDSA_SIG_new();
        ECDSA_SIG_set0(es, BN_bin2bn(raw, 32, NULL), BN_bin2bn(raw + 32, 32, NULL));
        uint8_t d[80], *p = d;
        int dl = i2d_ECDSA_SIG(es, &p);
        ECDSA_SIG_free(es);
        char tok[1024];
        test_token_with_sig("{\"alg\":\"ES256\",\"kid\":\"ec-1\"}", CLAIMS(EXP), d, (size_t)dl, tok,
                            sizeof(tok));
        jwt_claims_t c;
        CHECK_INT_EQ(jwt_verify(no_secret, str_from_cstr(tok), NOW, &c), JWT_BAD_SIGNATURE);
    }
    {
        char *rdot = strrchr(rs_good, '.');
        uint8_t rsig[256];
        size_t rl;
        CHECK(b64url_decode(str_from_cstr(rdot + 1), rsig, &rl) == 0 && rl == 256);
        char tok[2048];
        test_token_with_sig("{\"alg\":\"RS256\",\"kid\":\"rsa-1\"}", CLAIMS(EXP), rsig, 255, tok,
                            sizeof(tok));
        jwt_claims_t c;
        CHECK_INT_EQ(jwt_verify(no_secret, str_from_cstr(tok), NOW, &c), JWT_BAD_SIGNATURE);
        /* the good signature over other claims */
        *rdot = '\0';
        char *pdot = strchr(rs_good, '.');
        char forged[2048], p64[256];
        const char *claims = CLAIMS(",\"exp\":1900000000");
        test_b64(claims, strlen(claims), p64);
        snprintf(forged, sizeof(forged), "%.*s.%s.%s", (int)(pdot - rs_good), rs_good, p64, rdot + 1);
        CHECK_INT_EQ(jwt_verify(no_secret, str_from_cstr(forged), NOW, &c), JWT_BAD_SIGNATURE);
    }
    jwt_claims_t c;
    CHECK_INT_EQ(jwt_verify(no_secret, str_from_cstr(es_good), NOW, &c), JWT_OK);
    CHECK_MEM_EQ(c.sub, c.sub_len, "c1");
    CHECK(jwt_scope_has(str_make(c.scope, c.scope_len), STR("users:read")));

    free(pub_as_secret);
    EVP_PKEY_free(stranger);
    jwt_verifier_free(with_secret);
    jwt_verifier_free(no_secret);
    jwks_unref(keys);
}

/* ---- the dynamic set ---- */

static int unknown_kid_calls;

static void count_unknown_kid(void *arg)
{
    (void)arg;
    unknown_kid_calls++;
}

TEST(jwt_dynamic_keys_swap_and_invalidate_cached_claims)
{
    jwt_verifier_opts_t o = {
        .leeway_s = 5,
        .require_exp = true,
        .dynamic_keys = true,
        .on_unknown_kid = count_unknown_kid,
    };
    jwt_verifier_t *v = jwt_verifier_new(&o);
    char tok[1024];
    test_sign("ES256", test_shared_p256(), NULL, "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}",
              "{\"exp\":1800000300}", tok, sizeof(tok));
    jwt_claims_t c;
    unknown_kid_calls = 0;
    /* Not loaded yet: 401 for now, and the fetcher is told. */
    CHECK(!jwt_verifier_has_dynamic_keys(v));
    CHECK_INT_EQ(jwt_verify(v, str_from_cstr(tok), NOW, &c), JWT_UNKNOWN_KEY);
    CHECK_INT_EQ(unknown_kid_calls, 1);

    jwks_t *set = shared_set();
    jwt_verifier_set_keys(v, set);
    CHECK(jwt_verifier_has_dynamic_keys(v));
    CHECK_INT_EQ(jwt_verify(v, str_from_cstr(tok), NOW, &c), JWT_OK);
    CHECK(jwt_claims_current(v, &c, NOW));
    CHECK_INT_EQ(unknown_kid_calls, 1);

    /* A refresh with the same keys changes nothing: cached claims stay. */
    jwks_t *same = shared_set();
    uint64_t gen = jwt_verifier_generation(v);
    jwt_verifier_set_keys(v, same);
    CHECK_INT_EQ(jwt_verifier_generation(v), gen);
    CHECK(jwt_claims_current(v, &c, NOW));

    /* The key leaves the set: cached claims stop counting, the token fails. */
    char rsa_only[2048], doc[2200];
    test_jwk(test_shared_rsa2048(), "rsa-1", NULL, rsa_only, sizeof(rsa_only));
    snprintf(doc, sizeof(doc), "{\"keys\":[%s]}", rsa_only);
    jwks_t *rotated = parse(doc, NULL);
    jwt_verifier_set_keys(v, rotated);
    CHECK(jwt_verifier_generation(v) != gen);
    CHECK(!jwt_claims_current(v, &c, NOW));
    CHECK_INT_EQ(jwt_verify(v, str_from_cstr(tok), NOW, &c), JWT_UNKNOWN_KEY);
    CHECK_INT_EQ(unknown_kid_calls, 2);

    /* The caller's references stay the caller's. */
    jwks_unref(set);
    jwks_unref(same);
    jwks_unref(rotated);
    jwt_verifier_free(v);
}

typedef struct {
    jwt_verifier_t *v;
    const char *tok;
    int ok, unknown, other;
} reader_arg_t;

static void *reader_main(void *p)
{
    reader_arg_t *a = p;
    for (int i = 0; i < 300; i++) {
        jwt_claims_t c;
        jwt_error_t e = jwt_verify(a->v, str_from_cstr(a->tok), NOW, &c);
        a->ok += e == JWT_OK;
        a->unknown += e == JWT_UNKNOWN_KEY;
        a->other += e != JWT_OK && e != JWT_UNKNOWN_KEY;
    }
    return NULL;
}

/* Readers on two threads while the main thread swaps sets in and out:
   under ASan this catches a set freed while a reader still uses it. */
TEST(jwt_dynamic_keys_swap_under_concurrent_readers)
{
    jwt_verifier_opts_t o = {.leeway_s = 5, .require_exp = true, .dynamic_keys = true};
    jwt_verifier_t *v = jwt_verifier_new(&o);
    char tok[1024];
    test_sign("ES256", test_shared_p256(), NULL, "{\"alg\":\"ES256\",\"kid\":\"ec-1\"}",
              "{\"exp\":1800000300}", tok, sizeof(tok));
    jwks_t *with = shared_set();
    jwks_t *without = parse("{\"keys\":[]}", NULL);
    reader_arg_t a[2] = {{v, tok, 0, 0, 0}, {v, tok, 0, 0, 0}};
    pthread_t t[2];
    jwt_verifier_set_keys(v, with);
    for (int i = 0; i < 2; i++) {
        pthread_create(&t[i], NULL, reader_main, &a[i]);
    }
    for (int i = 0; i < 200; i++) {
        /* fresh sets each time, so each swap frees the one before */
        jwks_t *fresh = i % 2 ? shared_set() : parse("{\"keys\":[]}", NULL);
        jwt_verifier_set_keys(v, fresh);
        jwks_unref(fresh);
    }
    jwt_verifier_set_keys(v, with);
    for (int i = 0; i < 2; i++) {
        pthread_join(t[i], NULL);
        CHECK_INT_EQ(a[i].ok + a[i].unknown, 300);
        CHECK_INT_EQ(a[i].other, 0);
    }
    jwt_claims_t c;
    CHECK_INT_EQ(jwt_verify(v, str_from_cstr(tok), NOW, &c), JWT_OK);
    jwks_unref(with);
    jwks_unref(without);
    jwt_verifier_free(v);
}
