/*
 * rand: fast per-thread pseudo-random numbers, and kernel randomness.
 *
 * rand_u64() is xoshiro256** seeded once per thread from getrandom(2): fast
 * and unpredictable enough for request ids, UUID v7 random bits and jitter.
 * It is NOT for secrets (keys, tokens): use rand_secure() for those.
 */
#ifndef BASE_RAND_H
#define BASE_RAND_H

#include <stddef.h>
#include <stdint.h>

uint64_t rand_u64(void);
/* Fills out with n bytes from the kernel CSPRNG. Returns 0 or ERR_IO. */
int rand_secure(void *out, size_t n) __attribute__((warn_unused_result));

#endif
