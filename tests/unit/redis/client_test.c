/* client: REDIS_URL parsing (numeric hosts; no network needed). */
#include "base/err.h"
#include "redis/client.h"
#include "test.h"

TEST(redis_addr_parse_forms)
{
    redis_addr_t a;
    char err[256];
    CHECK_INT_EQ(redis_addr_parse("redis://127.0.0.1:6390/2", &a, err, sizeof(err)), 0);
    CHECK(strcmp(a.host, "127.0.0.1") == 0);
    CHECK_INT_EQ(a.port, 6390);
    CHECK_INT_EQ(a.db, 2);
    CHECK_INT_EQ(redis_addr_parse("redis://127.0.0.1", &a, err, sizeof(err)), 0);
    CHECK_INT_EQ(a.port, 6379);
    CHECK_INT_EQ(a.db, 0);
    CHECK_INT_EQ(redis_addr_parse("redis://:s3cret@127.0.0.1:7000/0", &a, err, sizeof(err)), 0);
    CHECK(strcmp(a.password, "s3cret") == 0);
    CHECK_INT_EQ(redis_addr_parse("redis://[::1]:7001", &a, err, sizeof(err)), 0);
    CHECK(strcmp(a.host, "::1") == 0);
    CHECK_INT_EQ(a.port, 7001);
    CHECK_INT_EQ(redis_addr_parse("unix:///run/redis.sock?db=3", &a, err, sizeof(err)), 0);
    CHECK(strcmp(a.unix_path, "/run/redis.sock") == 0);
    CHECK_INT_EQ(a.db, 3);
}

TEST(redis_addr_parse_rejects)
{
    redis_addr_t a;
    char err[256];
    const char *bad[] = {
        "http://127.0.0.1",    "redis://",        "redis://127.0.0.1:0",      "redis://127.0.0.1:99999",
        "redis://127.0.0.1/x", "unix://relative", "redis://127.0.0.1:6379/-1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        if (redis_addr_parse(bad[i], &a, err, sizeof(err)) != ERR_INVAL || strstr(err, "REDIS_URL") == NULL) {
            test_fail(__FILE__, __LINE__, "\"%s\" accepted or unnamed error \"%s\"", bad[i], err);
        }
    }
}

TEST(redis_addr_parse_errors_never_show_the_password)
{
    const char *bad[] = {
        "redis://:Pa55word@127.0.0.1:notaport/0",
        "redis://user:Pa55word@127.0.0.1:6379/x",
        "rediss://:Pa55word@127.0.0.1:6379/0",
        "redis://:Pa55@word@127.0.0.1:x/0",
        "redis://Pa55word@:6379/0",
        "redis://:Pa55word@/0",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        redis_addr_t a;
        char err[256] = "";
        int rc = redis_addr_parse(bad[i], &a, err, sizeof(err));
        if (rc == 0 || strstr(err, "REDIS_URL") == NULL || strstr(err, "Pa55") != NULL ||
            strstr(err, "word") != NULL) {
            test_fail(__FILE__, __LINE__, "%s: rc %d, err \"%s\"", bad[i], rc, err);
        }
    }
    redis_addr_t a;
    char err[256];
    CHECK_INT_EQ(redis_addr_parse("redis://:p@ss@127.0.0.1:7000/0", &a, err, sizeof(err)), 0);
    CHECK(strcmp(a.password, "p@ss") == 0);
    CHECK(strcmp(a.host, "127.0.0.1") == 0);
}
