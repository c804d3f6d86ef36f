/*
 * health: liveness and readiness.
 *
 * Liveness is this worker's loop answering, nothing more: a dependency being
 * down must not get the process restarted. Readiness says whether this
 * instance should get traffic: not while draining for shutdown, and not
 * while any worker has no healthy PostgreSQL connection (each worker has
 * its own pool, and the kernel may hand the next connection to any worker).
 */
#include "routes/routes.h"
#include "base/banned.h"

void routes_health_live(http_ctx_t *ctx)
{
    http_respond(ctx, 200, STR("application/json"), STR("{\"status\":\"ok\"}"));
}

void routes_health_ready(http_ctx_t *ctx)
{
    if (atomic_load_explicit(&ctx->w->server->draining, memory_order_relaxed)) {
        http_problem_t p = {.status = 503,
                            .slug = "not-ready",
                            .title = "Not ready",
                            .detail = STR("the server is shutting down")};
        http_respond_problem(ctx, &p);
        return;
    }
    if (atomic_load_explicit(&ctx->w->server->deps_down, memory_order_relaxed) > 0) {
        http_problem_t p = {.status = 503,
                            .slug = "not-ready",
                            .title = "Not ready",
                            .detail =
                                STR("a required dependency (PostgreSQL, or Redis when required) is down"),
                            .retry_after_s = 1};
        http_respond_problem(ctx, &p);
        return;
    }
    http_respond(ctx, 200, STR("application/json"), STR("{\"status\":\"ready\"}"));
}
