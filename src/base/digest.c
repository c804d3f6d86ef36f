/* digest: per-thread OpenSSL contexts for SHA-256 and HMAC-SHA256. */
#include "base/digest.h"

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/params.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "base/banned.h"

#define BLOCK 64 /* SHA-256's block size */

struct digest_hmac {
    uint64_t id; /* never reused, unlike an address */
    size_t len;
    uint8_t key[BLOCK];
};

/* The algorithms, fetched once for the process. */
static pthread_once_t once = PTHREAD_ONCE_INIT;
static EVP_MD *sha256;
static EVP_MAC *hmac;
static pthread_key_t exit_key;
static bool exit_key_ok;

/* One thread's contexts; mac_for is the id of the key mac is set up with. */
typedef struct {
    EVP_MD_CTX *md;
    EVP_MAC_CTX *mac;
    uint64_t mac_for;
} thread_ctx_t;

static _Thread_local thread_ctx_t tl;
static _Atomic uint64_t next_id = 1;

static void thread_exit(void *p)
{
    thread_ctx_t *t = p;
    EVP_MD_CTX_free(t->md);
    EVP_MAC_CTX_free(t->mac);
    t->md = NULL;
    t->mac = NULL;
    t->mac_for = 0;
}

static void init_once(void)
{
    sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    hmac = EVP_MAC_fetch(NULL, "HMAC", NULL);
    exit_key_ok = pthread_key_create(&exit_key, thread_exit) == 0;
}

/* This thread's contexts, registered to be freed when it exits. */
static thread_ctx_t *thread_ctx(void)
{
    pthread_once(&once, init_once);
    if (!exit_key_ok) {
        return NULL;
    }
    if (tl.md == NULL && tl.mac == NULL && pthread_setspecific(exit_key, &tl) != 0) {
        return NULL;
    }
    return &tl;
}

int digest_sha256(const void *data, size_t n, uint8_t out[DIGEST_SHA256_LEN])
{
    thread_ctx_t *t = thread_ctx();
    if (t == NULL || sha256 == NULL) {
        return -1;
    }
    if (t->md == NULL && (t->md = EVP_MD_CTX_new()) == NULL) {
        return -1;
    }
    unsigned int len = 0;
    return EVP_DigestInit_ex(t->md, sha256, NULL) == 1 && EVP_DigestUpdate(t->md, data, n) == 1 &&
                   EVP_DigestFinal_ex(t->md, out, &len) == 1
               ? 0
               : -1;
}

digest_hmac_t *digest_hmac_new(const void *key, size_t len)
{
    digest_hmac_t *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        return NULL;
    }
    h->id = atomic_fetch_add(&next_id, 1);
    if (len > BLOCK) {
        if (digest_sha256(key, len, h->key) != 0) {
            free(h);
            return NULL;
        }
        h->len = DIGEST_SHA256_LEN;
    } else {
        memcpy(h->key, key, len);
        h->len = len;
    }
    return h;
}

void digest_hmac_free(digest_hmac_t *h)
{
    if (h != NULL) {
        OPENSSL_cleanse(h, sizeof(*h));
        free(h);
    }
}

int digest_hmac(const digest_hmac_t *h, const void *data, size_t n, uint8_t out[DIGEST_SHA256_LEN])
{
    thread_ctx_t *t = thread_ctx();
    if (t == NULL || hmac == NULL) {
        return -1;
    }
    if (t->mac == NULL && (t->mac = EVP_MAC_CTX_new(hmac)) == NULL) {
        return -1;
    }
    int ok;
    if (t->mac_for == h->id) {
        /* same key: OpenSSL restarts from the key schedule it kept */
        ok = EVP_MAC_init(t->mac, NULL, 0, NULL);
    } else {
        static char name[] = "SHA256"; /* OSSL_PARAM wants it writable; OpenSSL only reads it */
        OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, name, 0),
                               OSSL_PARAM_construct_end()};
        t->mac_for = 0;
        ok = EVP_MAC_init(t->mac, h->key, h->len, params);
        if (ok == 1) {
            t->mac_for = h->id;
        }
    }
    size_t len = 0;
    return ok == 1 && EVP_MAC_update(t->mac, data, n) == 1 &&
                   EVP_MAC_final(t->mac, out, &len, DIGEST_SHA256_LEN) == 1 && len == DIGEST_SHA256_LEN
               ? 0
               : -1;
}
