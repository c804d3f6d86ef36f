/* query: finding parameters, duplicates, unknown names. */
#include "base/err.h"
#include "http/query.h"
#include "test.h"

TEST(query_get_finds_values)
{
    str_t v;
    CHECK_INT_EQ(http_query_get(STR("limit=20&cursor=abc"), STR("cursor"), &v), 0);
    CHECK_MEM_EQ(v.ptr, v.len, "abc");
    CHECK_INT_EQ(http_query_get(STR("limit=20&&x"), STR("x"), &v), 0);
    CHECK_INT_EQ(v.len, 0);
    CHECK_INT_EQ(http_query_get(STR("limit="), STR("limit"), &v), 0);
    CHECK_INT_EQ(v.len, 0);
    CHECK_INT_EQ(http_query_get(STR(""), STR("limit"), &v), ERR_NOTFOUND);
    CHECK_INT_EQ(http_query_get(STR("limitx=1"), STR("limit"), &v), ERR_NOTFOUND);
}

TEST(query_get_rejects_duplicates)
{
    str_t v;
    CHECK_INT_EQ(http_query_get(STR("limit=1&limit=2"), STR("limit"), &v), ERR_INVAL);
}

TEST(query_only_flags_unknown)
{
    str_t names[] = {STR("limit"), STR("cursor")};
    str_t unknown = STR_NULL;
    CHECK(http_query_only(STR("limit=1&cursor=x"), names, 2, &unknown));
    CHECK(!http_query_only(STR("limit=1&sort=name"), names, 2, &unknown));
    CHECK_MEM_EQ(unknown.ptr, unknown.len, "sort");
}
