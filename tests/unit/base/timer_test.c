/* timer: ordering, cancellation, re-arming from a callback. */
#include "base/timer.h"
#include "test.h"

static int order[16];
static int norder;

static void record(struct timer *t)
{
    order[norder++] = (int)(intptr_t)t->data;
}

TEST(timer_fires_in_order_and_respects_cancel)
{
    timer_heap_t h;
    timer_heap_init(&h);
    struct timer t[5];
    norder = 0;
    uint64_t at[5] = {50, 10, 30, 10, 40};
    for (int i = 0; i < 5; i++) {
        timer_init(&t[i], record, (void *)(intptr_t)i);
        CHECK_INT_EQ(timer_arm(&h, &t[i], at[i]), 0);
    }
    timer_cancel(&h, &t[4]);
    CHECK(!timer_is_armed(&t[4]));
    CHECK_INT_EQ(timer_heap_next_wait(&h, 0, 1000), 10);
    CHECK_INT_EQ(timer_heap_next_wait(&h, 100, 1000), 0);
    CHECK_INT_EQ(timer_heap_run(&h, 30), 3);
    CHECK_INT_EQ(norder, 3);
    CHECK_INT_EQ(order[0], 1); /* equal expiry: arming order */
    CHECK_INT_EQ(order[1], 3);
    CHECK_INT_EQ(order[2], 2);
    CHECK_INT_EQ(timer_heap_run(&h, 1000), 1);
    CHECK_INT_EQ(order[3], 0);
    CHECK_INT_EQ(timer_heap_next_wait(&h, 0, 777), 777);
    timer_heap_deinit(&h);
}

static timer_heap_t *rearm_heap;
static int rearm_count;

static void rearm(struct timer *t)
{
    rearm_count++;
    if (rearm_count < 3) {
        CHECK_INT_EQ(timer_arm(rearm_heap, t, 0), 0); /* due at once: must wait for the next run */
    }
}

TEST(timer_rearm_now_does_not_spin)
{
    timer_heap_t h;
    timer_heap_init(&h);
    rearm_heap = &h;
    rearm_count = 0;
    struct timer t;
    timer_init(&t, rearm, NULL);
    CHECK_INT_EQ(timer_arm(&h, &t, 5), 0);
    CHECK_INT_EQ(timer_heap_run(&h, 10), 1);
    CHECK_INT_EQ(timer_heap_run(&h, 10), 1);
    CHECK_INT_EQ(timer_heap_run(&h, 10), 1);
    CHECK_INT_EQ(timer_heap_run(&h, 10), 0);
    timer_heap_deinit(&h);
}

TEST(timer_many_random)
{
    timer_heap_t h;
    timer_heap_init(&h);
    enum { N = 500 };
    static struct timer t[N];
    uint64_t x = 88172645463325252u;
    for (int i = 0; i < N; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        timer_init(&t[i], record, NULL);
        CHECK_INT_EQ(timer_arm(&h, &t[i], x % 1000), 0);
    }
    for (int i = 0; i < N; i += 3) {
        timer_cancel(&h, &t[i]);
    }
    /* pop everything and check it comes out sorted */
    uint64_t last = 0;
    size_t seen = 0;
    while (h.len > 0) {
        struct timer *top = h.items[0];
        CHECK(top->at_ms >= last);
        last = top->at_ms;
        timer_cancel(&h, top);
        seen++;
    }
    CHECK_INT_EQ(seen, N - (N + 2) / 3);
    timer_heap_deinit(&h);
}
