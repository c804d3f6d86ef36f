/*
 * conditional: an If-Match / If-None-Match header value (RFC 9110 section
 * 13.1), through the entity-tag list walk, the weak comparison of
 * If-None-Match and the strong one of If-Match.
 *
 * Properties: the walk ends, each step consumes input and yields a view
 * into it; If-None-Match hits an ETag exactly when the list holds it (or
 * "*"); the versions If-Match keeps are exactly the strong tags of the
 * list that are the canonical spelling of a positive version ("<n>", as
 * the server writes ETags), up to HTTP_IF_MATCH_MAX of them. Strong
 * comparison is character by character (RFC 9110 section 8.8.3.2), so
 * "007" must not stand for version 7.
 */
#include <inttypes.h>
#include <string.h>

#include "http/conditional.h"
#include "fuzz.h"

#define MAX_TAGS 64 /* tags of one input compared; the rest are only walked */

/* Whether tag is the ETag the server writes for some version v >= 1. */
static bool canonical_version(str_t tag, int64_t *v)
{
    if (tag.len < 3 || tag.len > 21 || tag.ptr[0] != '"' || tag.ptr[tag.len - 1] != '"' ||
        tag.ptr[1] == '0') {
        return false;
    }
    if (str_to_i64(str_make(tag.ptr + 1, tag.len - 2), 1, INT64_MAX, v) != 0) {
        return false;
    }
    char back[24];
    int n = snprintf(back, sizeof(back), "\"%" PRId64 "\"", *v);
    return str_eq(tag, str_make(back, (size_t)n));
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    str_t header = fuzz_input(data, size);
    str_t tags[MAX_TAGS];
    bool weak[MAX_TAGS];
    size_t ntags = 0, steps = 0;
    bool star = false;

    str_t list = header, tag;
    bool w;
    for (size_t before = list.len; http_etag_next(&list, &tag, &w); before = list.len) {
        FUZZ_ASSERT(list.len < before);
        FUZZ_ASSERT(fuzz_within(tag, header) && fuzz_within(list, header));
        FUZZ_ASSERT(++steps <= size);
        star = star || str_eq(tag, STR("*"));
        if (ntags < MAX_TAGS) {
            tags[ntags] = tag;
            weak[ntags++] = w;
        }
    }
    FUZZ_ASSERT(list.len == 0);

    /* If-None-Match, against tags of the list and against two fixed ones */
    for (size_t i = 0; i < ntags; i++) {
        FUZZ_ASSERT(http_if_none_match_hits(header, tags[i]));
    }
    static const str_t fixed[] = {{"\"1\"", 3}, {"\"42\"", 4}};
    for (size_t f = 0; f < 2; f++) {
        bool listed = star;
        for (size_t i = 0; i < ntags; i++) {
            listed = listed || str_eq(tags[i], fixed[f]);
        }
        if (ntags < MAX_TAGS) {
            FUZZ_ASSERT(http_if_none_match_hits(header, fixed[f]) == listed);
        }
    }

    /* If-Match */
    http_if_match_t m;
    http_if_match_parse(header, &m);
    FUZZ_ASSERT(m.present && m.any == star && m.n <= HTTP_IF_MATCH_MAX);
    if (ntags == MAX_TAGS) {
        return 0;
    }
    size_t want = 0;
    for (size_t i = 0; i < ntags; i++) {
        int64_t v;
        if (weak[i] || !canonical_version(tags[i], &v) || want == HTTP_IF_MATCH_MAX) {
            continue;
        }
        FUZZ_ASSERT(want < m.n && m.versions[want] == v);
        want++;
    }
    FUZZ_ASSERT(want == m.n);
    return 0;
}
