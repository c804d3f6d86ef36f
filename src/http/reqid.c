/* reqid: validation and generation of request ids. */
#include "http/reqid.h"

#include "base/rand.h"
#include "base/banned.h"

bool http_reqid_valid(str_t id)
{
    if (id.len == 0 || id.len > HTTP_REQID_MAX) {
        return false;
    }
    for (size_t i = 0; i < id.len; i++) {
        char c = id.ptr[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
                  c == '_' || c == '~' || c == ':' || c == '/' || c == '+' || c == '=' || c == '-';
        if (!ok) {
            return false;
        }
    }
    return true;
}

void http_reqid_generate(char *out)
{
    static const char hex[] = "0123456789abcdef";
    for (int half = 0; half < 2; half++) {
        uint64_t r = rand_u64();
        for (int i = 0; i < 16; i++) {
            out[half * 16 + i] = hex[r & 15];
            r >>= 4;
        }
    }
}
