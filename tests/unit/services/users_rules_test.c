/* users: the pure validation rules for email and name. */
#include "services/users.h"
#include "test.h"

TEST(users_email_rules)
{
    char out[USERS_EMAIL_MAX];
    size_t n;
    CHECK(users_check_email(STR("Ada@Example.COM"), out, &n) == NULL);
    CHECK_MEM_EQ(out, n, "ada@example.com");
    CHECK(users_check_email(STR("first.last+tag@sub.example-x.org"), out, &n) == NULL);
    const char *bad[] = {"no-at",   "a@",       "@b.c",      "a b@c.d",       "a@b..c",
                         "a@b",     ".a@b.co",  "a.@b.co",   "a..b@c.co",     "a@-b.co",
                         "a@b-.co", "a@b@c.co", "a\"b@c.co", "\xc3\xa9@b.co", "a@b_c.co"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (users_check_email(str_from_cstr(bad[i]), out, &n) == NULL) {
            test_fail(__FILE__, __LINE__, "\"%s\" accepted", bad[i]);
        }
    }
    char local65[80];
    memset(local65, 'a', 65);
    memcpy(local65 + 65, "@b.co", 6);
    CHECK(users_check_email(str_from_cstr(local65), out, &n) != NULL);
}

TEST(users_name_counts_code_points)
{
    char name[401];
    /* 100 x "é" (2 bytes each) is 100 characters: allowed */
    for (int i = 0; i < 100; i++) {
        memcpy(name + 2 * i, "\xc3\xa9", 2);
    }
    CHECK(users_check_name(str_make(name, 200)) == NULL);
    memcpy(name + 200, "\xc3\xa9", 2);
    CHECK(users_check_name(str_make(name, 202)) != NULL);
    /* 100 emoji (4 bytes each) */
    for (int i = 0; i < 100; i++) {
        memcpy(name + 4 * i, "\xf0\x9f\x98\x80", 4);
    }
    CHECK(users_check_name(str_make(name, 400)) == NULL);
    CHECK(users_check_name(STR("")) != NULL);
    CHECK(users_check_name(str_make("a\0b", 3)) != NULL);
}
