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

/* The development JWT key is public: only for a loopback HOST with no
   JWKS; anywhere else no HS256 unless JWT_SECRET is set, and with no key of
   any kind `serve` refuses to start. */
TEST(config_dev_jwt_key_only_on_loopback_without_jwks)
{
    struct {
        const char *host, *file, *url, *secret;
        bool dev, serve_ok;
    } cases[] = {
        {"127.0.0.1", NULL, NULL, NULL, true, true},
        {"127.3.4.5", NULL, NULL, NULL, true, true},
        {"::1", NULL, NULL, NULL, true, true},
        {"0.0.0.0", NULL, NULL, NULL, false, false},
        {"::", NULL, NULL, NULL, false, false},
        {"localhost", NULL, NULL, NULL, false, false},
        {"10.0.0.1", NULL, NULL, NULL, false, false},
        {"::ffff:127.0.0.1", NULL, NULL, NULL, false, false},
        {"127.0.0.1", "/etc/jwks.json", NULL, NULL, false, true},
        {"127.0.0.1", NULL, "https://idp.test/jwks", NULL, false, true},
        {"0.0.0.0", NULL, "https://idp.test/jwks", NULL, false, true},
        {"0.0.0.0", NULL, NULL, "a-real-secret-of-at-least-32-bytes!!", false, true},
        {"127.0.0.1", "", "", "", true, true}, /* empty means unset */
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *env[12];
        size_t n = 0;
        env[n++] = "HOST";
        env[n++] = cases[i].host;
        if (cases[i].file) {
            env[n++] = "JWT_JWKS_FILE";
            env[n++] = cases[i].file;
        }
        if (cases[i].url) {
            env[n++] = "JWT_JWKS_URL";
            env[n++] = cases[i].url;
        }
        if (cases[i].secret) {
            env[n++] = "JWT_SECRET";
            env[n++] = cases[i].secret;
        }
        env[n] = NULL;
        config_t c;
        char err[256] = "";
        if (load(env, 0, NULL, &c, err, sizeof(err)) != 0) {
            test_fail(__FILE__, __LINE__, "case %zu: %s", i, err);
            continue;
        }
        bool serve_ok = config_check_serve(&c, err, sizeof(err)) == 0;
        if (c.jwt_secret_is_default != cases[i].dev ||
            (c.jwt_secret != NULL) != (cases[i].dev || cases[i].secret) || serve_ok != cases[i].serve_ok) {
            test_fail(__FILE__, __LINE__, "case %zu (HOST=%s): dev %d, secret %s, serve %d", i, cases[i].host,
                      c.jwt_secret_is_default, c.jwt_secret ? "set" : "none", serve_ok);
        }
        if (!serve_ok && (strstr(err, "JWT_SECRET") == NULL || strstr(err, "JWT_JWKS_URL") == NULL)) {
            test_fail(__FILE__, __LINE__, "case %zu: unclear error \"%s\"", i, err);
        }
    }
    CHECK(config_host_is_loopback("127.255.255.254"));
    CHECK(!config_host_is_loopback("128.0.0.1"));
    CHECK(!config_host_is_loopback("127.0.0"));
}

TEST(config_jwks_url_must_be_https_or_loopback)
{
    const char *ok[] = {"https://idp.example.com/.well-known/jwks.json", "http://127.0.0.1:8080/jwks",
                        "http://[::1]:9/jwks", "http://localhost/jwks", "HTTPS://IDP.TEST/k"};
    const char *bad[] = {"http://idp.example.com/jwks", "ftp://127.0.0.1/jwks",
                         "file:///etc/jwks.json",       "http://127.0.0.1.evil.test/jwks",
                         "http://user@127.0.0.1/jwks",  "idp.test/jwks",
                         "http://[::2]/jwks",           "https://"};
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        const char *env[] = {"JWT_JWKS_URL", ok[i], NULL};
        config_t c;
        char err[256] = "";
        if (load(env, 0, NULL, &c, err, sizeof(err)) != 0) {
            test_fail(__FILE__, __LINE__, "%s refused: %s", ok[i], err);
        }
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        const char *env[] = {"JWT_JWKS_URL", bad[i], NULL};
        config_t c;
        char err[256] = "";
        if (load(env, 0, NULL, &c, err, sizeof(err)) != ERR_INVAL || strstr(err, "JWT_JWKS_URL") == NULL) {
            test_fail(__FILE__, __LINE__, "%s accepted (%s)", bad[i], err);
        }
    }
    const char *env[] = {"JWT_JWKS_MIN_REFRESH_S", "600", "JWT_JWKS_MAX_REFRESH_S", "60", NULL};
    config_t c;
    char err[256] = "";
    CHECK_INT_EQ(load(env, 0, NULL, &c, err, sizeof(err)), ERR_INVAL);
    CHECK(strstr(err, "JWT_JWKS_MIN_REFRESH_S") != NULL);
    CHECK_INT_EQ(load(NULL, 0, NULL, &c, err, sizeof(err)), 0);
    CHECK_INT_EQ(c.jwt_leeway_s, 5);
    CHECK(c.jwt_require_exp);
    CHECK_INT_EQ(c.jwt_jwks_min_refresh_s, 60);
    CHECK_INT_EQ(c.jwt_jwks_max_refresh_s, 3600);
    CHECK_INT_EQ(c.jwt_jwks_kid_cooldown_s, 30);
}

/* libpq quotes what it cannot parse, which may be the password itself. */
TEST(config_bad_database_url_never_shows_the_password)
{
    const char *cases[][2] = {
        {"DATABASE_URL", "postgresql://app:p%zzS3CRETpw@127.0.0.1/api"},
        {"DATABASE_URL", "postgresql://app:S3CRETpw@[::1/api"},
        {"DATABASE_URL", "host=127.0.0.1 password=S3CRET pw"},
        {"DATABASE_URL", "host=127.0.0.1 password='S3CRETpw"},
        {"DATABASE_MIGRATION_URL", "postgresql://owner:S3CRETpw@127.0.0.1/api?bogus=1"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        const char *env[] = {cases[i][0], cases[i][1], NULL};
        config_t c;
        char err[256] = "";
        int rc = load(env, 0, NULL, &c, err, sizeof(err));
        if (rc != ERR_INVAL || strstr(err, cases[i][0]) == NULL || strstr(err, "S3CRET") != NULL ||
            strstr(err, " pw") != NULL) {
            test_fail(__FILE__, __LINE__, "%s: rc %d, err \"%s\"", cases[i][1], rc, err);
        }
    }
}
