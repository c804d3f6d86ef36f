/* reqid: which client ids are kept, and what generated ids look like. */
#include "http/reqid.h"
#include "test.h"

TEST(reqid_accepts_safe_ids)
{
    CHECK(http_reqid_valid(STR("abc")));
    CHECK(http_reqid_valid(STR("0190f5e4-7c1a-7b3e-9a0c-1d2e3f405162")));
    CHECK(http_reqid_valid(STR("a.b_c~d:e/f+g=h-i")));
    char max[HTTP_REQID_MAX];
    memset(max, 'x', sizeof(max));
    CHECK(http_reqid_valid(str_make(max, sizeof(max))));
}

TEST(reqid_rejects_unsafe_ids)
{
    CHECK(!http_reqid_valid(STR("")));
    CHECK(!http_reqid_valid(STR("has space")));
    CHECK(!http_reqid_valid(STR("quote\"")));
    CHECK(!http_reqid_valid(STR("new\nline")));
    CHECK(!http_reqid_valid(STR("caf\xc3\xa9")));
    char big[HTTP_REQID_MAX + 1];
    memset(big, 'x', sizeof(big));
    CHECK(!http_reqid_valid(str_make(big, sizeof(big))));
}

TEST(reqid_generated_are_hex_and_differ)
{
    char a[HTTP_REQID_GEN_LEN], b[HTTP_REQID_GEN_LEN];
    http_reqid_generate(a);
    http_reqid_generate(b);
    CHECK(memcmp(a, b, sizeof(a)) != 0);
    for (size_t i = 0; i < sizeof(a); i++) {
        CHECK((a[i] >= '0' && a[i] <= '9') || (a[i] >= 'a' && a[i] <= 'f'));
    }
    CHECK(http_reqid_valid(str_make(a, sizeof(a))));
}
