/*
 * timer: a binary min-heap of one-shot timers, one heap per event loop.
 *
 * Why not h2o's timeouts: in h2o 2.2.5 an h2o_timeout_t is a FIFO list that
 * serves one fixed duration, and it runs on wall-clock time. Request
 * deadlines, retry backoff and Redis command deadlines need arbitrary
 * durations on a monotonic clock, so each worker owns one of these heaps and
 * bounds h2o_evloop_run()'s wait by timer_heap_next_wait().
 *
 * Not thread-safe: a heap belongs to the thread of its loop. The timer_entry_t
 * storage belongs to the caller and must stay valid while the timer is armed;
 * a callback may re-arm or cancel any timer, including its own.
 */
#ifndef BASE_TIMER_H
#define BASE_TIMER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct timer timer_entry_t;
typedef struct timer_heap timer_heap_t;
typedef void (*timer_cb)(struct timer *t);

struct timer {
    uint64_t at_ms; /* monotonic expiry */
    size_t idx;     /* position in the heap + 1; 0 = not armed */
    uint64_t seq;   /* tie-breaker: equal expiries fire in arming order */
    timer_cb cb;
    void *data;
};

struct timer_heap {
    struct timer **items;
    size_t len;
    size_t cap;
    uint64_t seq;
};

void timer_heap_init(timer_heap_t *h);
/* The heap must be empty (every timer cancelled or fired). */
void timer_heap_deinit(timer_heap_t *h);

static inline void timer_init(struct timer *t, timer_cb cb, void *data)
{
    *t = (struct timer){.cb = cb, .data = data};
}

static inline bool timer_is_armed(const struct timer *t)
{
    return t->idx != 0;
}

/* Arms (or re-arms) t to fire at at_ms. Returns 0 or ERR_NOMEM. */
int timer_arm(timer_heap_t *h, struct timer *t, uint64_t at_ms) __attribute__((warn_unused_result));
/* Disarms t; a no-op when it is not armed. */
void timer_cancel(timer_heap_t *h, struct timer *t);
/* Milliseconds until the earliest timer (0 if due), or max_ms if none sooner. */
int32_t timer_heap_next_wait(const timer_heap_t *h, uint64_t now_ms, int32_t max_ms);
/* Fires every timer due at now_ms, earliest first. Returns how many fired. */
size_t timer_heap_run(timer_heap_t *h, uint64_t now_ms);

#endif
