/* body: media types and the 400/415/422 split of JSON bodies. */
#include "http/body.h"
#include "test.h"

static http_body_result_t parse(const char *ct, const char *body, size_t len)
{
    static const str_t types[] = {{"application/json", 16}};
    json_t *j = NULL;
    char msg[128];
    http_body_result_t r = http_json_object_parse(ct ? str_from_cstr(ct) : STR_NULL, str_make(body, len),
                                                  types, 1, &j, msg, sizeof(msg));
    CHECK((r == HTTP_BODY_OK) == (j != NULL));
    json_decref(j);
    return r;
}

TEST(body_media_type)
{
    CHECK(http_media_type_is(STR("application/json; charset=utf-8"), STR("application/json")));
    CHECK(http_media_type_is(STR("Application/JSON"), STR("application/json")));
    CHECK(!http_media_type_is(STR("application/jsonx"), STR("application/json")));
    CHECK_INT_EQ(parse(NULL, "{}", 2), HTTP_BODY_MEDIA_TYPE);
    CHECK_INT_EQ(parse("text/plain", "{}", 2), HTTP_BODY_MEDIA_TYPE);
}

TEST(body_classifies_errors)
{
    CHECK_INT_EQ(parse("application/json", "{\"a\":1}", 7), HTTP_BODY_OK);
    CHECK_INT_EQ(parse("application/json", "", 0), HTTP_BODY_EMPTY);
    CHECK_INT_EQ(parse("application/json", "{\"a\":", 5), HTTP_BODY_SYNTAX);
    CHECK_INT_EQ(parse("application/json", "{\"a\":1,\"a\":2}", 13), HTTP_BODY_SYNTAX);
    CHECK_INT_EQ(parse("application/json", "{} x", 4), HTTP_BODY_SYNTAX);
    CHECK_INT_EQ(parse("application/json", "[1]", 3), HTTP_BODY_NOT_OBJECT);
    CHECK_INT_EQ(parse("application/json", "{\"a\":\"\xff\"}", 8), HTTP_BODY_UTF8);
    CHECK_INT_EQ(parse("application/json", "{\"a\":\"\\u0000\"}", 14),
                 HTTP_BODY_OK); /* NUL: the rules name it */
}
