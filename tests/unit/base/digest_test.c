/* digest: FIPS 180-2 and RFC 4231 vectors, keys that alternate on one
   thread, and threads that each keep their own contexts. */
#include "base/digest.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <pthread.h>

#include "test.h"

static void hex(const uint8_t *b, size_t n, char *out)
{
    static const char d[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = d[b[i] >> 4];
        out[2 * i + 1] = d[b[i] & 15];
    }
    out[2 * n] = '\0';
}

#define CHECK_DIGEST(mac, want)                                                                              \
    do {                                                                                                     \
        char h_[2 * DIGEST_SHA256_LEN + 1];                                                                  \
        hex(mac, DIGEST_SHA256_LEN, h_);                                                                     \
        CHECK_MEM_EQ(h_, strlen(h_), want);                                                                  \
    } while (0)

TEST(digest_sha256_vectors)
{
    uint8_t d[DIGEST_SHA256_LEN];
    CHECK_INT_EQ(digest_sha256("abc", 3, d), 0);
    CHECK_DIGEST(d, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    CHECK_INT_EQ(digest_sha256("", 0, d), 0);
    CHECK_DIGEST(d, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

/* RFC 4231 test cases 2 (a short key) and 6 (a 131-byte key, hashed first). */
#define RFC4231_2 "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
#define RFC4231_6 "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"

static digest_hmac_t *key6(void)
{
    uint8_t k[131];
    memset(k, 0xaa, sizeof(k));
    return digest_hmac_new(k, sizeof(k));
}

static const char msg6[] = "Test Using Larger Than Block-Size Key - Hash Key First";

TEST(digest_hmac_vectors_and_alternating_keys)
{
    digest_hmac_t *a = digest_hmac_new("Jefe", 4);
    digest_hmac_t *b = key6();
    CHECK(a != NULL && b != NULL);
    uint8_t m[DIGEST_SHA256_LEN];
    for (int round = 0; round < 3; round++) { /* the thread's context switches keys each call */
        CHECK_INT_EQ(digest_hmac(a, "what do ya want for nothing?", 28, m), 0);
        CHECK_DIGEST(m, RFC4231_2);
        CHECK_INT_EQ(digest_hmac(b, msg6, sizeof(msg6) - 1, m), 0);
        CHECK_DIGEST(m, RFC4231_6);
    }
    /* the same key twice in a row: the kept key schedule */
    CHECK_INT_EQ(digest_hmac(b, msg6, sizeof(msg6) - 1, m), 0);
    CHECK_DIGEST(m, RFC4231_6);
    digest_hmac_free(a);
    digest_hmac_free(b);
    /* a key made after others were freed gets its own schedule (checked
       against OpenSSL's one-shot HMAC) */
    digest_hmac_t *c = digest_hmac_new("Jefe!", 5);
    CHECK_INT_EQ(digest_hmac(c, "what do ya want for nothing?", 28, m), 0);
    uint8_t want[EVP_MAX_MD_SIZE];
    unsigned int wn = 0;
    HMAC(EVP_sha256(), "Jefe!", 5, (const uint8_t *)"what do ya want for nothing?", 28, want, &wn);
    CHECK_INT_EQ(wn, DIGEST_SHA256_LEN);
    CHECK(memcmp(m, want, DIGEST_SHA256_LEN) == 0);
    digest_hmac_free(c);
}

static int failed, wrong; /* what a thread returns */

static void *hmac_thread(void *arg)
{
    const digest_hmac_t *k = arg;
    for (int i = 0; i < 2000; i++) {
        uint8_t m[DIGEST_SHA256_LEN];
        char h[2 * DIGEST_SHA256_LEN + 1];
        if (digest_hmac(k, msg6, sizeof(msg6) - 1, m) != 0) {
            return &failed;
        }
        hex(m, DIGEST_SHA256_LEN, h);
        if (strcmp(h, RFC4231_6) != 0) {
            return &wrong;
        }
    }
    return NULL;
}

TEST(digest_hmac_across_threads)
{
    digest_hmac_t *k = key6();
    pthread_t t[4];
    for (int i = 0; i < 4; i++) {
        CHECK_INT_EQ(pthread_create(&t[i], NULL, hmac_thread, k), 0);
    }
    for (int i = 0; i < 4; i++) {
        void *r = NULL;
        pthread_join(t[i], &r);
        CHECK(r == NULL);
    }
    digest_hmac_free(k);
}
