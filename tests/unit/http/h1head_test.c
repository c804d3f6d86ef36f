/* h1head: framing conflicts in request heads with CRLF, bare LF or both. */
#include "http/h1head.h"
#include "test.h"

static int check(const char *head)
{
    return http_h1_head_check(head, strlen(head), 16384);
}

TEST(h1head_framing_conflicts)
{
    struct {
        const char *head;
        int want;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 0},
        {"GET / HTTP/1.1\nHost: x\n\n", 0},
        {"GET / HTTP/1.1\r\n\r\n", 0},
        {"POST / HTTP/1.1\r\nContent-Length: 5\r\n\r\nhello", 0},
        {"POST / HTTP/1.1\r\nContent-Length: 5\r\nContent-Length:  5 \r\n\r\n", 0}, /* the same value twice */
        {"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n", 400},
        {"POST / HTTP/1.1\nContent-Length: 5\nTransfer-Encoding: chunked\n\n", 400},
        {"POST / HTTP/1.1\nTransfer-Encoding: chunked\nContent-Length: 5\n\n", 400},
        {"POST / HTTP/1.1\ncontent-length: 5\ncontent-length: 6\n\n", 400},
        {"POST / HTTP/1.1\r\nContent-Length: 5\nTransfer-Encoding: chunked\r\n\r\n", 400},
        {"POST / HTTP/1.1\nTransfer-Encoding: chunked\nContent-Length: 5\n\r\n", 400},
        {"POST / HTTP/1.1\r\nTRANSFER-ENCODING: chunked\r\nCONTENT-LENGTH: 1\r\n\r\n", 400},
        /* a body that looks like headers is not the head */
        {"POST / HTTP/1.1\nContent-Length: 30\n\nTransfer-Encoding: chunked\n\n", 0},
        /* no complete head yet: nothing to say */
        {"POST / HTTP/1.1\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n", 0},
        {"", 0},
        {"\n\n", 0},
        /* names must match exactly, colon included */
        {"POST / HTTP/1.1\nContent-Lengthx: 5\nTransfer-Encoding: chunked\n\n", 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        int got = check(cases[i].head);
        if (got != cases[i].want) {
            test_fail(__FILE__, __LINE__, "case %zu: %d, want %d", i, got, cases[i].want);
        }
    }
}

TEST(h1head_size_limits)
{
    char buf[300];
    memset(buf, 'a', sizeof(buf));
    memcpy(buf, "GET /", 5);
    memcpy(buf + 200, " HTTP/1.1\nHost: x\n\n", 19);
    CHECK_INT_EQ(http_h1_head_check(buf, 219, 100), 414);
    CHECK_INT_EQ(http_h1_head_check(buf, 219, 215), 431);
    CHECK_INT_EQ(http_h1_head_check(buf, 219, 4096), 0);
}
