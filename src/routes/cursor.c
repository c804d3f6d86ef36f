/* cursor: encoding and constant-time verification. */
#include "routes/cursor.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <string.h>

#include "base/b64.h"
#include "base/err.h"
#include "base/banned.h"

#define CURSOR_VERSION 1
#define MAC_LEN        16
#define RAW_LEN        (1 + 16 + MAC_LEN)

static unsigned char key[64];
static size_t key_len;
/* fetched once: HMAC(EVP_sha256(), ...) would look the digest up, under a
   lock, on every call */
static EVP_MD *sha256;

int cursor_set_key(const char *k, size_t len)
{
    if (len == 0) {
        return ERR_INVAL;
    }
    if (sha256 == NULL && (sha256 = EVP_MD_fetch(NULL, "SHA256", NULL)) == NULL) {
        return ERR_INVAL;
    }
    /* HMAC hashes keys longer than the block size anyway (RFC 2104). */
    if (len > sizeof(key)) {
        unsigned int n = 0;
        if (!EVP_Digest(k, len, key, &n, EVP_sha256(), NULL)) {
            return ERR_INVAL;
        }
        key_len = n;
        return 0;
    }
    memcpy(key, k, len);
    key_len = len;
    return 0;
}

static void sign(const uint8_t *msg, size_t n, uint8_t *mac)
{
    unsigned char full[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    HMAC(sha256, key, (int)key_len, msg, n, full, &len);
    memcpy(mac, full, MAC_LEN);
}

void cursor_encode(const uuid_bytes_t *last_id, char *out)
{
    uint8_t raw[RAW_LEN];
    raw[0] = CURSOR_VERSION;
    memcpy(raw + 1, last_id->b, 16);
    sign(raw, 17, raw + 17);
    b64url_encode(raw, RAW_LEN, out);
}

int cursor_decode(str_t s, uuid_bytes_t *last_id)
{
    uint8_t raw[RAW_LEN + 3];
    size_t n;
    if (s.len != CURSOR_LEN || b64url_decode(s, raw, &n) != 0 || n != RAW_LEN || raw[0] != CURSOR_VERSION) {
        return ERR_INVAL;
    }
    uint8_t mac[MAC_LEN];
    sign(raw, 17, mac);
    if (CRYPTO_memcmp(mac, raw + 17, MAC_LEN) != 0) {
        return ERR_INVAL;
    }
    memcpy(last_id->b, raw + 1, 16);
    return 0;
}

void cursor_clear_key(void)
{
    OPENSSL_cleanse(key, sizeof(key));
    key_len = 0;
    EVP_MD_free(sha256);
    sha256 = NULL;
}
