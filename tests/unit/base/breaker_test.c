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
