/*
 * uuid: RFC 9562 UUIDs: version 7 generation, parsing and formatting.
 *
 * v7 puts a 48-bit Unix millisecond timestamp first, so ids sort by creation
 * time and B-tree inserts stay at the right edge of the index. Within one
 * millisecond a thread's ids stay ordered too: the 12 "rand_a" bits are a
 * counter seeded randomly each millisecond (RFC 9562 section 6.2, method 1).
 */
#ifndef BASE_UUID_H
#define BASE_UUID_H

#include <stdbool.h>
#include <stdint.h>

#include "base/str.h"

#define UUID_STR_LEN 36

typedef struct {
    uint8_t b[16];
} uuid_bytes_t;

/* A new v7 UUID for wall time now_ms (normally clock_wall_us() / 1000). */
void uuid_v7(uint64_t now_ms, uuid_bytes_t *out);
/* Parses the canonical 8-4-4-4-12 hex form (either case). 0 or ERR_INVAL. */
int uuid_parse(str_t s, uuid_bytes_t *out) __attribute__((warn_unused_result));
/* Writes the lower-case canonical form; out holds UUID_STR_LEN bytes (no NUL). */
void uuid_format(const uuid_bytes_t *u, char *out);

#endif
