/* clock: RFC 3339 formatting against known instants, including leap days. */
#include "base/clock.h"
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
