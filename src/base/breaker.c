/* breaker: the three-state machine. */
#include "base/breaker.h"

#include <stddef.h>

#include "base/banned.h"

void breaker_init(breaker_t *b, unsigned threshold, uint64_t cooldown_ms)
{
    *b = (breaker_t){.threshold = threshold ? threshold : 1, .cooldown_ms = cooldown_ms};
}

void breaker_observe(breaker_t *b, breaker_observer_fn fn, void *arg)
{
    b->observer = fn;
    b->observer_arg = arg;
}

static void set_state(breaker_t *b, breaker_state_t s)
{
    if (b->state != s) {
        b->state = s;
        if (b->observer != NULL) {
            b->observer(b->observer_arg, s);
        }
    }
}

bool breaker_allow(breaker_t *b, uint64_t now_ms)
{
    switch (b->state) {
    case BREAKER_CLOSED:
        return true;
    case BREAKER_OPEN:
        if (now_ms < b->open_until_ms) {
            return false;
        }
        b->probing = true;
        set_state(b, BREAKER_HALF_OPEN);
        return true;
    case BREAKER_HALF_OPEN:
        if (b->probing) {
            return false;
        }
        b->probing = true;
        return true;
    }
    return false;
}

void breaker_success(breaker_t *b)
{
    b->failures = 0;
    b->probing = false;
    set_state(b, BREAKER_CLOSED);
}

void breaker_trip(breaker_t *b, uint64_t now_ms)
{
    if (b->state != BREAKER_OPEN) {
        b->opened_total++;
    }
    b->probing = false;
    b->open_until_ms = now_ms + b->cooldown_ms;
    b->failures = 0;
    set_state(b, BREAKER_OPEN);
}

void breaker_failure(breaker_t *b, uint64_t now_ms)
{
    b->probing = false;
    if (b->state == BREAKER_HALF_OPEN || ++b->failures >= b->threshold) {
        breaker_trip(b, now_ms);
    }
}
