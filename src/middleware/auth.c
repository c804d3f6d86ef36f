/* auth: Bearer token extraction, verification and scope checks. */
#include "middleware/auth.h"

#include <openssl/crypto.h>
#include <stdio.h>

#include "base/clock.h"
#include "base/digest.h"
#include "base/banned.h"

static const jwt_verifier_t *verifier;

/*
 * Verified tokens, per worker thread: a client sends the same token on
 * every request, and verifying it (base64, two JSON parses, an HMAC or a
 * signature) is most of this step's cost. Entries are keyed by the SHA-256
 * of the whole token and compared in constant time (CRYPTO_memcmp), so the
 * time a lookup takes says nothing about how much of a cached token a
 * guess got right; a collision would need a second preimage. Entries hold
 * the verified claims and are re-checked on every use (exp/nbf, and the key
 * set they verified under: a key that left the JWKS takes its tokens with
 * it). Only tokens that verified are cached. Direct-mapped: a busy slot is
 * replaced.
 */
#define TOKEN_CACHE_SLOTS 64

typedef struct {
    bool used;
    uint8_t hash[DIGEST_SHA256_LEN];
    jwt_claims_t claims;
} cached_token_t;

static _Thread_local cached_token_t token_cache[TOKEN_CACHE_SLOTS];

static cached_token_t *cache_slot(const uint8_t *hash)
{
    uint32_t h;
    memcpy(&h, hash, sizeof(h));
    return &token_cache[h % TOKEN_CACHE_SLOTS];
}

const jwt_claims_t *mw_auth_verify_cached(const jwt_verifier_t *v, str_t token, int64_t now,
                                          jwt_claims_t *fresh, jwt_error_t *err)
{
    uint8_t hash[DIGEST_SHA256_LEN];
    if (digest_sha256(token.ptr, token.len, hash) != 0) {
        *err = jwt_verify(v, token, now, fresh); /* no cache without a hash */
        return *err == JWT_OK ? fresh : NULL;
    }
    cached_token_t *slot = cache_slot(hash);
    if (slot->used && CRYPTO_memcmp(slot->hash, hash, sizeof(hash)) == 0 &&
        jwt_claims_current(v, &slot->claims, now)) {
        *err = JWT_OK;
        return &slot->claims;
    }
    *err = jwt_verify(v, token, now, fresh);
    if (*err != JWT_OK) {
        return NULL;
    }
    slot->used = true;
    memcpy(slot->hash, hash, sizeof(hash));
    slot->claims = *fresh;
    return fresh;
}

void mw_auth_init(const jwt_verifier_t *v)
{
    verifier = v;
}

static mw_result_t deny(http_ctx_t *ctx, int status, const char *challenge, const char *detail)
{
    http_header_add(ctx, STR("www-authenticate"), str_from_cstr(challenge));
    http_respond_error(ctx, status, status == 401 ? "unauthorized" : "forbidden", detail);
    return MW_DONE;
}

mw_result_t mw_authn_run(http_ctx_t *ctx)
{
    if (!str_eq(ctx->path, STR("/v1")) && !str_starts_with(ctx->path, STR("/v1/"))) {
        return MW_NEXT;
    }
    str_t h = http_header_get(ctx, STR("authorization"));
    /* RFC 6750 2.1: "Bearer" (case-insensitive scheme), one space, token68 */
    if (h.len < 8 || !str_eq_nocase(str_make(h.ptr, 7), STR("Bearer ")) || verifier == NULL) {
        ctx->auth_error = 0; /* no usable credentials: a plain challenge */
        return MW_NEXT;
    }
    str_t token = str_make(h.ptr + 7, h.len - 7);
    while (token.len > 0 && token.ptr[0] == ' ') {
        token.ptr++, token.len--;
    }
    int64_t now = clock_wall_us() / 1000000;
    jwt_claims_t *fresh = h2o_mem_alloc_pool(&ctx->req->pool, sizeof(*fresh));
    jwt_error_t e;
    const jwt_claims_t *claims = mw_auth_verify_cached(verifier, token, now, fresh, &e);
    if (claims == NULL) {
        ctx->auth_error = (int)e;
        return MW_NEXT;
    }
    ctx->authenticated = true;
    char *copy = h2o_mem_alloc_pool(&ctx->req->pool, claims->sub_len + claims->scope_len + 1);
    memcpy(copy, claims->sub, claims->sub_len);
    memcpy(copy + claims->sub_len, claims->scope, claims->scope_len);
    ctx->subject = str_make(copy, claims->sub_len);
    ctx->scopes = str_make(copy + claims->sub_len, claims->scope_len);
    return MW_NEXT;
}

mw_result_t mw_authz_run(http_ctx_t *ctx)
{
    const http_route_t *route = ctx->match.route;
    if ((route->flags & HTTP_ROUTE_API) == 0) {
        return MW_NEXT;
    }
    if (!ctx->authenticated) {
        if (ctx->auth_error == 0) {
            return deny(ctx, 401, "Bearer realm=\"api\"", "a Bearer token is required");
        }
        const char *why = jwt_error_text((jwt_error_t)ctx->auth_error);
        char challenge[192];
        snprintf(challenge, sizeof(challenge),
                 "Bearer realm=\"api\", error=\"invalid_token\", error_description=\"%s\"", why);
        return deny(ctx, 401, challenge, why);
    }
    if (route->scope != NULL && !jwt_scope_has(ctx->scopes, str_from_cstr(route->scope))) {
        char challenge[160];
        char detail[128];
        snprintf(challenge, sizeof(challenge),
                 "Bearer realm=\"api\", error=\"insufficient_scope\", scope=\"%s\"", route->scope);
        snprintf(detail, sizeof(detail), "the token lacks the scope %s", route->scope);
        return deny(ctx, 403, challenge, detail);
    }
    return MW_NEXT;
}
