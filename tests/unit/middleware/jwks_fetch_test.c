/* jwks_fetch: the refresh rules (Cache-Control max-age, bounds, backoff,
   the unknown-kid cooldown) on a fake clock. */
#include "middleware/jwks_fetch.h"
#include "test.h"

TEST(jwks_max_age_parsing)
{
    struct {
        const char *cc;
        int64_t want;
    } cases[] = {
        {"max-age=300", 300},
        {"public, max-age=120, must-revalidate", 120},
        {"Max-Age=60", 60},
        {"max-age=\"90\"", 90},
        {"s-maxage=10, max-age=20", 20},
        {"max-age=20, max-age=30", 20}, /* the first one counts */
        {"no-store", 0},
        {"max-age=600, no-cache", 0},
        {"private", -1},
        {"", -1},
        {"max-age=", -1},
        {"max-age=-5", -1},
        {"max-age=1x", -1},
        {"max-age", -1},
        {"max-age=99999999999999999999999", INT32_MAX},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int64_t got = jwks_max_age(str_from_cstr(cases[i].cc));
        if (got != cases[i].want) {
            test_fail(__FILE__, __LINE__, "\"%s\": %lld, want %lld", cases[i].cc, (long long)got,
                      (long long)cases[i].want);
        }
    }
}

TEST(jwks_refresh_interval_is_bounded)
{
    /* the defaults: 1 min .. 1 h, 10 min without a max-age */
    CHECK_INT_EQ(jwks_refresh_interval_s(-1, 60, 3600), 600);
    CHECK_INT_EQ(jwks_refresh_interval_s(0, 60, 3600), 60);
    CHECK_INT_EQ(jwks_refresh_interval_s(5, 60, 3600), 60);
    CHECK_INT_EQ(jwks_refresh_interval_s(900, 60, 3600), 900);
    CHECK_INT_EQ(jwks_refresh_interval_s(86400, 60, 3600), 3600);
    CHECK_INT_EQ(jwks_refresh_interval_s(INT32_MAX, 60, 3600), 3600);
    CHECK_INT_EQ(jwks_refresh_interval_s(-1, 1, 300), 300);
}

TEST(jwks_sched_first_fetch_then_max_age)
{
    jwks_sched_t s;
    int64_t wait = -1;
    jwks_sched_init(&s, 1000, 600);
    CHECK_INT_EQ(jwks_sched_next(&s, 1000, false, 30, &wait), JWKS_FETCH_REFRESH);
    jwks_sched_done(&s, 1200, JWKS_FETCH_REFRESH, true, 120);
    CHECK_INT_EQ(jwks_sched_next(&s, 1200, false, 30, &wait), JWKS_WAIT);
    CHECK_INT_EQ(wait, 120000);
    CHECK_INT_EQ(jwks_sched_next(&s, 121199, false, 30, &wait), JWKS_WAIT);
    CHECK_INT_EQ(jwks_sched_next(&s, 121200, false, 30, &wait), JWKS_FETCH_REFRESH);
}

TEST(jwks_sched_unknown_kid_cooldown)
{
    jwks_sched_t s;
    int64_t wait = -1;
    jwks_sched_init(&s, 0, 600);
    jwks_sched_done(&s, 0, JWKS_FETCH_REFRESH, true, 600);
    /* the first unknown kid fetches at once, even right after a refresh */
    CHECK_INT_EQ(jwks_sched_next(&s, 10, true, 30, &wait), JWKS_FETCH_KID);
    jwks_sched_done(&s, 10, JWKS_FETCH_KID, true, 600);
    /* any kid within 30 s waits for the end of the cooldown */
    CHECK_INT_EQ(jwks_sched_next(&s, 5000, true, 30, &wait), JWKS_WAIT);
    CHECK_INT_EQ(wait, 25010);
    CHECK_INT_EQ(jwks_sched_next(&s, 30009, true, 30, &wait), JWKS_WAIT);
    CHECK_INT_EQ(jwks_sched_next(&s, 30010, true, 30, &wait), JWKS_FETCH_KID);
    /* a failed kid fetch still counts against the cooldown */
    jwks_sched_done(&s, 30010, JWKS_FETCH_KID, false, 600);
    CHECK_INT_EQ(jwks_sched_next(&s, 31010, true, 30, &wait), JWKS_FETCH_REFRESH); /* the 1 s retry */
    jwks_sched_done(&s, 31010, JWKS_FETCH_REFRESH, false, 600);
    CHECK_INT_EQ(jwks_sched_next(&s, 32000, true, 30, &wait), JWKS_WAIT);
    CHECK(wait <= 2010);
    /* with no kid wanted, only the refresh timer counts */
    jwks_sched_done(&s, 40000, JWKS_FETCH_REFRESH, true, 600);
    CHECK_INT_EQ(jwks_sched_next(&s, 70010, false, 30, &wait), JWKS_WAIT);
    CHECK_INT_EQ(wait, 600000 - 30010);
}

TEST(jwks_sched_backoff_keeps_retrying_within_bounds)
{
    jwks_sched_t s;
    int64_t wait = -1;
    jwks_sched_init(&s, 0, 600);
    int64_t now = 0;
    int64_t expect[] = {1, 2, 4, 8, 16, 32, 60, 60, 60};
    for (size_t i = 0; i < sizeof(expect) / sizeof(expect[0]); i++) {
        CHECK_INT_EQ(jwks_sched_next(&s, now, false, 30, &wait), JWKS_FETCH_REFRESH);
        jwks_sched_done(&s, now, JWKS_FETCH_REFRESH, false, 600);
        CHECK_INT_EQ(jwks_sched_next(&s, now, false, 30, &wait), JWKS_WAIT);
        CHECK_INT_EQ(wait, expect[i] * 1000);
        now += wait;
    }
    /* never later than the normal interval: with max-age 5, retry in 5 */
    jwks_sched_done(&s, now, JWKS_FETCH_REFRESH, true, 5);
    now += 5000;
    for (int i = 0; i < 5; i++) {
        jwks_sched_done(&s, now, JWKS_FETCH_REFRESH, false, 5);
        CHECK_INT_EQ(jwks_sched_next(&s, now, false, 30, &wait), JWKS_WAIT);
        CHECK(wait <= 5000);
    }
    /* a success resets the backoff */
    jwks_sched_done(&s, now, JWKS_FETCH_REFRESH, true, 600);
    jwks_sched_done(&s, now, JWKS_FETCH_REFRESH, false, 600);
    CHECK_INT_EQ(jwks_sched_next(&s, now, false, 30, &wait), JWKS_WAIT);
    CHECK_INT_EQ(wait, 1000);
}
