/*
 * reqid: an X-Request-Id header value, through http_reqid_valid.
 *
 * Property: the answer is exactly the documented rule (1..HTTP_REQID_MAX
 * characters of [A-Za-z0-9._~:/+=-]), checked here with a lookup of the
 * allowed set rather than the implementation's comparisons. A kept id is
 * echoed into a response header and written to the log, so a byte outside
 * the set getting through is a header or log injection.
 */
#include <string.h>

#include "http/reqid.h"
#include "fuzz.h"

static const char allowed[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789._~:/+=-";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    bool want = size >= 1 && size <= HTTP_REQID_MAX;
    for (size_t i = 0; i < size && want; i++) {
        want = data[i] != '\0' && strchr(allowed, data[i]) != NULL;
    }
    FUZZ_ASSERT(http_reqid_valid(fuzz_input(data, size)) == want);
    return 0;
}
