/* auth: Bearer token extraction, verification and scope checks. */
#include "middleware/auth.h"

#include <stdio.h>

#include "base/clock.h"
#include "base/banned.h"

static const jwt_verifier_t *verifier;

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
    jwt_claims_t *claims = h2o_mem_alloc_pool(&ctx->req->pool, sizeof(*claims));
    jwt_error_t e = jwt_verify(verifier, token, clock_wall_us() / 1000000, claims);
    if (e != JWT_OK) {
        ctx->auth_error = (int)e;
        return MW_NEXT;
    }
    ctx->authenticated = true;
    ctx->subject = str_make(claims->sub, claims->sub_len);
    ctx->scopes = str_make(claims->scope, claims->scope_len);
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
