/*
 * metrics: GET /metrics, the Prometheus text exposition (format 0.0.4).
 *
 * The body is rendered into the worker's scratch buffer from every shard
 * (obs/metrics.h): nothing waits for another worker, and the cost grows
 * with the number of series, not with the traffic. Readiness is judged
 * here, as /health/ready would answer on this worker right now.
 */
#include "base/err.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "routes/routes.h"
#include "base/banned.h"

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

void routes_metrics(http_ctx_t *ctx)
{
    metrics_scrape_t x = {.ready = routes_health_is_ready(ctx), .log_dropped = log_dropped()};
    buf_t *b = http_scratch(ctx);
    metrics_render(b, &x);
    if (buf_failed(b)) {
        http_respond_err(ctx, ERR_NOMEM);
        return;
    }
    http_respond(ctx, 200, STR(METRICS_CONTENT_TYPE), buf_str(b));
}
