/* uuid: v7 layout and ordering, parse/format round trip. */
#include "base/err.h"
#include "base/uuid.h"
#include "test.h"

TEST(uuid_v7_layout_and_order)
{
    uuid_bytes_t a, b;
    uuid_v7(0x0123456789ABull, &a);
    CHECK_INT_EQ(a.b[0], 0x01);
    CHECK_INT_EQ(a.b[5], 0xAB);
    CHECK_INT_EQ(a.b[6] >> 4, 7);    /* version */
    CHECK_INT_EQ(a.b[8] >> 6, 2);    /* variant 10 */
    for (int i = 0; i < 5000; i++) { /* same millisecond: still increasing */
        uuid_v7(0x0123456789ABull, &b);
        CHECK(memcmp(a.b, b.b, 16) < 0);
        a = b;
    }
}

TEST(uuid_parse_format_round_trip)
{
    uuid_bytes_t u;
    CHECK_INT_EQ(uuid_parse(STR("0190F5E4-7C1A-7B3E-9A0C-1D2E3F405162"), &u), 0);
    char out[UUID_STR_LEN];
    uuid_format(&u, out);
    CHECK_MEM_EQ(out, UUID_STR_LEN, "0190f5e4-7c1a-7b3e-9a0c-1d2e3f405162");
}

TEST(uuid_parse_rejects)
{
    uuid_bytes_t u;
    const char *bad[] = {"",
                         "not-a-uuid",
                         "123",
                         "0190f5e47c1a7b3e9a0c1d2e3f405162",
                         "0190f5e4-7c1a-7b3e-9a0c-1d2e3f40516",
                         "0190f5e4-7c1a-7b3e-9a0c-1d2e3f40516g",
                         "{0190f5e4-7c1a-7b3e-9a0c-1d2e3f405162}",
                         "0190f5e4_7c1a-7b3e-9a0c-1d2e3f405162"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (uuid_parse(str_from_cstr(bad[i]), &u) != ERR_INVAL) {
            test_fail(__FILE__, __LINE__, "\"%s\" should not parse", bad[i]);
        }
    }
}
