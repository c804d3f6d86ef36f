/* conditional: entity-tag lists, weak and strong comparison. */
#include "http/conditional.h"
#include "test.h"

TEST(etag_next_walks_a_list)
{
    str_t list = STR(" \"1\", W/\"2\" ,*,bare ,\"un,closed");
    str_t tag;
    bool weak;
    CHECK(http_etag_next(&list, &tag, &weak));
    CHECK_MEM_EQ(tag.ptr, tag.len, "\"1\"");
    CHECK(!weak);
    CHECK(http_etag_next(&list, &tag, &weak));
    CHECK_MEM_EQ(tag.ptr, tag.len, "\"2\"");
    CHECK(weak);
    CHECK(http_etag_next(&list, &tag, &weak));
    CHECK_MEM_EQ(tag.ptr, tag.len, "*");
    CHECK(http_etag_next(&list, &tag, &weak));
    CHECK_MEM_EQ(tag.ptr, tag.len, "bare ");
    CHECK(http_etag_next(&list, &tag, &weak));
    CHECK_MEM_EQ(tag.ptr, tag.len, "\"un,closed");
    CHECK(!http_etag_next(&list, &tag, &weak));
}

TEST(if_none_match_compares_weakly)
{
    CHECK(http_if_none_match_hits(STR("\"3\""), STR("\"3\"")));
    CHECK(http_if_none_match_hits(STR("W/\"3\""), STR("\"3\"")));
    CHECK(http_if_none_match_hits(STR("\"1\", \"3\""), STR("\"3\"")));
    CHECK(http_if_none_match_hits(STR("*"), STR("\"3\"")));
    CHECK(!http_if_none_match_hits(STR("\"4\""), STR("\"3\"")));
    CHECK(!http_if_none_match_hits(STR(""), STR("\"3\"")));
}

TEST(if_match_keeps_strong_numeric_tags)
{
    http_if_match_t m;
    http_if_match_parse(STR_NULL, &m);
    CHECK(!m.present);
    http_if_match_parse(STR("W/\"2\", \"x\", \"0\", \"7\", *"), &m);
    CHECK(m.present);
    CHECK(m.any);
    CHECK_INT_EQ(m.n, 1);
    CHECK_INT_EQ(m.versions[0], 7);
    http_if_match_parse(STR("\"1\",\"2\",\"3\",\"4\",\"5\",\"6\",\"7\",\"8\",\"9\""), &m);
    CHECK_INT_EQ(m.n, HTTP_IF_MATCH_MAX);
    http_if_match_parse(STR("\"99999999999999999999\""), &m); /* past int64 */
    CHECK_INT_EQ(m.n, 0);
}

TEST(if_match_compares_the_spelling)
{
    /* Strong comparison is character by character (RFC 9110 8.8.3.2): the
       server's ETag for version 7 is "7", which "007" and "07" are not. */
    http_if_match_t m;
    http_if_match_parse(STR("\"007\", \"07\", \"7\""), &m);
    CHECK_INT_EQ(m.n, 1);
    CHECK_INT_EQ(m.versions[0], 7);
    http_if_match_parse(STR("\"0010\""), &m);
    CHECK_INT_EQ(m.n, 0);
}
