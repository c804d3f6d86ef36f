/* timer: binary min-heap keyed by (at_ms, seq). */
#include "base/timer.h"

#include <assert.h>
#include <stdlib.h>

#include "base/err.h"
#include "base/banned.h"

static bool earlier(const struct timer *a, const struct timer *b)
{
    return a->at_ms < b->at_ms || (a->at_ms == b->at_ms && a->seq < b->seq);
}

static void place(timer_heap_t *h, size_t i, struct timer *t)
{
    h->items[i] = t;
    t->idx = i + 1;
}

static void sift_up(timer_heap_t *h, size_t i)
{
    struct timer *t = h->items[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!earlier(t, h->items[parent])) {
            break;
        }
        place(h, i, h->items[parent]);
        i = parent;
    }
    place(h, i, t);
}

static void sift_down(timer_heap_t *h, size_t i)
{
    struct timer *t = h->items[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->len) {
            break;
        }
        if (child + 1 < h->len && earlier(h->items[child + 1], h->items[child])) {
            child++;
        }
        if (!earlier(h->items[child], t)) {
            break;
        }
        place(h, i, h->items[child]);
        i = child;
    }
    place(h, i, t);
}

void timer_heap_init(timer_heap_t *h)
{
    *h = (timer_heap_t){0};
}

void timer_heap_deinit(timer_heap_t *h)
{
    assert(h->len == 0);
    free(h->items);
    *h = (timer_heap_t){0};
}

static void remove_at(timer_heap_t *h, size_t i)
{
    struct timer *t = h->items[i];
    t->idx = 0;
    h->len--;
    if (i == h->len) {
        return;
    }
    place(h, i, h->items[h->len]);
    sift_down(h, i);
    sift_up(h, h->items[i]->idx - 1);
}

void timer_cancel(timer_heap_t *h, struct timer *t)
{
    if (t->idx != 0) {
        remove_at(h, t->idx - 1);
    }
}

int timer_arm(timer_heap_t *h, struct timer *t, uint64_t at_ms)
{
    timer_cancel(h, t);
    if (h->len == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 64;
        struct timer **items = realloc(h->items, cap * sizeof(*items));
        if (items == NULL) {
            return ERR_NOMEM;
        }
        h->items = items;
        h->cap = cap;
    }
    t->at_ms = at_ms;
    t->seq = h->seq++;
    h->items[h->len] = t;
    h->len++;
    sift_up(h, h->len - 1);
    return 0;
}

int32_t timer_heap_next_wait(const timer_heap_t *h, uint64_t now_ms, int32_t max_ms)
{
    if (h->len == 0) {
        return max_ms;
    }
    uint64_t at = h->items[0]->at_ms;
    if (at <= now_ms) {
        return 0;
    }
    uint64_t wait = at - now_ms;
    return wait < (uint64_t)max_ms ? (int32_t)wait : max_ms;
}

size_t timer_heap_run(timer_heap_t *h, uint64_t now_ms)
{
    size_t fired = 0;
    /* Timers armed by a callback for "now" fire on the next run, not in this
       loop: seq_limit stops a callback that re-arms itself at now from
       starving the event loop. */
    uint64_t seq_limit = h->seq;
    while (h->len > 0 && h->items[0]->at_ms <= now_ms && h->items[0]->seq < seq_limit) {
        struct timer *t = h->items[0];
        remove_at(h, 0);
        fired++;
        t->cb(t);
    }
    return fired;
}
