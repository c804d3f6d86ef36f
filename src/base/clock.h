/*
 * clock: monotonic and wall time in milliseconds.
 *
 * Deadlines and durations use the monotonic clock (h2o_now() is wall clock
 * in 2.2.5 and jumps with NTP, so it is never used for deadlines). Wall time
 * is only for timestamps that leave the process (logs, createdAt).
 */
#ifndef BASE_CLOCK_H
#define BASE_CLOCK_H

#include <stddef.h>
#include <stdint.h>

uint64_t clock_mono_ms(void);
uint64_t clock_mono_us(void);
/* Microseconds since the Unix epoch. */
int64_t clock_wall_us(void);

/*
 * Formats a wall time as RFC 3339 UTC with millisecond precision
 * ("2026-11-27T23:04:00.123Z"). out must hold CLOCK_RFC3339_LEN + 1 bytes.
 * Returns the length written (CLOCK_RFC3339_LEN).
 */
#define CLOCK_RFC3339_LEN 24
size_t clock_format_rfc3339(int64_t wall_us, char *out);

#endif
