/*
 * health: liveness and readiness.
 *
 * Liveness is this worker's loop answering, nothing more: a dependency being
 * down must not get the process restarted. Readiness says whether this
 * instance should get traffic: not while draining for shutdown, not while
 * this worker is close to shedding load, and not while any worker has no
 * healthy PostgreSQL connection (each worker has its own pool, and the
 * kernel may hand the next connection to any worker).
 */
#include "db/pool.h"
#include "routes/routes.h"
#include "base/banned.h"

void routes_health_live(http_ctx_t *ctx)
{
    http_respond(ctx, 200, STR("application/json"), STR("{\"status\":\"ok\"}"));
}

/* Close to shedding load: 90 % of the in-flight cap (not counting this
   probe) or of the database waiting room is taken. A load balancer that
   stops sending here now spares clients the 503s that would follow. */
static bool overloaded(const http_ctx_t *ctx)
{
    const http_worker_t *w = ctx->w;
    uint64_t cap = (uint64_t)w->server->opts.max_inflight;
    uint64_t others = w->inflight - 1;
    if (others * 10 >= cap * 9) {
        return true;
    }
    if (w->db != NULL) {
        db_pool_stats_t st;
        db_pool_stats(w->db, &st);
        if (st.max_waiters > 0 && (uint64_t)st.waiting * 10 >= (uint64_t)st.max_waiters * 9) {
            return true;
        }
    }
    return false;
}

/* Why this instance should not get traffic now, or NULL: the one
   predicate behind /health/ready and the api_ready gauge. */
static const http_problem_t *not_ready(const http_ctx_t *ctx)
{
    static const http_problem_t draining = {.status = 503,
                                            .slug = "not-ready",
                                            .title = "Not ready",
                                            .detail = STR("the server is shutting down")};
    static const http_problem_t deps = {
        .status = 503,
        .slug = "not-ready",
        .title = "Not ready",
        .detail = STR("a required dependency (PostgreSQL, or Redis when required) is down"),
        .retry_after_s = 1};
    static const http_problem_t busy = {
        .status = 503,
        .slug = "overloaded",
        .title = "Server overloaded",
        .detail = STR("this worker is close to its in-flight or database queue limits"),
        .retry_after_s = 1};
    if (atomic_load_explicit(&ctx->w->server->draining, memory_order_relaxed)) {
        return &draining;
    }
    if (atomic_load_explicit(&ctx->w->server->deps_down, memory_order_relaxed) > 0) {
        return &deps;
    }
    if (overloaded(ctx)) {
        return &busy;
    }
    return NULL;
}

bool routes_health_is_ready(const http_ctx_t *ctx)
{
    return not_ready(ctx) == NULL;
}

void routes_health_ready(http_ctx_t *ctx)
{
    const http_problem_t *p = not_ready(ctx);
    if (p != NULL) {
        http_respond_problem(ctx, p);
        return;
    }
    http_respond(ctx, 200, STR("application/json"), STR("{\"status\":\"ready\"}"));
}
