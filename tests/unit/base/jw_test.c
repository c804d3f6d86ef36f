/* json: structure, commas, escaping and UTF-8 repair. */
#include "base/jw.h"
#include "test.h"

TEST(json_writes_nested_structures)
{
    buf_t b;
    buf_init(&b, 1024);
    jw_t j;
    jw_init(&j, &b);
    jw_obj_open(&j);
    jw_kv_str(&j, "a", STR("x"));
    jw_key(&j, STR("list"));
    jw_arr_open(&j);
    jw_int(&j, 1);
    jw_int(&j, -2);
    jw_null(&j);
    jw_bool(&j, true);
    jw_obj_open(&j);
    jw_obj_close(&j);
    jw_arr_close(&j);
    jw_kv_int(&j, "n", 9007199254740993LL);
    jw_obj_close(&j);
    CHECK(!buf_failed(&b));
    CHECK_MEM_EQ(b.ptr, b.len, "{\"a\":\"x\",\"list\":[1,-2,null,true,{}],\"n\":9007199254740993}");
    buf_deinit(&b);
}

TEST(json_escapes_control_and_quotes)
{
    buf_t b;
    buf_init(&b, 1024);
    jw_escape(&b, STR("a\"b\\c\n\t\x01\x7f"));
    CHECK_MEM_EQ(b.ptr, b.len, "a\\\"b\\\\c\\n\\t\\u0001\x7f");
    buf_deinit(&b);
}

TEST(json_keeps_valid_utf8_and_replaces_invalid)
{
    buf_t b;
    buf_init(&b, 1024);
    jw_escape(&b, STR("caf\xc3\xa9 \xf0\x9f\x98\x80"));
    CHECK_MEM_EQ(b.ptr, b.len, "caf\xc3\xa9 \xf0\x9f\x98\x80");
    buf_reset(&b);
    /* lone continuation, overlong '/', surrogate, truncated sequence */
    jw_escape(&b, STR("\x80|\xc0\xaf|\xed\xa0\x80|\xe2\x82"));
    CHECK_MEM_EQ(b.ptr, b.len, "\\ufffd|\\ufffd\\ufffd|\\ufffd\\ufffd\\ufffd|\\ufffd\\ufffd");
    buf_deinit(&b);
}

TEST(json_depth_and_cap_fail_cleanly)
{
    buf_t b;
    buf_init(&b, 8);
    jw_t j;
    jw_init(&j, &b);
    jw_str(&j, STR("this is longer than eight bytes"));
    CHECK(buf_failed(&b));
    buf_deinit(&b);

    buf_init(&b, 1024);
    jw_init(&j, &b);
    for (int i = 0; i < JW_MAX_DEPTH + 1; i++) {
        jw_arr_open(&j);
    }
    CHECK(buf_failed(&b));
    buf_deinit(&b);
}

TEST(jw_int_extremes)
{
    buf_t b;
    buf_init(&b, 256);
    jw_t j;
    jw_init(&j, &b);
    jw_arr_open(&j);
    jw_int(&j, 0);
    jw_int(&j, INT64_MAX);
    jw_int(&j, INT64_MIN);
    jw_arr_close(&j);
    CHECK_MEM_EQ(b.ptr, b.len, "[0,9223372036854775807,-9223372036854775808]");
    buf_deinit(&b);
}
