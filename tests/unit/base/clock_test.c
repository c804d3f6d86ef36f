/* clock: RFC 3339 formatting against known instants, including leap days. */
#include "base/clock.h"

#include <stdio.h>
#include <time.h>

#include "test.h"

static void check(int64_t us, const char *want)
{
    char out[CLOCK_RFC3339_LEN + 1];
    size_t n = clock_format_rfc3339(us, out);
    if (n != CLOCK_RFC3339_LEN || strcmp(out, want) != 0) {
        test_fail(__FILE__, __LINE__, "%lld: got \"%.*s\", want \"%s\"", (long long)us, (int)n, out, want);
    }
}

TEST(clock_rfc3339_known_instants)
{
    check(0, "1970-01-01T00:00:00.000Z");
    check(951782400000000, "2000-02-29T00:00:00.000Z");  /* leap day of a century leap year */
    check(1709164800123456, "2024-02-29T00:00:00.123Z"); /* truncates to ms */
    check(1795822435884689, "2026-11-27T23:33:55.884Z");
    check(4102444799999000, "2099-12-31T23:59:59.999Z");
    check(-1000, "1969-12-31T23:59:59.999Z");
}

/* Against gmtime_r over random instants from 1900 to 2200, in an order
   that both repeats days (the per-thread date cache) and jumps between
   them; years outside 0..9999 give 0, and do not poison the cache. */
TEST(clock_rfc3339_matches_gmtime)
{
    uint64_t x = 88172645463325252u; /* xorshift64: reproducible */
    int64_t prev = 0;
    for (int i = 0; i < 20000; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        int64_t lo = -2208988800LL * 1000000, span = 9467280000LL * 1000000; /* 1900 + 300 years */
        int64_t us = i % 3 == 2 ? prev + (int64_t)(x % 3600000000u) : lo + (int64_t)(x % (uint64_t)span);
        prev = us;
        int64_t secs = us >= 0 ? us / 1000000 : -((-us + 999999) / 1000000);
        time_t t = (time_t)secs;
        struct tm tm;
        gmtime_r(&t, &tm);
        int64_t ms = (us - secs * 1000000) / 1000;
        char want[40];
        snprintf(want, sizeof(want), "%04d-%02d-%02dT%02d:%02d:%02d.%03lldZ", tm.tm_year + 1900,
                 tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, (long long)ms);
        char out[CLOCK_RFC3339_LEN + 1];
        size_t n = clock_format_rfc3339(us, out);
        if (n != CLOCK_RFC3339_LEN || strcmp(out, want) != 0) {
            test_fail(__FILE__, __LINE__, "%lld: got \"%.*s\", want \"%s\"", (long long)us, (int)n, out,
                      want);
            return;
        }
    }
    char out[CLOCK_RFC3339_LEN + 1];
    CHECK_INT_EQ(clock_format_rfc3339(253402300800000000LL, out), 0); /* 10000-01-01 */
    CHECK_INT_EQ(clock_format_rfc3339(253402300800000001LL, out), 0); /* the same day again */
    check(253402300799999999LL, "9999-12-31T23:59:59.999Z");
    CHECK_INT_EQ(clock_format_rfc3339(-62167219200000001LL, out), 0); /* just before year 0 */
    check(-62167219200000000LL, "0000-01-01T00:00:00.000Z");
}
