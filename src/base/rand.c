/* rand: xoshiro256** (Blackman and Vigna, 2018) per thread, seeded by getrandom. */
#include "base/rand.h"

#include <errno.h>
#include <stdbool.h>
#include <sys/random.h>
#include <time.h>

#include "base/err.h"
#include "base/banned.h"

static _Thread_local uint64_t state[4];
static _Thread_local bool seeded;

static inline uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static void seed(void)
{
    if (rand_secure(state, sizeof(state)) != 0) {
        /* getrandom cannot fail on Linux >= 3.17 once the pool is ready;
           if it somehow does, a time-based seed keeps ids unique enough. */
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        state[0] = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15u;
        state[1] = (uint64_t)ts.tv_sec ^ (uint64_t)(uintptr_t)&ts;
        state[2] = 0x6A09E667F3BCC909u;
        state[3] = 0xBB67AE8584CAA73Bu;
    }
    seeded = true;
}

uint64_t rand_u64(void)
{
    if (!seeded) {
        seed();
    }
    uint64_t result = rotl(state[1] * 5, 7) * 9;
    uint64_t t = state[1] << 17;
    state[2] ^= state[0];
    state[3] ^= state[1];
    state[1] ^= state[2];
    state[0] ^= state[3];
    state[2] ^= t;
    state[3] = rotl(state[3], 45);
    return result;
}

int rand_secure(void *out, size_t n)
{
    unsigned char *p = out;
    while (n > 0) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR) {
                continue;
            }
            return ERR_IO;
        }
        p += r;
        n -= (size_t)r;
    }
    return 0;
}
