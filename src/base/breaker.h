/*
 * breaker: a circuit breaker (closed -> open -> half-open -> closed).
 *
 * Closed: calls go through; `threshold` consecutive failures open it. Open:
 * calls fail fast until `cooldown_ms` has passed. Half-open: one probe goes
 * through; its success closes the breaker, its failure re-opens it. One per
 * dependency per worker, so it needs no locking.
 */
#ifndef BASE_BREAKER_H
#define BASE_BREAKER_H

#include <stdbool.h>
#include <stdint.h>

typedef enum { BREAKER_CLOSED, BREAKER_OPEN, BREAKER_HALF_OPEN } breaker_state_t;

typedef struct breaker breaker_t;

/* Told of every change of state, after it happened (metrics). */
typedef void (*breaker_observer_fn)(void *arg, breaker_state_t to);

struct breaker {
    breaker_state_t state;
    unsigned failures;
    unsigned threshold;
    uint64_t cooldown_ms;
    uint64_t open_until_ms;
    bool probing;
    uint64_t opened_total; /* times it opened, for metrics */
    breaker_observer_fn observer;
    void *observer_arg;
};

void breaker_init(breaker_t *b, unsigned threshold, uint64_t cooldown_ms);
/* Calls fn(arg, state) on every change from now on (NULL: none). */
void breaker_observe(breaker_t *b, breaker_observer_fn fn, void *arg);
/* Whether a call may go ahead at now_ms (half-open: claims the probe). */
bool breaker_allow(breaker_t *b, uint64_t now_ms);
void breaker_success(breaker_t *b);
void breaker_failure(breaker_t *b, uint64_t now_ms);
/* Opens it now, whatever the count: a failure that is evidence enough on
   its own (a dependency that stopped answering altogether). */
void breaker_trip(breaker_t *b, uint64_t now_ms);

#endif
