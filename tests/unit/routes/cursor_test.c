/* cursor: round trip; every alteration is refused. */
#include "base/err.h"
#include "routes/cursor.h"
#include "test.h"

TEST(cursor_round_trip_and_tamper)
{
    CHECK_INT_EQ(cursor_set_key("k1-k1-k1-k1-k1-k1-k1-k1-k1-k1-k1-k1", 35), 0);
    uuid_bytes_t id, back;
    CHECK_INT_EQ(uuid_parse(STR("0190f5e4-7c1a-7b3e-9a0c-1d2e3f405162"), &id), 0);
    char c[CURSOR_LEN];
    CHECK_INT_EQ(cursor_encode(&id, c), 0);
    CHECK_INT_EQ(cursor_decode(str_make(c, CURSOR_LEN), &back), 0);
    CHECK(memcmp(id.b, back.b, 16) == 0);
    for (size_t i = 0; i < CURSOR_LEN; i++) {
        char t[CURSOR_LEN];
        memcpy(t, c, CURSOR_LEN);
        t[i] = t[i] == 'A' ? 'B' : 'A';
        if (cursor_decode(str_make(t, CURSOR_LEN), &back) == 0) {
            test_fail(__FILE__, __LINE__, "altered byte %zu accepted", i);
        }
    }
    CHECK_INT_EQ(cursor_decode(str_make(c, CURSOR_LEN - 1), &back), ERR_INVAL);
    CHECK_INT_EQ(cursor_decode(STR(""), &back), ERR_INVAL);
    /* another key: the same cursor is foreign */
    CHECK_INT_EQ(cursor_set_key("k2-k2-k2-k2-k2-k2-k2-k2-k2-k2-k2-k2", 35), 0);
    CHECK_INT_EQ(cursor_decode(str_make(c, CURSOR_LEN), &back), ERR_INVAL);
}
