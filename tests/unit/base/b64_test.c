/* b64: RFC 4648 test vectors (url alphabet, no padding), strictness. */
#include "base/b64.h"
#include "base/err.h"
#include "test.h"

TEST(b64url_vectors)
{
    const char *in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
    const char *out[] = {"", "Zg", "Zm8", "Zm9v", "Zm9vYg", "Zm9vYmE", "Zm9vYmFy"};
    for (int i = 0; i < 7; i++) {
        char enc[16];
        size_t n = b64url_encode((const uint8_t *)in[i], strlen(in[i]), enc);
        CHECK_MEM_EQ(enc, n, out[i]);
        uint8_t dec[16];
        size_t m;
        CHECK_INT_EQ(b64url_decode(str_from_cstr(out[i]), dec, &m), 0);
        CHECK_MEM_EQ((const char *)dec, m, in[i]);
    }
    uint8_t raw[] = {0xfb, 0xff};
    char enc[8];
    size_t n = b64url_encode(raw, 2, enc);
    CHECK_MEM_EQ(enc, n, "-_8");
}

TEST(b64url_rejects_noncanonical)
{
    uint8_t dec[16];
    size_t m;
    CHECK_INT_EQ(b64url_decode(STR("Zm9v="), dec, &m), ERR_INVAL); /* padding */
    CHECK_INT_EQ(b64url_decode(STR("Zm+v"), dec, &m), ERR_INVAL);  /* standard alphabet */
    CHECK_INT_EQ(b64url_decode(STR("Zh"), dec, &m), ERR_INVAL);    /* trailing bits set */
    CHECK_INT_EQ(b64url_decode(STR("Z"), dec, &m), ERR_INVAL);     /* impossible length */
    CHECK_INT_EQ(b64url_decode(STR("Zm 9"), dec, &m), ERR_INVAL);
}
