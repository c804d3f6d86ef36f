/* problem: RFC 9457 rendering, byte for byte, and the err -> status map. */
#include "base/err.h"
#include "http/problem.h"
#include "test.h"

TEST(problem_renders_minimal)
{
    buf_t b;
    buf_init(&b, 4096);
    http_problem_t p = {.status = 404, .slug = "not-found", .detail = STR("no such user")};
    http_problem_render(&b, &p);
    CHECK_MEM_EQ(b.ptr, b.len,
                 "{\"type\":\"/problems/not-found\",\"title\":\"Not Found\",\"status\":404,\"detail\":\"no "
                 "such user\"}");
    buf_deinit(&b);
}

TEST(problem_renders_errors_and_escapes)
{
    buf_t b;
    buf_init(&b, 4096);
    http_field_error_t errs[] = {{STR("/email"), STR("must be an \"email\"")},
                                 {STR("/name"), STR("too long")}};
    http_problem_t p = {.status = 422,
                        .slug = "validation-failed",
                        .title = "Invalid fields",
                        .detail = STR("2 fields"),
                        .errors = errs,
                        .nerrors = 2};
    http_problem_render(&b, &p);
    CHECK_MEM_EQ(
        b.ptr, b.len,
        "{\"type\":\"/problems/validation-failed\",\"title\":\"Invalid fields\",\"status\":422,"
        "\"detail\":\"2 fields\",\"errors\":[{\"field\":\"/email\",\"message\":\"must be an \\\"email\\\"\"},"
        "{\"field\":\"/name\",\"message\":\"too long\"}]}");
    buf_deinit(&b);
}

TEST(problem_from_err_maps_statuses)
{
    http_problem_t p;
    http_problem_from_err(ERR_TIMEOUT, STR_NULL, &p);
    CHECK_INT_EQ(p.status, 504);
    http_problem_from_err(ERR_UNAVAILABLE, STR_NULL, &p);
    CHECK_INT_EQ(p.status, 503);
    CHECK(p.retry_after_s >= 1);
    http_problem_from_err(ERR_NOTFOUND, STR_NULL, &p);
    CHECK_INT_EQ(p.status, 404);
    http_problem_from_err(ERR_CONFLICT, STR_NULL, &p);
    CHECK_INT_EQ(p.status, 409);
    http_problem_from_err(ERR_INVAL, STR_NULL, &p);
    CHECK_INT_EQ(p.status, 400);
    http_problem_from_err(ERR_NOMEM, STR_NULL, &p);
    CHECK_INT_EQ(p.status, 500);
    CHECK(strcmp(p.slug, "internal") == 0);
}

TEST(problem_reason_phrases)
{
    CHECK(strcmp(http_status_reason(405), "Method Not Allowed") == 0);
    CHECK(strcmp(http_status_reason(422), "Unprocessable Content") == 0);
    CHECK(strcmp(http_status_reason(599), "Error") == 0);
}
