/*
 * digest: SHA-256 and HMAC-SHA256 for the hot path.
 *
 * OpenSSL 3's one-shot calls (SHA256(), HMAC()) fetch the algorithm and
 * allocate a context on every call, and HMAC() also redoes the key
 * schedule: together several times the cost of hashing a token or a
 * cursor. Here each thread keeps its contexts for its life (freed at thread
 * exit), and an HMAC key's schedule is computed once per thread.
 */
#ifndef BASE_DIGEST_H
#define BASE_DIGEST_H

#include <stddef.h>
#include <stdint.h>

#define DIGEST_SHA256_LEN 32

/* 0, or -1 when OpenSSL fails (out of memory). */
int digest_sha256(const void *data, size_t n, uint8_t out[DIGEST_SHA256_LEN])
    __attribute__((warn_unused_result));

/* An HMAC-SHA256 key (copied; keys longer than the block are hashed first,
   as RFC 2104 says). Create before the threads that use it start; free
   after they are done. */
typedef struct digest_hmac digest_hmac_t;
digest_hmac_t *digest_hmac_new(const void *key, size_t len);
void digest_hmac_free(digest_hmac_t *h);
/* The full 32-byte MAC of data under h. 0, or -1 when OpenSSL fails. */
int digest_hmac(const digest_hmac_t *h, const void *data, size_t n, uint8_t out[DIGEST_SHA256_LEN])
    __attribute__((warn_unused_result));

#endif
