/* h1head: head boundaries with CRLF or bare LF, then the framing fields. */
#include "http/h1head.h"

#include <stdbool.h>
#include <string.h>

#include "base/str.h"
#include "base/banned.h"

/* Case-insensitive "name:" at the start of a header line. */
static bool line_is_header(const char *line, size_t len, const char *name)
{
    size_t n = strlen(name);
    return len > n && line[n] == ':' && str_eq_nocase(str_make(line, n), str_make(name, n));
}

static str_t trim_ows(str_t v)
{
    while (v.len > 0 && (v.ptr[0] == ' ' || v.ptr[0] == '\t')) {
        v.ptr++, v.len--;
    }
    while (v.len > 0 && (v.ptr[v.len - 1] == ' ' || v.ptr[v.len - 1] == '\t')) {
        v.len--;
    }
    return v;
}

/* The length of the head up to (not including) its empty line: the first
   line that is empty or just "\r". 0 when p holds no complete head. */
static size_t head_length(const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        const char *nl = memchr(p + i, '\n', n - i);
        if (nl == NULL) {
            return 0;
        }
        size_t next = (size_t)(nl - p) + 1;
        if (next < n && p[next] == '\n') {
            return next; /* "...\n\n" */
        }
        if (next + 1 < n && p[next] == '\r' && p[next + 1] == '\n') {
            return next; /* "...\n\r\n" */
        }
        i = next;
    }
    return 0;
}

int http_h1_head_check(const char *p, size_t n, size_t max_head)
{
    size_t head = head_length(p, n);
    if (head == 0) {
        return 0;
    }
    const char *end = p + head;
    const char *first_nl = memchr(p, '\n', head);
    size_t request_line = first_nl ? (size_t)(first_nl - p) : head;
    if (request_line > max_head) {
        return 414; /* the request-target alone is too long */
    }
    if (head > max_head) {
        return 431;
    }
    int te = 0, cl = 0;
    str_t cl_value = STR_NULL;
    const char *line = first_nl ? first_nl + 1 : end;
    while (line < end) {
        const char *nl = memchr(line, '\n', (size_t)(end - line));
        size_t len = nl ? (size_t)(nl - line) : (size_t)(end - line);
        if (len > 0 && line[len - 1] == '\r') {
            len--;
        }
        if (line_is_header(line, len, "transfer-encoding")) {
            te++;
        } else if (line_is_header(line, len, "content-length")) {
            str_t v = trim_ows(str_make(line + 15, len - 15));
            if (cl++ > 0 && !str_eq(v, cl_value)) {
                return 400;
            }
            cl_value = v;
        }
        line = nl ? nl + 1 : end;
    }
    return te > 0 && cl > 0 ? 400 : 0;
}
