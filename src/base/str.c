/* str: helpers for string views. */
#include "base/str.h"
#include "base/err.h"
#include "base/banned.h"

static char lower(char c)
{
    return (c >= 'A' && c <= 'Z') ? (char)(c + ('a' - 'A')) : c;
}

bool str_eq_nocase(str_t a, str_t b)
{
    if (a.len != b.len) {
        return false;
    }
    for (size_t i = 0; i < a.len; i++) {
        if (lower(a.ptr[i]) != lower(b.ptr[i])) {
            return false;
        }
    }
    return true;
}

int str_to_i64(str_t s, int64_t min, int64_t max, int64_t *out)
{
    size_t i = 0;
    bool neg = false;
    if (s.len == 0) {
        return ERR_INVAL;
    }
    if (s.ptr[0] == '-' && min < 0) {
        neg = true;
        i = 1;
    }
    if (i == s.len || s.len - i > 19) {
        return i == s.len ? ERR_INVAL : ERR_RANGE;
    }
    /* Accumulate as unsigned: 19 digits fit in uint64_t without overflow. */
    uint64_t v = 0;
    for (; i < s.len; i++) {
        char c = s.ptr[i];
        if (c < '0' || c > '9') {
            return ERR_INVAL;
        }
        v = v * 10 + (uint64_t)(c - '0');
    }
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1) {
            return ERR_RANGE;
        }
        int64_t r = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
        if (r < min) {
            return ERR_RANGE;
        }
        *out = r;
        return 0;
    }
    if (v > (uint64_t)INT64_MAX || (int64_t)v > max || (int64_t)v < min) {
        return ERR_RANGE;
    }
    *out = (int64_t)v;
    return 0;
}

bool str_eq_ct(const void *a, const void *b, size_t len)
{
    const volatile unsigned char *x = a;
    const volatile unsigned char *y = b;
    unsigned char acc = 0;
    for (size_t i = 0; i < len; i++) {
        acc |= (unsigned char)(x[i] ^ y[i]);
    }
    return acc == 0;
}

size_t str_fmt_i64(int64_t v, char *out)
{
    char tmp[STR_I64_MAX];
    size_t i = sizeof(tmp);
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    do {
        tmp[--i] = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    size_t n = 0;
    if (v < 0) {
        out[n++] = '-';
    }
    memcpy(out + n, tmp + i, sizeof(tmp) - i);
    return n + sizeof(tmp) - i;
}
