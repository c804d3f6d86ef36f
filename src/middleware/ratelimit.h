/*
 * ratelimit: the pipeline step that meters every /v1 request.
 *
 * One atomic Redis script (GCRA, see base/gcra.h) per request makes the
 * budget global across every process sharing the Redis. The identity is the
 * token's sub when the token is valid, else the client address. Every /v1
 * response carries X-RateLimit-Limit/-Remaining/-Reset and the IETF draft-11
 * RateLimit-Policy / RateLimit pair; past the budget: 429 quota-exceeded with
 * a truthful Retry-After.
 *
 * Far from the limit, callers Redis confirmed recently are metered in-process
 * and reported to Redis in batches; near it, every request asks Redis, so the
 * boundary stays exact (see ratelimit.c and docs/redis.md).
 *
 * When Redis is unusable (down, breaker open, slow past its command timeout)
 * the fail mode decides: "local" (default) meters with an in-process,
 * lock-free GCRA table shared by the workers; "open" lets requests through
 * unmetered; "closed" answers 503. Transitions are logged once; decisions
 * are counted (api_rate_limit_fail_mode_total).
 */
#ifndef MIDDLEWARE_RATELIMIT_H
#define MIDDLEWARE_RATELIMIT_H

#include <stdint.h>

#include "middleware/pipeline.h"

typedef enum { RL_FAIL_LOCAL, RL_FAIL_OPEN, RL_FAIL_CLOSED } rl_fail_mode_t;

typedef struct {
    int64_t limit; /* 0: rate limiting off */
    int64_t window_s;
    rl_fail_mode_t fail_mode;
} rl_opts_t;

/* Call once before workers start. */
void mw_ratelimit_init(const rl_opts_t *opts);
mw_result_t mw_ratelimit_run(http_ctx_t *ctx);

#endif
