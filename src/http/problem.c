/* problem: RFC 9457 rendering and the err -> status mapping. */
#include "http/problem.h"

#include <stdio.h>

#include "base/err.h"
#include "base/jw.h"
#include "base/banned.h"

const char *http_status_reason(int status)
{
    switch (status) {
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 403:
        return "Forbidden";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 412:
        return "Precondition Failed";
    case 413:
        return "Content Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 428:
        return "Precondition Required";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    }
    return "Error";
}

void http_problem_render(buf_t *b, const http_problem_t *p)
{
    jw_t j;
    jw_init(&j, b);
    jw_obj_open(&j);
    char type[128];
    int tn = snprintf(type, sizeof(type), "%s%s", HTTP_PROBLEM_BASE, p->slug);
    jw_kv_str(&j, "type", str_make(type, tn > 0 && (size_t)tn < sizeof(type) ? (size_t)tn : 0));
    jw_kv_str(&j, "title", str_from_cstr(p->title ? p->title : http_status_reason(p->status)));
    jw_kv_int(&j, "status", p->status);
    jw_kv_str(&j, "detail", p->detail.ptr ? p->detail : str_from_cstr(http_status_reason(p->status)));
    if (p->nerrors > 0) {
        jw_key(&j, STR("errors"));
        jw_arr_open(&j);
        size_t n = p->nerrors < HTTP_PROBLEM_MAX_ERRORS ? p->nerrors : HTTP_PROBLEM_MAX_ERRORS;
        for (size_t i = 0; i < n; i++) {
            jw_obj_open(&j);
            jw_kv_str(&j, "field", p->errors[i].field);
            jw_kv_str(&j, "message", p->errors[i].message);
            jw_obj_close(&j);
        }
        jw_arr_close(&j);
    }
    jw_obj_close(&j);
}

void http_problem_from_err(int err, str_t detail, http_problem_t *out)
{
    *out = (http_problem_t){.detail = detail};
    switch (err) {
    case ERR_TIMEOUT:
        out->status = 504;
        out->slug = "timeout";
        out->title = "Request timed out";
        if (!detail.ptr) {
            out->detail = STR("the request did not complete within its deadline");
        }
        return;
    case ERR_UNAVAILABLE:
    case ERR_CANCELLED:
        out->status = 503;
        out->slug = "unavailable";
        out->title = "Service unavailable";
        out->retry_after_s = 1;
        if (!detail.ptr) {
            out->detail = STR("a dependency is unavailable or the server is overloaded; retry later");
        }
        return;
    case ERR_NOTFOUND:
        out->status = 404;
        out->slug = "not-found";
        return;
    case ERR_CONFLICT:
        out->status = 409;
        out->slug = "conflict";
        return;
    case ERR_INVAL:
        out->status = 400;
        out->slug = "bad-request";
        return;
    case ERR_RANGE:
        out->status = 422;
        out->slug = "validation-failed";
        return;
    case ERR_UNAUTHORIZED:
        out->status = 401;
        out->slug = "unauthorized";
        return;
    case ERR_RETRY:
        out->status = 409;
        out->slug = "conflict";
        if (!detail.ptr) {
            out->detail = STR("a concurrent request changed the resource; retry");
        }
        out->retry_after_s = 1;
        out->retryable = true;
        return;
    case ERR_PRECONDITION:
        out->status = 412;
        out->slug = "precondition-failed";
        if (!detail.ptr) {
            out->detail = STR("the resource has changed since the version named in If-Match");
        }
        return;
    }
    out->status = 500;
    out->slug = "internal";
    out->title = "Internal server error";
    out->detail = STR("an unexpected error occurred; it has been logged");
}
