/* gcra: burst, refill, truthful retry-after, reset. */
#include "base/gcra.h"
#include "test.h"

TEST(gcra_burst_then_deny)
{
    gcra_policy_t p = {.limit = 3, .window_us = 3000000};
    gcra_result_t r;
    int64_t tat = 0, now = 1000000000;
    tat = gcra_take(&p, tat, now, &r);
    CHECK(r.allowed);
    CHECK_INT_EQ(r.remaining, 2);
    CHECK_INT_EQ(r.reset_s, 1);
    tat = gcra_take(&p, tat, now, &r);
    CHECK_INT_EQ(r.remaining, 1);
    tat = gcra_take(&p, tat, now, &r);
    CHECK(r.allowed);
    CHECK_INT_EQ(r.remaining, 0);
    CHECK_INT_EQ(r.reset_s, 3);
    int64_t kept = tat;
    tat = gcra_take(&p, tat, now, &r);
    CHECK(!r.allowed);
    CHECK_INT_EQ(tat, kept); /* a denial costs nothing */
    CHECK_INT_EQ(r.retry_after_s, 1);
    /* waiting Retry-After seconds is enough */
    tat = gcra_take(&p, tat, now + r.retry_after_s * 1000000, &r);
    CHECK(r.allowed);
}

TEST(gcra_refills_evenly_and_fully)
{
    gcra_policy_t p = {.limit = 600, .window_us = 60000000};
    gcra_result_t r;
    int64_t tat = 0, now = 5000000;
    for (int i = 0; i < 600; i++) {
        tat = gcra_take(&p, tat, now, &r);
        CHECK(r.allowed);
    }
    tat = gcra_take(&p, tat, now, &r);
    CHECK(!r.allowed);
    /* one interval (100 ms) later, exactly one more */
    tat = gcra_take(&p, tat, now + 100000, &r);
    CHECK(r.allowed);
    tat = gcra_take(&p, tat, now + 100000, &r);
    CHECK(!r.allowed);
    /* a whole window later: the full budget again */
    tat = gcra_take(&p, tat, now + 100000 + 60000000, &r);
    CHECK(r.allowed);
    CHECK_INT_EQ(r.remaining, 599);
}

TEST(gcra_tiny_interval_is_at_least_one_us)
{
    gcra_policy_t p = {.limit = 1000000000, .window_us = 1000000};
    CHECK_INT_EQ(gcra_interval_us(&p), 1);
}
