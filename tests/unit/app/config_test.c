/* config: defaults, environment, flags, and one clear error per bad value. */
#include "app/config.h"
#include "base/err.h"
#include "test.h"

static const char *const *fake_env;

static const char *lookup(const char *name)
{
    for (const char *const *e = fake_env; e && *e; e += 2) {
        if (strcmp(e[0], name) == 0) {
            return e[1];
        }
    }
    return NULL;
}

static int load(const char *const *env, int argc, char **argv, config_t *c, char *err, size_t errlen)
{
    char *rest[8];
    int nrest = 0;
    fake_env = env;
    return config_load(c, lookup, argc, argv, &nrest, rest, err, errlen);
}

TEST(config_defaults)
{
    config_t c;
    char err[256] = "";
    CHECK_INT_EQ(load(NULL, 0, NULL, &c, err, sizeof(err)), 0);
    CHECK(strcmp(c.host, "127.0.0.1") == 0);
    CHECK_INT_EQ(c.port, 3000);
    CHECK(c.workers >= 1);
    CHECK_INT_EQ(c.request_timeout_ms, 10000);
    CHECK_INT_EQ(c.shutdown_grace_ms, 10000);
    CHECK_INT_EQ(c.rate_limit_max, 600);
    CHECK_INT_EQ(c.rate_limit_window_s, 60);
    CHECK_INT_EQ(c.max_body_bytes, 1048576);
    CHECK(strcmp(c.redis_url, "redis://127.0.0.1:6379/0") == 0);
    CHECK(c.jwt_secret_is_default);
    CHECK(!c.http2);
    CHECK(c.log_level == LOG_INFO);
    CHECK(strcmp(c.database_migration_url, c.database_url) == 0);
}

TEST(config_env_and_flags)
{
    static const char *const env[] = {"PORT",  "8080",      "WORKERS", "3", "LOG_LEVEL",
                                      "DEBUG", "REDIS_URL", "",        NULL};
    char a0[] = "--port=9090", a1[] = "serve", a2[] = "--request-timeout-ms", a3[] = "250";
    char *argv[] = {a0, a1, a2, a3};
    config_t c;
    char err[256] = "";
    CHECK_INT_EQ(load(env, 4, argv, &c, err, sizeof(err)), 0);
    CHECK_INT_EQ(c.port, 9090); /* the flag wins over the environment */
    CHECK_INT_EQ(c.workers, 3);
    CHECK_INT_EQ(c.request_timeout_ms, 250);
    CHECK(c.log_level == LOG_DEBUG);
    CHECK(strcmp(c.redis_url, "") == 0); /* empty REDIS_URL means "no Redis" */
}

TEST(config_rejects_bad_values_naming_the_variable)
{
    static const char *const cases[][3] = {
        {"PORT", "abc", "PORT"},
        {"PORT", "70000", "PORT"},
        {"WORKERS", "0", "WORKERS"},
        {"REQUEST_TIMEOUT_MS", "-5", "REQUEST_TIMEOUT_MS"},
        {"LOG_LEVEL", "loud", "LOG_LEVEL"},
        {"HTTP2", "maybe", "HTTP2"},
        {"JWT_SECRET", "short", "JWT_SECRET"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *env[] = {cases[i][0], cases[i][1], NULL};
        config_t c;
        char err[256] = "";
        int rc = load(env, 0, NULL, &c, err, sizeof(err));
        if (rc != ERR_INVAL || strstr(err, cases[i][2]) == NULL) {
            test_fail(__FILE__, __LINE__, "%s=%s: rc %d, err \"%s\"", cases[i][0], cases[i][1], rc, err);
        }
    }
}

TEST(config_flag_without_value)
{
    char a0[] = "--port";
    char *argv[] = {a0};
    config_t c;
    char err[256] = "";
    CHECK_INT_EQ(load(NULL, 1, argv, &c, err, sizeof(err)), ERR_INVAL);
    CHECK(strstr(err, "PORT") != NULL);
}
