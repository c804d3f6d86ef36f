/* uuid: v7 generation with a per-thread monotonic counter; hex parsing. */
#include "base/uuid.h"

#include "base/err.h"
#include "base/rand.h"
#include "base/banned.h"

static _Thread_local uint64_t last_ms;
static _Thread_local uint16_t counter; /* 12 bits used */

void uuid_v7(uint64_t now_ms, uuid_bytes_t *out)
{
    if (now_ms <= last_ms) {
        /* Same millisecond (or the clock stepped back): keep ordering by
           counting; if the counter overflows, borrow the next millisecond. */
        now_ms = last_ms;
        if (++counter > 0x0FFF) {
            now_ms++;
            counter = (uint16_t)(rand_u64() & 0x01FF);
        }
    } else {
        /* Start low in the counter space so many ids fit in one ms. */
        counter = (uint16_t)(rand_u64() & 0x01FF);
    }
    last_ms = now_ms;
    uint64_t r = rand_u64();
    for (int i = 0; i < 6; i++) {
        out->b[i] = (uint8_t)(now_ms >> (40 - 8 * i));
    }
    out->b[6] = (uint8_t)(0x70 | ((counter >> 8) & 0x0F)); /* version 7 */
    out->b[7] = (uint8_t)counter;
    out->b[8] = (uint8_t)(0x80 | (r & 0x3F)); /* variant 10 */
    for (int i = 9; i < 16; i++) {
        r >>= 8;
        if (i == 12) {
            r = rand_u64();
        }
        out->b[i] = (uint8_t)r;
    }
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    if (c >= 'A' && c <= 'F') {
        return c - 'A' + 10;
    }
    return -1;
}

int uuid_parse(str_t s, uuid_bytes_t *out)
{
    if (s.len != UUID_STR_LEN) {
        return ERR_INVAL;
    }
    size_t j = 0;
    for (size_t i = 0; i < UUID_STR_LEN;) {
        if (i == 8 || i == 13 || i == 18 || i == 23) {
            if (s.ptr[i] != '-') {
                return ERR_INVAL;
            }
            i++;
            continue;
        }
        int hi = hexval(s.ptr[i]);
        int lo = hexval(s.ptr[i + 1]);
        if (hi < 0 || lo < 0) {
            return ERR_INVAL;
        }
        out->b[j++] = (uint8_t)(hi << 4 | lo);
        i += 2;
    }
    return 0;
}

void uuid_format(const uuid_bytes_t *u, char *out)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (int i = 0; i < 16; i++) {
        if (i == 4 || i == 6 || i == 8 || i == 10) {
            out[o++] = '-';
        }
        out[o++] = hex[u->b[i] >> 4];
        out[o++] = hex[u->b[i] & 15];
    }
}
