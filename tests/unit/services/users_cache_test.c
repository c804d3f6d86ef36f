/* users: the cache entry format round-trips and rejects damage. */
#include "base/err.h"
#include "services/users.h"
#include "test.h"

TEST(users_cache_round_trip)
{
    user_t u = {.email = STR("ada@example.com"),
                .name = STR("Ada \xc3\xa9 Lovelace 12 3"),
                .version = 7,
                .created_us = 1795822435884689,
                .updated_us = 1795822436147253};
    CHECK_INT_EQ(uuid_parse(STR("0190f5e4-7c1a-7b3e-9a0c-1d2e3f405162"), &u.id), 0);
    char buf[USERS_CACHE_MAX];
    size_t n = users_cache_encode(&u, buf, sizeof(buf));
    CHECK(n > 0);
    user_t back;
    CHECK_INT_EQ(users_cache_decode(str_make(buf, n), &u.id, &back), 0);
    CHECK_INT_EQ(back.version, 7);
    CHECK_INT_EQ(back.created_us, u.created_us);
    CHECK_INT_EQ(back.updated_us, u.updated_us);
    CHECK_MEM_EQ(back.email.ptr, back.email.len, "ada@example.com");
    CHECK_MEM_EQ(back.name.ptr, back.name.len, "Ada \xc3\xa9 Lovelace 12 3");
    CHECK(memcmp(back.id.b, u.id.b, 16) == 0);
}

TEST(users_cache_rejects_damage)
{
    uuid_bytes_t id = {{0}};
    user_t u;
    const char *bad[] = {"", "0", "T", "1 2 3", "1 2 3 99 short", "x 2 3 1 ab", "0 2 3 1 ab", "1 2 3 -1 ab"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (users_cache_decode(str_from_cstr(bad[i]), &id, &u) == 0) {
            test_fail(__FILE__, __LINE__, "\"%s\" decoded", bad[i]);
        }
    }
}
