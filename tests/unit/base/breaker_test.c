/* breaker: the closed -> open -> half-open cycle. */
#include "base/breaker.h"
#include "test.h"

TEST(breaker_cycle)
{
    breaker_t b;
    breaker_init(&b, 3, 1000);
    CHECK(breaker_allow(&b, 0));
    breaker_failure(&b, 0);
    breaker_failure(&b, 0);
    CHECK(b.state == BREAKER_CLOSED);
    breaker_success(&b); /* resets the count */
    breaker_failure(&b, 0);
    breaker_failure(&b, 0);
    breaker_failure(&b, 10);
    CHECK(b.state == BREAKER_OPEN);
    CHECK(!breaker_allow(&b, 500));
    CHECK(breaker_allow(&b, 1010)); /* the probe */
    CHECK(b.state == BREAKER_HALF_OPEN);
    CHECK(!breaker_allow(&b, 1011)); /* one probe at a time */
    breaker_failure(&b, 1020);
    CHECK(b.state == BREAKER_OPEN);
    CHECK(!breaker_allow(&b, 2000));
    CHECK(breaker_allow(&b, 2020));
    breaker_success(&b);
    CHECK(b.state == BREAKER_CLOSED);
    CHECK(breaker_allow(&b, 2021));
    CHECK_INT_EQ(b.opened_total, 2);
}

static int changes[8];
static int nchanges;

static void on_change(void *arg, breaker_state_t to)
{
    (void)arg;
    if (nchanges < 8) {
        changes[nchanges++] = (int)to;
    }
}

TEST(breaker_observer_sees_each_change_once)
{
    breaker_t b;
    breaker_init(&b, 2, 100);
    nchanges = 0;
    breaker_observe(&b, on_change, NULL);
    breaker_failure(&b, 0);
    breaker_success(&b); /* closed -> closed: no change */
    breaker_failure(&b, 0);
    breaker_failure(&b, 0); /* open */
    breaker_trip(&b, 10);   /* open -> open: no change */
    CHECK(!breaker_allow(&b, 50));
    CHECK(breaker_allow(&b, 200)); /* half-open */
    breaker_success(&b);           /* closed */
    CHECK_INT_EQ(nchanges, 3);
    CHECK_INT_EQ(changes[0], BREAKER_OPEN);
    CHECK_INT_EQ(changes[1], BREAKER_HALF_OPEN);
    CHECK_INT_EQ(changes[2], BREAKER_CLOSED);
}
