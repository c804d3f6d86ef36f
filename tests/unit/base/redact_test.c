/* redact: URL userinfo, known secrets, quoted fragments. */
#include "base/redact.h"
#include "test.h"

TEST(redact_url_userinfo)
{
    struct {
        const char *in, *want;
    } cases[] = {
        {"redis://:s3cret@127.0.0.1:6379/0", "redis://:***@127.0.0.1:6379/0"},
        {"redis://user:s3cret@h/0", "redis://user:***@h/0"},
        {"redis://s3cret@h", "redis://***@h"},
        {"redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/0"},
        {"postgresql://app:p%40ss@db:5432/api?sslmode=require",
         "postgresql://app:***@db:5432/api?sslmode=require"},
        {"https://idp.test/jwks?u=a@b", "https://idp.test/jwks?u=a@b"},
        {"redis://a:b@c@host/1", "redis://a:***@host/1"},
        {"no scheme at all", "no scheme at all"},
        {"unix:///tmp/redis.sock", "unix:///tmp/redis.sock"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char out[128];
        redact_url(str_from_cstr(cases[i].in), out, sizeof(out));
        if (strcmp(out, cases[i].want) != 0) {
            test_fail(__FILE__, __LINE__, "\"%s\" -> \"%s\", want \"%s\"", cases[i].in, out, cases[i].want);
        }
    }
    char tiny[8];
    redact_url(STR("redis://:s3cret@h"), tiny, sizeof(tiny));
    CHECK(strcmp(tiny, "redis:/") == 0); /* truncated, still terminated */
}

TEST(redact_secret_and_quoted)
{
    char out[128];
    redact_secret(STR("auth failed for pw and pw again"), STR("pw"), out, sizeof(out));
    CHECK(strcmp(out, "auth failed for *** and *** again") == 0);
    redact_secret(STR("nothing here"), STR(""), out, sizeof(out));
    CHECK(strcmp(out, "nothing here") == 0);
    redact_quoted(STR("invalid percent-encoded token: \"p%zzsecret\""), out, sizeof(out));
    CHECK(strcmp(out, "invalid percent-encoded token: \"***\"") == 0);
    redact_quoted(STR("missing \"=\" after \"pw\" in connection info string"), out, sizeof(out));
    CHECK(strcmp(out, "missing \"***\" after \"***\" in connection info string") == 0);
    redact_quoted(STR("unterminated \"secret"), out, sizeof(out));
    CHECK(strcmp(out, "unterminated \"***") == 0);
}
