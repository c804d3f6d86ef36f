/*
 * jwt: a bearer token as a client sends it, through jwt_verify with an
 * HS256 secret and the fixed JWKS of fuzz_keys.h (an RSA and a P-256 key),
 * issuer and audience configured, at a fixed clock.
 *
 * Each token is verified three times: by that verifier, by one with the
 * secret only and by one with the key set only. Properties: the full
 * verifier accepts exactly when one of the partial ones does (the secret
 * and the key set never answer for each other's algorithms); an accepted
 * token's header names the algorithm of the key that checked it; accepted
 * claims are bounded, NUL-free strings and current at the clock they were
 * verified at.
 */
#include <jansson.h>
#include <string.h>

#include "base/b64.h"
#include "middleware/jwks.h"
#include "middleware/jwt.h"
#include "fuzz.h"
#include "fuzz_keys.h"

static jwt_verifier_t *full, *secret_only, *keys_only;

static jwt_verifier_t *verifier(bool secret, jwks_t *keys)
{
    jwt_verifier_opts_t o = {
        .hs256_secret = secret ? FUZZ_HS256_SECRET : NULL,
        .hs256_secret_len = secret ? strlen(FUZZ_HS256_SECRET) : 0,
        .issuer = FUZZ_ISSUER,
        .audience = FUZZ_AUDIENCE,
        .leeway_s = FUZZ_LEEWAY,
        .require_exp = true,
        .static_keys = keys,
    };
    jwt_verifier_t *v = jwt_verifier_new(&o);
    FUZZ_ASSERT(v != NULL);
    return v;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    jwks_t *keys = NULL;
    jwks_report_t rep;
    char err[200];
    FUZZ_ASSERT(jwks_parse(FUZZ_JWKS, strlen(FUZZ_JWKS), &keys, &rep, err, sizeof(err)) == 0);
    FUZZ_ASSERT(rep.used == 2 && rep.skipped == 0);
    full = verifier(true, keys);
    secret_only = verifier(true, NULL);
    keys_only = verifier(false, keys);
    jwks_unref(keys); /* the verifiers hold their own references */
    return 0;
}

/* The token's header "alg" and "kid" (copied out; "" when absent). */
static void read_header(str_t token, char *alg, char *kid, size_t cap)
{
    alg[0] = kid[0] = '\0';
    const char *dot = memchr(token.ptr, '.', token.len);
    str_t h64 = str_make(token.ptr, dot ? (size_t)(dot - token.ptr) : token.len);
    uint8_t buf[1024];
    size_t n;
    FUZZ_ASSERT(b64url_decoded_max(h64.len) <= sizeof(buf)); /* jwt_verify accepted it */
    FUZZ_ASSERT(b64url_decode(h64, buf, &n) == 0);
    json_t *h = json_loadb((const char *)buf, n, 0, NULL);
    FUZZ_ASSERT(json_is_object(h));
    const char *a = json_string_value(json_object_get(h, "alg"));
    const char *k = json_string_value(json_object_get(h, "kid"));
    snprintf(alg, cap, "%s", a ? a : "");
    snprintf(kid, cap, "%s", k ? k : "");
    json_decref(h);
}

static void check_claims(const jwt_verifier_t *v, const jwt_claims_t *c)
{
    FUZZ_ASSERT(c->sub_len <= JWT_MAX_SUB && strlen(c->sub) == c->sub_len);
    FUZZ_ASSERT(c->scope_len <= JWT_MAX_SCOPE && strlen(c->scope) == c->scope_len);
    FUZZ_ASSERT(c->has_exp); /* require_exp */
    FUZZ_ASSERT(jwt_claims_current(v, c, FUZZ_NOW));
    (void)jwt_scope_has(str_make(c->scope, c->scope_len), STR("users:read"));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    str_t token = fuzz_input(data, size);
    jwt_claims_t c_full, c_secret, c_keys;
    jwt_error_t e_full = jwt_verify(full, token, FUZZ_NOW, &c_full);
    jwt_error_t e_secret = jwt_verify(secret_only, token, FUZZ_NOW, &c_secret);
    jwt_error_t e_keys = jwt_verify(keys_only, token, FUZZ_NOW, &c_keys);
    FUZZ_ASSERT(strlen(jwt_error_text(e_full)) > 0);
    FUZZ_ASSERT(!(e_secret == JWT_OK && e_keys == JWT_OK));
    FUZZ_ASSERT((e_full == JWT_OK) == (e_secret == JWT_OK || e_keys == JWT_OK));
    if (e_full != JWT_OK) {
        return 0;
    }
    check_claims(full, &c_full);
    char alg[160], kid[160];
    read_header(token, alg, kid, sizeof(alg));
    if (e_secret == JWT_OK) {
        check_claims(secret_only, &c_secret);
        FUZZ_ASSERT(strcmp(alg, "HS256") == 0);
    } else {
        check_claims(keys_only, &c_keys);
        FUZZ_ASSERT((strcmp(alg, "RS256") == 0 && strcmp(kid, "fuzz-rsa") == 0) ||
                    (strcmp(alg, "ES256") == 0 && strcmp(kid, "fuzz-ec") == 0));
    }
    return 0;
}
