/*
 * debug: routes for tests only, enabled with API_DEBUG_ROUTES=1.
 *
 * GET /debug/sleep?ms=N answers after N ms without blocking the loop. Tests
 * use it to hold a request in flight (deadlines, graceful shutdown). It is
 * also the smallest example of the pending-operation contract: the sleep is
 * heap-owned, finishes or is cancelled exactly once, and a late finish after
 * the request is gone is dropped.
 *
 * GET /debug/block?ms=N is its opposite: it blocks the worker's event loop
 * for N ms (a plain sleep in the handler), the one thing a worker must never
 * do. Tests use it to check that the systemd watchdog stops being fed while a
 * loop is stuck (app/notify.c).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base/clock.h"
#include "base/err.h"
#include "http/query.h"
#include "routes/routes.h"
#include "base/banned.h"

#define SLEEP_MAX_MS 60000

typedef struct {
    http_pending_t pending;
    struct timer timer;
    http_worker_t *w;
    int64_t ms;
} sleep_op_t;

static void on_sleep_done(struct timer *t)
{
    sleep_op_t *op = t->data;
    http_ctx_t *ctx = http_pending_finish(&op->pending);
    if (ctx != NULL) {
        buf_t *b = http_scratch(ctx);
        buf_printf(b, "{\"slept_ms\":%lld}", (long long)op->ms);
        http_respond_json(ctx, 200, b);
    }
    free(op);
}

static void on_sleep_cancel(http_pending_t *p)
{
    sleep_op_t *op = (sleep_op_t *)p;
    timer_cancel(&op->w->timers, &op->timer);
    free(op);
}

void routes_debug_sleep(http_ctx_t *ctx)
{
    str_t v;
    int64_t ms;
    if (http_query_get(ctx->query, STR("ms"), &v) != 0 || str_to_i64(v, 0, SLEEP_MAX_MS, &ms) != 0) {
        http_respond_invalid(ctx, 400, STR("ms"), "must be an integer from 0 to 60000",
                             "invalid query parameter");
        return;
    }
    sleep_op_t *op = calloc(1, sizeof(*op));
    if (op == NULL) {
        http_respond_err(ctx, ERR_NOMEM);
        return;
    }
    op->w = ctx->w;
    op->ms = ms;
    op->pending.cancel = on_sleep_cancel;
    timer_init(&op->timer, on_sleep_done, op);
    if (timer_arm(&ctx->w->timers, &op->timer, clock_mono_ms() + (uint64_t)ms) != 0) {
        free(op);
        http_respond_err(ctx, ERR_NOMEM);
        return;
    }
    http_pending_attach(ctx, &op->pending);
}

void routes_debug_block(http_ctx_t *ctx)
{
    str_t v;
    int64_t ms;
    if (http_query_get(ctx->query, STR("ms"), &v) != 0 || str_to_i64(v, 0, SLEEP_MAX_MS, &ms) != 0) {
        http_respond_invalid(ctx, 400, STR("ms"), "must be an integer from 0 to 60000",
                             "invalid query parameter");
        return;
    }
    struct timespec left = {.tv_sec = (time_t)(ms / 1000), .tv_nsec = (long)(ms % 1000) * 1000000};
    while (nanosleep(&left, &left) != 0 && errno == EINTR) {
        /* sleep what is left: the point is that the loop stays stuck */
    }
    buf_t *b = http_scratch(ctx);
    buf_printf(b, "{\"blocked_ms\":%lld}", (long long)ms);
    http_respond_json(ctx, 200, b);
}
