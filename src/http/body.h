/*
 * body: a request body that must be one JSON object of a given media type.
 *
 * The rules of the contract, in one pure function: an unsupported media
 * type is 415; an empty body or malformed JSON is a syntax error (400);
 * invalid UTF-8 inside the JSON, or JSON that is not an object, is 422.
 * Duplicate members are malformed; NUL inside strings is let through so
 * that field rules can name it. No HTTP types: the caller answers.
 */
#ifndef HTTP_BODY_H
#define HTTP_BODY_H

#include <jansson.h>
#include <stddef.h>

#include "base/str.h"

typedef enum {
    HTTP_BODY_OK = 0,
    HTTP_BODY_MEDIA_TYPE, /* 415 */
    HTTP_BODY_EMPTY,      /* 400 */
    HTTP_BODY_SYNTAX,     /* 400 */
    HTTP_BODY_UTF8,       /* 422 */
    HTTP_BODY_NOT_OBJECT, /* 422 */
} http_body_result_t;

/* Whether the Content-Type value ct (parameters ignored) is want. */
bool http_media_type_is(str_t ct, str_t want);

/*
 * Parses body as a JSON object sent as one of the ntypes media types.
 * On HTTP_BODY_OK *out is the object (the caller json_decref()s it); on a
 * syntax or UTF-8 error msg holds jansson's reason with line and column.
 */
http_body_result_t http_json_object_parse(str_t content_type, str_t body, const str_t *types, size_t ntypes,
                                          json_t **out, char *msg, size_t msglen);

#endif
