/* pipeline: the step table and its driver. */
#include "middleware/pipeline.h"

#include <stdio.h>

#include "middleware/auth.h"
#include "middleware/idempotency.h"
#include "middleware/ratelimit.h"
#include "base/banned.h"

typedef struct {
    const char *name;
    mw_result_t (*run)(http_ctx_t *ctx);
} mw_step_t;

static mw_result_t check_route(http_ctx_t *ctx)
{
    switch (ctx->route_status) {
    case HTTP_ROUTE_FOUND:
        return MW_NEXT;
    case HTTP_ROUTE_BAD_METHOD: {
        char allow[96];
        size_t n = http_methods_format(ctx->match.allow, allow, sizeof(allow));
        http_header_add(ctx, STR("allow"), str_make(allow, n));
        char detail[160];
        snprintf(detail, sizeof(detail), "this resource supports %s", allow);
        http_respond_error(ctx, 405, "method-not-allowed", detail);
        return MW_DONE;
    }
    case HTTP_ROUTE_NOT_FOUND:
        break;
    }
    http_respond_error(ctx, 404, "not-found", "no resource at this path");
    return MW_DONE;
}

static mw_result_t run_handler(http_ctx_t *ctx)
{
    ctx->match.route->handler(ctx);
    return MW_DONE;
}

static const mw_step_t steps[] = {
    {"authn", mw_authn_run},             /* who is calling (never answers) */
    {"ratelimit", mw_ratelimit_run},     /* 429; headers on every /v1 answer */
    {"route", check_route},              /* 404 / 405 */
    {"authz", mw_authz_run},             /* 401 / 403 */
    {"idempotency", mw_idempotency_run}, /* replay, 409 in flight, 422 reused */
    {"handler", run_handler},
};

void mw_run(http_ctx_t *ctx)
{
    while (ctx->step < sizeof(steps) / sizeof(steps[0])) {
        mw_result_t r = steps[ctx->step].run(ctx);
        if (r != MW_NEXT) {
            return; /* MW_DONE: answered; MW_SUSPEND: mw_resume comes later */
        }
        ctx->step++;
    }
}

void mw_resume(http_ctx_t *ctx)
{
    ctx->step++;
    mw_run(ctx);
}
