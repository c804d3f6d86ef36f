/* body: media type and JSON object checks. */
#include "http/body.h"

#include <stdio.h>

#include "base/banned.h"

bool http_media_type_is(str_t ct, str_t want)
{
    size_t n = 0;
    while (n < ct.len && ct.ptr[n] != ';' && ct.ptr[n] != ' ' && ct.ptr[n] != '\t') {
        n++;
    }
    return str_eq_nocase(str_make(ct.ptr, n), want);
}

http_body_result_t http_json_object_parse(str_t content_type, str_t body, const str_t *types, size_t ntypes,
                                          json_t **out, char *msg, size_t msglen)
{
    *out = NULL;
    if (msglen > 0) {
        msg[0] = '\0';
    }
    bool known = false;
    for (size_t i = 0; content_type.ptr != NULL && i < ntypes && !known; i++) {
        known = http_media_type_is(content_type, types[i]);
    }
    if (!known) {
        return HTTP_BODY_MEDIA_TYPE;
    }
    if (body.ptr == NULL || body.len == 0) {
        return HTTP_BODY_EMPTY;
    }
    json_error_t jerr;
    /* NUL is allowed by the parser so that the field rules can name it */
    json_t *root = json_loadb(body.ptr, body.len, JSON_REJECT_DUPLICATES | JSON_ALLOW_NUL, &jerr);
    if (root == NULL) {
        snprintf(msg, msglen, "%s (line %d, column %d)", jerr.text, jerr.line, jerr.column);
        return json_error_code(&jerr) == json_error_invalid_utf8 ? HTTP_BODY_UTF8 : HTTP_BODY_SYNTAX;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        return HTTP_BODY_NOT_OBJECT;
    }
    *out = root;
    return HTTP_BODY_OK;
}
