/*
 * gcra: the Generic Cell Rate Algorithm, the rate-limit arithmetic shared by
 * the Redis script (middleware/ratelimit.c) and the in-process fallback.
 *
 * A policy allows `limit` requests per `window`, as a burst of up to `limit`
 * that refills evenly (one request every window/limit). The only state per
 * identity is the theoretical arrival time (TAT): when the budget would be
 * full again. All times are microseconds.
 */
#ifndef BASE_GCRA_H
#define BASE_GCRA_H

#include <stdbool.h>
#include <stdint.h>

typedef struct {
    int64_t limit;
    int64_t window_us;
} gcra_policy_t;

typedef struct {
    bool allowed;
    int64_t remaining;     /* requests left right now */
    int64_t reset_s;       /* seconds until the budget is full again (ceil) */
    int64_t retry_after_s; /* when denied: seconds until one request is allowed (ceil, >= 1) */
} gcra_result_t;

/* The refill interval, at least 1 us. */
int64_t gcra_interval_us(const gcra_policy_t *p);

/* One request at now_us against stored tat (0: none). Returns the TAT to
   store (the old one when denied). */
int64_t gcra_take(const gcra_policy_t *p, int64_t tat, int64_t now_us, gcra_result_t *out);

#endif
