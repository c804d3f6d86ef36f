/*
 * traceparent: a `traceparent` header value (W3C Trace Context, section
 * 3.2), then after a newline a `tracestate` value (section 3.3), through
 * trace_parse_traceparent and trace_tracestate_clip (obs/trace.h).
 *
 * Properties: traceparent is accepted exactly when a reference check made
 * here (rather than the implementation's) says so - version two lower-case
 * hex digits but not "ff", exactly 55 characters for version 00 and
 * otherwise either 55 or followed by '-', lower-case hex ids that are not
 * all zero, '-' separators - and an accepted one gives back the bytes it
 * was written with. The tracestate carried is a prefix of the input of at
 * most 512 characters, ends on a list member (never a separator or a
 * space), and is its own clip (carrying it on changes nothing).
 */
#include <string.h>

#include "obs/trace.h"
#include "fuzz.h"

static bool lower_hex(const uint8_t *p, size_t n, bool *zero)
{
    *zero = true;
    for (size_t i = 0; i < n; i++) {
        if (!((p[i] >= '0' && p[i] <= '9') || (p[i] >= 'a' && p[i] <= 'f'))) {
            return false;
        }
        *zero = *zero && p[i] == '0';
    }
    return true;
}

static bool reference_valid(const uint8_t *p, size_t n)
{
    bool zero;
    if (n < 55 || !lower_hex(p, 2, &zero) || (p[0] == 'f' && p[1] == 'f')) {
        return false;
    }
    bool v00 = p[0] == '0' && p[1] == '0';
    if ((v00 && n != 55) || (n > 55 && p[55] != '-')) {
        return false;
    }
    if (p[2] != '-' || p[35] != '-' || p[52] != '-') {
        return false;
    }
    if (!lower_hex(p + 3, 32, &zero) || zero || !lower_hex(p + 36, 16, &zero) || zero) {
        return false;
    }
    return lower_hex(p + 53, 2, &zero);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    str_t tp, ts;
    fuzz_split(fuzz_input(data, size), '\n', &tp, &ts);

    trace_parent_t p;
    bool ok = trace_parse_traceparent(tp, &p) == 0;
    FUZZ_ASSERT(ok == reference_valid((const uint8_t *)tp.ptr, tp.len));
    if (ok) {
        char hex[32];
        trace_hex(p.trace_id, TRACE_ID_LEN, hex);
        FUZZ_ASSERT(memcmp(hex, tp.ptr + 3, 32) == 0);
        trace_hex(p.parent_id, TRACE_SPAN_ID_LEN, hex);
        FUZZ_ASSERT(memcmp(hex, tp.ptr + 36, 16) == 0);
        trace_hex(&p.flags, 1, hex);
        FUZZ_ASSERT(memcmp(hex, tp.ptr + 53, 2) == 0);
    }

    size_t keep = trace_tracestate_clip(ts);
    FUZZ_ASSERT(keep <= ts.len && keep <= TRACESTATE_MAX);
    if (keep > 0) {
        char last = ts.ptr[keep - 1];
        FUZZ_ASSERT(last != ',' && last != ' ' && last != '\t');
        FUZZ_ASSERT(memchr(ts.ptr, '=', keep) != NULL);
        FUZZ_ASSERT(trace_tracestate_clip(str_make(ts.ptr, keep)) == keep);
        size_t members = 0; /* non-empty ones: empty members are allowed and dropped */
        bool in_member = false;
        for (size_t i = 0; i < keep; i++) {
            char c = ts.ptr[i];
            if (c == ',') {
                in_member = false;
            } else if (c != ' ' && c != '\t' && !in_member) {
                in_member = true;
                members++;
            }
        }
        FUZZ_ASSERT(members >= 1 && members <= TRACESTATE_MEMBERS);
    }
    return 0;
}
