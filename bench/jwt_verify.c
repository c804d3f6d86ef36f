/*
 * jwt_verify: what token verification costs per request, measured on the
 * code the auth step runs (mw_auth_verify_cached): a token already in the
 * thread's cache, and uncached RS256 (RSA-2048) and ES256 (P-256) tokens
 * (a fresh token per request, from a pool much larger than the cache).
 *
 *   make bench-jwt            (release build; one thread, CPU-bound)
 *   build/bench/jwt-verify [SECONDS_PER_CASE]
 *
 * Tokens look like an identity provider's access tokens (oidc-provider's
 * claims: jti, sub, iat, exp, scope, client_id, iss, aud), verified with
 * iss and aud checks on. Prints ns (cached) / µs per verification, wall
 * time and thread CPU time over the whole loop.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "middleware/auth.h"
#include "middleware/keys_support.h"

#define POOL      512 /* distinct tokens per uncached case: >> the 64-slot cache */
#define NOW       1800000000
#define ISSUER    "https://idp.example.com"
#define AUDIENCE  "https://api.example.com"
#define TOKEN_MAX 2048

static double now_s(clockid_t clock)
{
    struct timespec ts;
    clock_gettime(clock, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void make_tokens(const char *alg, EVP_PKEY *key, const char *kid, char (*out)[TOKEN_MAX], int n)
{
    for (int i = 0; i < n; i++) {
        char header[128], payload[512];
        snprintf(header, sizeof(header), "{\"alg\":\"%s\",\"typ\":\"at+jwt\",\"kid\":\"%s\"}", alg, kid);
        snprintf(payload, sizeof(payload),
                 "{\"jti\":\"bench-%08d-0123456789abcdefghijklmn\",\"sub\":\"client-%d\",\"iat\":%d,"
                 "\"exp\":%d,\"scope\":\"users:read users:write\",\"client_id\":\"client-%d\","
                 "\"iss\":\"" ISSUER "\",\"aud\":\"" AUDIENCE "\"}",
                 i, i % 7, NOW - 10, NOW + 3600, i % 7);
        test_sign(alg, key, NULL, header, payload, out[i], TOKEN_MAX);
    }
}

/* Runs verifications of tokens[i % n] for about `seconds`; prints per op. */
static void run_case(const char *name, const jwt_verifier_t *v, char (*tokens)[TOKEN_MAX], int n,
                     double seconds, double unit, const char *unit_name)
{
    jwt_claims_t fresh;
    jwt_error_t e;
    /* warm-up, and a check that the tokens verify at all */
    for (int i = 0; i < n; i++) {
        if (mw_auth_verify_cached(v, str_from_cstr(tokens[i]), NOW, &fresh, &e) == NULL) {
            fprintf(stderr, "%s: token %d refused (%d)\n", name, i, e);
            exit(1);
        }
    }
    long ops = 0;
    double w0 = now_s(CLOCK_MONOTONIC), c0 = now_s(CLOCK_THREAD_CPUTIME_ID), w1;
    do {
        for (int k = 0; k < 256; k++, ops++) {
            if (mw_auth_verify_cached(v, str_from_cstr(tokens[ops % n]), NOW, &fresh, &e) == NULL) {
                exit(1);
            }
        }
        w1 = now_s(CLOCK_MONOTONIC);
    } while (w1 - w0 < seconds);
    double c1 = now_s(CLOCK_THREAD_CPUTIME_ID);
    printf("%-16s %10ld verifications  %9.2f %s/op wall  %9.2f %s/op cpu\n", name, ops,
           (w1 - w0) / (double)ops * unit, unit_name, (c1 - c0) / (double)ops * unit, unit_name);
}

int main(int argc, char **argv)
{
    double seconds = argc > 1 ? atof(argv[1]) : 1.0;
    EVP_PKEY *rsa = test_key_rsa(2048), *ec = test_key_p256();
    char rjwk[2048], ejwk[512], doc[4096], err[128];
    test_jwk(rsa, "rsa-1", "\"use\":\"sig\",\"alg\":\"RS256\",", rjwk, sizeof(rjwk));
    test_jwk(ec, "ec-1", "\"use\":\"sig\",\"alg\":\"ES256\",", ejwk, sizeof(ejwk));
    snprintf(doc, sizeof(doc), "{\"keys\":[%s,%s]}", rjwk, ejwk);
    jwks_t *keys = NULL;
    if (jwks_parse(doc, strlen(doc), &keys, NULL, err, sizeof(err)) != 0) {
        fprintf(stderr, "jwks: %s\n", err);
        return 1;
    }
    jwt_verifier_opts_t o = {
        .issuer = ISSUER, .audience = AUDIENCE, .leeway_s = 5, .require_exp = true, .static_keys = keys};
    jwt_verifier_t *v = jwt_verifier_new(&o);

    static char rs[POOL][TOKEN_MAX], es[POOL][TOKEN_MAX];
    make_tokens("RS256", rsa, "rsa-1", rs, POOL);
    make_tokens("ES256", ec, "ec-1", es, POOL);
    printf("token sizes: RS256 %zu bytes, ES256 %zu bytes; %.1f s per case, one thread\n", strlen(rs[0]),
           strlen(es[0]), seconds);
    run_case("cached (RS256)", v, rs, 1, seconds, 1e9, "ns");
    run_case("uncached RS256", v, rs, POOL, seconds, 1e6, "us");
    run_case("uncached ES256", v, es, POOL, seconds, 1e6, "us");

    jwt_verifier_free(v);
    jwks_unref(keys);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(ec);
    return 0;
}
