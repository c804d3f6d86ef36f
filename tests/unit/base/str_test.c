/* str: integer parsing bounds, comparisons. */
#include "base/err.h"
#include "base/str.h"
#include "test.h"

TEST(str_to_i64_accepts_and_bounds)
{
    int64_t v;
    CHECK_INT_EQ(str_to_i64(STR("0"), 0, 10, &v), 0);
    CHECK_INT_EQ(v, 0);
    CHECK_INT_EQ(str_to_i64(STR("65535"), 1, 65535, &v), 0);
    CHECK_INT_EQ(v, 65535);
    CHECK_INT_EQ(str_to_i64(STR("65536"), 1, 65535, &v), ERR_RANGE);
    CHECK_INT_EQ(str_to_i64(STR("-5"), 0, 10, &v), ERR_INVAL);
    CHECK_INT_EQ(str_to_i64(STR("-5"), -10, 10, &v), 0);
    CHECK_INT_EQ(v, -5);
    CHECK_INT_EQ(str_to_i64(STR("9223372036854775807"), INT64_MIN, INT64_MAX, &v), 0);
    CHECK_INT_EQ(str_to_i64(STR("9223372036854775808"), INT64_MIN, INT64_MAX, &v), ERR_RANGE);
    CHECK_INT_EQ(str_to_i64(STR("-9223372036854775808"), INT64_MIN, INT64_MAX, &v), 0);
    CHECK(v == INT64_MIN);
    CHECK_INT_EQ(str_to_i64(STR("99999999999999999999999"), 0, 10, &v), ERR_RANGE);
}

TEST(str_to_i64_rejects_garbage)
{
    int64_t v;
    const char *bad[] = {"", "abc", "1a", " 1", "1 ", "+1", "0x10", "1.5", "-"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (str_to_i64(str_from_cstr(bad[i]), -100, 100, &v) != ERR_INVAL) {
            test_fail(__FILE__, __LINE__, "\"%s\" should be ERR_INVAL", bad[i]);
        }
    }
}

TEST(str_compare_helpers)
{
    CHECK(str_eq(STR("abc"), STR("abc")));
    CHECK(!str_eq(STR("abc"), STR("abd")));
    CHECK(str_eq_nocase(STR("Content-Type"), STR("content-type")));
    CHECK(str_starts_with(STR("/v1/users"), STR("/v1/")));
    CHECK(str_eq_ct("abcd", "abcd", 4));
    CHECK(!str_eq_ct("abcd", "abce", 4));
}
