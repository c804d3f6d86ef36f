/*
 * jwt_claims: the claims of a token whose signature is good. The input is
 * the payload (the JSON claim set); the target wraps it in a token with an
 * HS256 header and signs it with the fixture's secret, so every input gets
 * past the signature check to the claim checks, which a fuzzer could never
 * reach by forging signatures. Raw tokens are the jwt target's job.
 *
 * Properties: a good signature is never reported as a bad one or as a key
 * or algorithm problem; accepted claims come from a JSON object with the
 * configured issuer, bounded NUL-free sub and scope, and are current at
 * the clock they were verified at; an exp in the past (beyond the leeway)
 * is never accepted.
 */
#include <jansson.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "base/b64.h"
#include "middleware/jwt.h"
#include "fuzz.h"
#include "fuzz_keys.h"

#define MAX_PAYLOAD 6000 /* the payload, encoded, must fit JWT_MAX_TOKEN */

static jwt_verifier_t *v;
static EVP_MD *sha256;

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    jwt_verifier_opts_t o = {
        .hs256_secret = FUZZ_HS256_SECRET,
        .hs256_secret_len = strlen(FUZZ_HS256_SECRET),
        .issuer = FUZZ_ISSUER,
        .audience = FUZZ_AUDIENCE,
        .leeway_s = FUZZ_LEEWAY,
        .require_exp = true,
    };
    v = jwt_verifier_new(&o);
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    FUZZ_ASSERT(v != NULL && sha256 != NULL);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_PAYLOAD) {
        return 0;
    }
    static const char header[] = "{\"alg\":\"HS256\",\"typ\":\"JWT\"}";
    char tok[JWT_MAX_TOKEN];
    size_t n = b64url_encode((const uint8_t *)header, sizeof(header) - 1, tok);
    tok[n++] = '.';
    n += b64url_encode(data, size, tok + n);
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int maclen = 0;
    FUZZ_ASSERT(HMAC(sha256, FUZZ_HS256_SECRET, (int)strlen(FUZZ_HS256_SECRET), (const unsigned char *)tok, n,
                     mac, &maclen) != NULL);
    tok[n++] = '.';
    n += b64url_encode(mac, maclen, tok + n);
    FUZZ_ASSERT(n <= sizeof(tok));

    jwt_claims_t c;
    jwt_error_t e = jwt_verify(v, str_make(tok, n), FUZZ_NOW, &c);
    FUZZ_ASSERT(e != JWT_BAD_SIGNATURE && e != JWT_UNKNOWN_KEY && e != JWT_UNSUPPORTED_ALG);
    if (e != JWT_OK) {
        return 0;
    }
    FUZZ_ASSERT(c.sub_len <= JWT_MAX_SUB && strlen(c.sub) == c.sub_len);
    FUZZ_ASSERT(c.scope_len <= JWT_MAX_SCOPE && strlen(c.scope) == c.scope_len);
    FUZZ_ASSERT(c.has_exp && c.exp > FUZZ_NOW - FUZZ_LEEWAY);
    FUZZ_ASSERT(!c.has_nbf || c.nbf <= FUZZ_NOW + FUZZ_LEEWAY);
    FUZZ_ASSERT(jwt_claims_current(v, &c, FUZZ_NOW));

    json_t *claims = json_loadb((const char *)data, size, 0, NULL);
    FUZZ_ASSERT(json_is_object(claims));
    json_t *iss = json_object_get(claims, "iss");
    FUZZ_ASSERT(json_is_string(iss) && strcmp(json_string_value(iss), FUZZ_ISSUER) == 0);
    json_t *sub = json_object_get(claims, "sub");
    FUZZ_ASSERT(sub == NULL || (json_is_string(sub) && json_string_length(sub) == c.sub_len &&
                                memcmp(json_string_value(sub), c.sub, c.sub_len) == 0));
    json_decref(claims);
    return 0;
}
