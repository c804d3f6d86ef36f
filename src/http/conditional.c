/* conditional: entity-tag list parsing. */
#include "http/conditional.h"

#include <string.h>

#include "base/banned.h"

bool http_etag_next(str_t *list, str_t *tag, bool *weak)
{
    while (list->len > 0 && (list->ptr[0] == ' ' || list->ptr[0] == ',' || list->ptr[0] == '\t')) {
        list->ptr++, list->len--;
    }
    if (list->len == 0) {
        return false;
    }
    *weak = list->len >= 2 && list->ptr[0] == 'W' && list->ptr[1] == '/';
    size_t i = *weak ? 2 : 0;
    size_t start = i;
    if (i < list->len && list->ptr[i] == '"') {
        const char *close = memchr(list->ptr + i + 1, '"', list->len - i - 1);
        i = close ? (size_t)(close - list->ptr) + 1 : list->len;
    } else {
        while (i < list->len && list->ptr[i] != ',') {
            i++;
        }
    }
    *tag = str_make(list->ptr + start, i - start);
    list->ptr += i, list->len -= i;
    return true;
}

bool http_if_none_match_hits(str_t header, str_t etag)
{
    str_t tag;
    bool weak;
    while (http_etag_next(&header, &tag, &weak)) {
        if (str_eq(tag, STR("*")) || str_eq(tag, etag)) {
            return true;
        }
    }
    return false;
}

void http_if_match_parse(str_t header, http_if_match_t *out)
{
    *out = (http_if_match_t){.present = header.ptr != NULL};
    str_t tag;
    bool weak;
    while (header.ptr != NULL && http_etag_next(&header, &tag, &weak)) {
        if (str_eq(tag, STR("*"))) {
            out->any = true;
            continue;
        }
        /* Strong comparison is character by character (RFC 9110 8.8.3.2):
           only the spelling the server writes, no leading zeros, matches. */
        int64_t v;
        if (!weak && tag.len >= 3 && tag.ptr[0] == '"' && tag.ptr[tag.len - 1] == '"' && tag.ptr[1] != '0' &&
            str_to_i64(str_make(tag.ptr + 1, tag.len - 2), 1, INT64_MAX, &v) == 0 &&
            out->n < HTTP_IF_MATCH_MAX) {
            out->versions[out->n++] = v;
        }
    }
}
