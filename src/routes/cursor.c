/* cursor: encoding and constant-time verification. */
#include "routes/cursor.h"

#include <openssl/crypto.h>
#include <string.h>

#include "base/b64.h"
#include "base/digest.h"
#include "base/err.h"
#include "base/banned.h"

#define CURSOR_VERSION 1
#define MAC_LEN        16
#define RAW_LEN        (1 + 16 + MAC_LEN)

static digest_hmac_t *key;

int cursor_set_key(const char *k, size_t len)
{
    if (len == 0) {
        return ERR_INVAL;
    }
    digest_hmac_t *h = digest_hmac_new(k, len);
    if (h == NULL) {
        return ERR_NOMEM;
    }
    digest_hmac_free(key);
    key = h;
    return 0;
}

/* The truncated MAC; -1 only when OpenSSL cannot allocate. */
static int sign(const uint8_t *msg, size_t n, uint8_t *mac)
{
    uint8_t full[DIGEST_SHA256_LEN];
    if (key == NULL || digest_hmac(key, msg, n, full) != 0) {
        return -1;
    }
    memcpy(mac, full, MAC_LEN);
    return 0;
}

int cursor_encode(const uuid_bytes_t *last_id, char *out)
{
    uint8_t raw[RAW_LEN];
    raw[0] = CURSOR_VERSION;
    memcpy(raw + 1, last_id->b, 16);
    if (sign(raw, 17, raw + 17) != 0) {
        return ERR_NOMEM;
    }
    b64url_encode(raw, RAW_LEN, out);
    return 0;
}

int cursor_decode(str_t s, uuid_bytes_t *last_id)
{
    uint8_t raw[RAW_LEN + 3];
    size_t n;
    if (s.len != CURSOR_LEN || b64url_decode(s, raw, &n) != 0 || n != RAW_LEN || raw[0] != CURSOR_VERSION) {
        return ERR_INVAL;
    }
    uint8_t mac[MAC_LEN];
    if (sign(raw, 17, mac) != 0 || CRYPTO_memcmp(mac, raw + 17, MAC_LEN) != 0) {
        return ERR_INVAL;
    }
    memcpy(last_id->b, raw + 1, 16);
    return 0;
}

void cursor_clear_key(void)
{
    digest_hmac_free(key);
    key = NULL;
}
