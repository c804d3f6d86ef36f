/*
 * users_body: a JSON request body through the body checks and the users
 * field rules, as POST / PATCH /v1/users read it. The input is the
 * Content-Type value, a newline, then the body (no newline: all of it is
 * the Content-Type, and the body is empty).
 *
 * Properties: only the listed media types get past the media-type check;
 * an accepted body is a JSON object; a message comes with every syntax and
 * UTF-8 error; an email the rules accept is its own lower-case form, of
 * 3..254 bytes with one '@'; a name they accept has 1..100 code points
 * and no NUL.
 */
#include <jansson.h>
#include <string.h>

#include "http/body.h"
#include "services/users.h"
#include "fuzz.h"

static void check_email(str_t email)
{
    char out[USERS_EMAIL_MAX];
    size_t len = 0;
    if (users_check_email(email, out, &len) != NULL) {
        return;
    }
    FUZZ_ASSERT(len == email.len && len >= 3 && len <= USERS_EMAIL_MAX);
    FUZZ_ASSERT(str_eq_nocase(email, str_make(out, len)));
    const char *at = memchr(out, '@', len);
    FUZZ_ASSERT(at != NULL && memchr(at + 1, '@', len - (size_t)(at - out) - 1) == NULL);
    for (size_t i = 0; i < len; i++) {
        FUZZ_ASSERT(!(out[i] >= 'A' && out[i] <= 'Z'));
        FUZZ_ASSERT(out[i] > ' ' && out[i] < 0x7f); /* nothing a log line or header must escape */
    }
}

static void check_name(str_t name)
{
    if (users_check_name(name) != NULL) {
        return;
    }
    FUZZ_ASSERT(memchr(name.ptr, '\0', name.len) == NULL);
    size_t cps = 0;
    for (size_t i = 0; i < name.len; i++) {
        cps += ((unsigned char)name.ptr[i] & 0xC0) != 0x80;
    }
    FUZZ_ASSERT(cps >= 1 && cps <= USERS_NAME_MAX_CODEPOINTS);
    /* jansson's UTF-8 is at most 4 bytes a code point: a name fits the
       buffers the service copies it into */
    FUZZ_ASSERT(name.len <= USERS_NAME_MAX_BYTES);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const str_t types[] = {{"application/json", 16}, {"application/merge-patch+json", 28}};
    str_t in = fuzz_input(data, size), ct, body;
    (void)fuzz_split(in, '\n', &ct, &body);

    for (size_t ntypes = 1; ntypes <= 2; ntypes++) {
        json_t *root = NULL;
        char msg[200];
        http_body_result_t rc = http_json_object_parse(ct, body, types, ntypes, &root, msg, sizeof(msg));
        bool known = false;
        for (size_t i = 0; i < ntypes; i++) {
            known = known || http_media_type_is(ct, types[i]);
        }
        FUZZ_ASSERT(known == (rc != HTTP_BODY_MEDIA_TYPE));
        FUZZ_ASSERT((rc == HTTP_BODY_OK) == (root != NULL));
        FUZZ_ASSERT(rc != HTTP_BODY_EMPTY || body.len == 0);
        if (rc == HTTP_BODY_SYNTAX || rc == HTTP_BODY_UTF8) {
            FUZZ_ASSERT(msg[0] != '\0' && memchr(msg, '\0', sizeof(msg)) != NULL);
        }
        if (root == NULL) {
            continue;
        }
        FUZZ_ASSERT(json_is_object(root));
        /* the members the users routes read, as they read them */
        json_t *email = json_object_get(root, "email");
        json_t *name = json_object_get(root, "name");
        if (json_is_string(email)) {
            check_email(str_make(json_string_value(email), json_string_length(email)));
        }
        if (json_is_string(name)) {
            check_name(str_make(json_string_value(name), json_string_length(name)));
        }
        json_decref(root);
        if (ntypes == 1) {
            break; /* the second type changes only the media-type check */
        }
    }
    /* the same rules on raw bytes, unvalidated by jansson */
    check_email(body);
    (void)users_check_name(body);
    return 0;
}
