/* forwarded: CIDRs and the contract's X-Forwarded-For rule. */
#include "base/err.h"
#include "http/forwarded.h"
#include "test.h"

static const char *client(const char *trusted, const char *peer, const char *h1, const char *h2)
{
    static char out[HTTP_ADDR_MAX];
    http_cidrs_t set;
    char err[128];
    if (http_cidrs_parse(trusted, &set, err, sizeof(err)) != 0) {
        return "parse error";
    }
    str_t xff[2] = {h1 ? str_from_cstr(h1) : STR_NULL, h2 ? str_from_cstr(h2) : STR_NULL};
    http_forwarded_client(&set, str_from_cstr(peer), xff, h2 ? 2 : h1 ? 1 : 0, out);
    return out;
}

#define CHECK_CLIENT(trusted, peer, h1, h2, want)                                                            \
    do {                                                                                                     \
        const char *got_ = client(trusted, peer, h1, h2);                                                    \
        if (strcmp(got_, want) != 0) {                                                                       \
            test_fail(__FILE__, __LINE__, "client(%s, %s, %s, %s) = %s, want %s", trusted, peer,             \
                      h1 ? h1 : "-", h2 ? h2 : "-", got_, want);                                             \
        }                                                                                                    \
    } while (0)

TEST(cidrs_parse)
{
    http_cidrs_t s;
    char err[128];
    CHECK_INT_EQ(http_cidrs_parse("10.0.0.0/8, 192.168.1.10 ,::1/128,2001:db8::/32", &s, err, sizeof(err)),
                 0);
    CHECK_INT_EQ(s.n, 4);
    uint8_t a[16];
    CHECK(http_addr_parse(STR("10.200.3.4"), a) && http_cidrs_contain(&s, a));
    CHECK(http_addr_parse(STR("11.0.0.1"), a) && !http_cidrs_contain(&s, a));
    CHECK(http_addr_parse(STR("192.168.1.10"), a) && http_cidrs_contain(&s, a));
    CHECK(http_addr_parse(STR("192.168.1.11"), a) && !http_cidrs_contain(&s, a));
    CHECK(http_addr_parse(STR("2001:db8:ffff::1"), a) && http_cidrs_contain(&s, a));
    CHECK(http_addr_parse(STR("::1"), a) && http_cidrs_contain(&s, a));
    CHECK_INT_EQ(http_cidrs_parse("", &s, err, sizeof(err)), 0);
    CHECK_INT_EQ(s.n, 0);
    const char *bad[] = {"10.0.0.0/33", "::/129", "nope", "10.0.0.0/", "1.2.3.4/-1", "1.2.3"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (http_cidrs_parse(bad[i], &s, err, sizeof(err)) != ERR_INVAL) {
            test_fail(__FILE__, __LINE__, "\"%s\" accepted", bad[i]);
        }
    }
}

TEST(forwarded_follows_the_contract)
{
    /* an untrusted peer is the client, whatever it sends */
    CHECK_CLIENT("", "203.0.113.9", "1.1.1.1", NULL, "203.0.113.9");
    CHECK_CLIENT("10.0.0.0/8", "203.0.113.9", "1.1.1.1", NULL, "203.0.113.9");
    /* one trusted hop */
    CHECK_CLIENT("10.0.0.0/8", "10.0.0.2", "198.51.100.7", NULL, "198.51.100.7");
    /* from the right, trusted ones skipped: a client-sent entry on the left is ignored */
    CHECK_CLIENT("10.0.0.0/8", "10.0.0.2", "6.6.6.6, 198.51.100.7, 10.1.1.1", NULL, "198.51.100.7");
    /* several headers are one list, in order */
    CHECK_CLIENT("10.0.0.0/8", "10.0.0.2", "6.6.6.6, 198.51.100.7", "10.9.9.9", "198.51.100.7");
    CHECK_CLIENT("10.0.0.0/8", "10.0.0.2", "10.3.3.3", "10.9.9.9", "10.3.3.3"); /* all trusted: left-most */
    CHECK_CLIENT("10.0.0.0/8", "10.0.0.2", NULL, NULL, "10.0.0.2");             /* no header: the peer */
    /* a malformed entry: believe nothing */
    CHECK_CLIENT("10.0.0.0/8", "10.0.0.2", "198.51.100.7, bogus", NULL, "10.0.0.2");
    CHECK_CLIENT("10.0.0.0/8", "10.0.0.2", "198.51.100.7,", NULL, "10.0.0.2");
    CHECK_CLIENT("10.0.0.0/8", "10.0.0.2", ",198.51.100.7", NULL, "198.51.100.7");
    CHECK_CLIENT("10.0.0.0/8", "10.0.0.2", "1.2.3.4:80", NULL, "10.0.0.2");
    /* IPv6 */
    CHECK_CLIENT("::1/128", "::1", "2001:db8::5, ::1", NULL, "2001:db8::5");
    CHECK_CLIENT("127.0.0.1", "127.0.0.1", " 2001:db8::5 ", NULL, "2001:db8::5");
}
