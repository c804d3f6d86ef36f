/*
 * h1head: a raw HTTP/1 request head as received, through the framing
 * (request smuggling) and size checks of http_h1_head_check.
 *
 * Properties: the answer is one of 0, 400, 414 and 431; a limit the head
 * fits in never gives 414 or 431, and a head with no Content-Length and no
 * Transfer-Encoding (in any case) is never refused for its framing; bare
 * LF line ends read exactly like CRLF ones (h2o's parser takes both, so a
 * check that read only one could be bypassed with the other).
 */
#include <stdlib.h>
#include <string.h>

#include "http/h1head.h"
#include "fuzz.h"

static bool mentions(const uint8_t *p, size_t n, const char *name)
{
    size_t len = strlen(name);
    for (size_t i = 0; i + len <= n; i++) {
        if (str_eq_nocase(str_make((const char *)p + i, len), str_make(name, len))) {
            return true;
        }
    }
    return false;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *p = (const char *)data;
    int big = http_h1_head_check(p, size, SIZE_MAX);
    FUZZ_ASSERT(big == 0 || big == 400);
    if (!mentions(data, size, "content-length") && !mentions(data, size, "transfer-encoding")) {
        FUZZ_ASSERT(big == 0);
    }
    size_t limits[] = {0, 16, 64, 256};
    for (size_t i = 0; i < sizeof(limits) / sizeof(limits[0]); i++) {
        int rc = http_h1_head_check(p, size, limits[i]);
        FUZZ_ASSERT(rc == 0 || rc == 400 || rc == 414 || rc == 431);
        FUZZ_ASSERT(rc == big || rc == 414 || rc == 431);
        if (size <= limits[i]) {
            FUZZ_ASSERT(rc == big);
        }
    }

    /* CRLF -> LF, where that is exact: every CR ends a line and follows no
       other CR */
    bool exact = true;
    for (size_t i = 0; i < size && exact; i++) {
        if (p[i] == '\r') {
            exact = i + 1 < size && p[i + 1] == '\n' && (i == 0 || p[i - 1] != '\r');
        }
    }
    if (!exact) {
        return 0;
    }
    char *lf = malloc(size + 1);
    FUZZ_ASSERT(lf != NULL);
    size_t n = 0;
    for (size_t i = 0; i < size; i++) {
        if (p[i] != '\r') {
            lf[n++] = p[i];
        }
    }
    FUZZ_ASSERT(http_h1_head_check(lf, n, SIZE_MAX) == big);
    free(lf);
    return 0;
}
