/* otlp: the traces URL, the JSON encoding, the retry rules. */
#include <jansson.h>

#include "base/err.h"
#include "obs/otlp.h"
#include "test.h"

TEST(otlp_traces_url)
{
    char url[128];
    CHECK_INT_EQ(otlp_traces_url("http://127.0.0.1:4318", url, sizeof(url)), 0);
    CHECK(strcmp(url, "http://127.0.0.1:4318/v1/traces") == 0);
    CHECK_INT_EQ(otlp_traces_url("https://collector.example/otlp/", url, sizeof(url)), 0);
    CHECK(strcmp(url, "https://collector.example/otlp/v1/traces") == 0);
    CHECK_INT_EQ(otlp_traces_url("HTTP://c:1//", url, sizeof(url)), 0);
    CHECK(strcmp(url, "HTTP://c:1/v1/traces") == 0);
    CHECK_INT_EQ(otlp_traces_url("grpc://c:4317", url, sizeof(url)), ERR_INVAL);
    CHECK_INT_EQ(otlp_traces_url("c:4318", url, sizeof(url)), ERR_INVAL);
    CHECK_INT_EQ(otlp_traces_url("http://", url, sizeof(url)), ERR_INVAL);
    CHECK_INT_EQ(otlp_traces_url("http://a-very-long-host-name.example", url, 16), ERR_INVAL);
}

TEST(otlp_retry_rules)
{
    CHECK(otlp_retryable(0, true)); /* refused, reset, timed out */
    CHECK(otlp_retryable(429, false));
    CHECK(otlp_retryable(502, false));
    CHECK(otlp_retryable(503, false));
    CHECK(otlp_retryable(504, false));
    CHECK(!otlp_retryable(400, false));
    CHECK(!otlp_retryable(500, false));
    CHECK(!otlp_retryable(404, false));
    CHECK(!otlp_retryable(200, false));
    /* doubling from 250 ms with up to a quarter off, capped at 8 s */
    CHECK_INT_EQ(otlp_backoff_ms(1, 0, 0), 250);
    CHECK_INT_EQ(otlp_backoff_ms(2, 0, 0), 500);
    CHECK_INT_EQ(otlp_backoff_ms(3, 0, 0), 1000);
    CHECK_INT_EQ(otlp_backoff_ms(10, 0, 0), 8000);
    for (uint64_t r = 0; r < 100; r++) {
        int64_t w = otlp_backoff_ms(2, 0, r * 7919);
        CHECK(w >= 375 && w <= 500);
    }
    CHECK_INT_EQ(otlp_backoff_ms(1, 3, 0), 3000);     /* Retry-After wins when longer */
    CHECK_INT_EQ(otlp_backoff_ms(10, 1, 0), 8000);    /* ... not when shorter */
    CHECK_INT_EQ(otlp_backoff_ms(1, 9999, 0), 60000); /* and is capped */
}

TEST(otlp_sql_operation)
{
    char op[16];
    otlp_sql_operation("SELECT id FROM users", op, sizeof(op));
    CHECK(strcmp(op, "SELECT") == 0);
    otlp_sql_operation("  (select 1)", op, sizeof(op));
    CHECK(strcmp(op, "SELECT") == 0);
    otlp_sql_operation("with x as (...) insert", op, sizeof(op));
    CHECK(strcmp(op, "WITH") == 0);
    otlp_sql_operation("", op, sizeof(op));
    CHECK(strcmp(op, "") == 0);
    otlp_sql_operation(NULL, op, sizeof(op));
    CHECK(strcmp(op, "") == 0);
    otlp_sql_operation("DELETE", op, 4);
    CHECK(strcmp(op, "DEL") == 0);
}

static json_t *attr(json_t *span, const char *key)
{
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(span, "attributes"), i, a)
    {
        if (strcmp(json_string_value(json_object_get(a, "key")), key) == 0) {
            return json_object_get(a, "value");
        }
    }
    return NULL;
}

static const char *attr_s(json_t *span, const char *key)
{
    json_t *v = attr(span, key);
    return v ? json_string_value(json_object_get(v, "stringValue")) : NULL;
}

TEST(otlp_encode_spans)
{
    trace_rec_t r[3];
    memset(r, 0, sizeof(r));
    for (int i = 0; i < 16; i++) {
        r[0].trace_id[i] = (uint8_t)(0xa0 + i);
    }
    memset(r[0].span_id, 0x11, 8);
    memset(r[0].parent_id, 0x22, 8);
    r[0].has_parent = true;
    r[0].kind = TRACE_KIND_SERVER;
    r[0].start_us = 1000;
    r[0].end_us = 3500;
    r[0].status = 504;
    r[0].error = true;
    snprintf(r[0].err, sizeof(r[0].err), "504");
    r[0].http_version = 11;
    r[0].method = "GET";
    r[0].route = "/v1/users/{id}";
    memcpy(r[0].text, "/v1/users/\"x\"", 13);
    r[0].text_len = 13;
    char ts[] = "k=v";
    r[0].tracestate = ts;

    memcpy(r[1].trace_id, r[0].trace_id, 16);
    memset(r[1].span_id, 0x33, 8);
    memcpy(r[1].parent_id, r[0].span_id, 8);
    r[1].has_parent = true;
    r[1].kind = TRACE_KIND_CLIENT;
    r[1].db = TRACE_DB_POSTGRESQL;
    r[1].nstmts = 1;
    r[1].stmts[0] = "users_get";
    r[1].sql = "SELECT * FROM users WHERE id = $1";
    r[1].start_us = 1100;
    r[1].end_us = 1200;

    r[2] = r[1];
    memset(r[2].span_id, 0x44, 8);
    r[2].db = TRACE_DB_REDIS;
    r[2].nstmts = 0;
    r[2].sql = NULL;
    memcpy(r[2].text, "GET", 3);
    r[2].text_len = 3;

    buf_t b;
    buf_init(&b, 1 << 20);
    otlp_encode(&b, r, 3, "svc", "1.0", 1700000000000000LL);
    CHECK(!buf_failed(&b));
    json_error_t e;
    json_t *doc = json_loadb(b.ptr, b.len, 0, &e);
    CHECK(doc != NULL);
    if (doc == NULL) {
        buf_deinit(&b);
        return;
    }
    json_t *rs = json_array_get(json_object_get(doc, "resourceSpans"), 0);
    json_t *res = json_object_get(rs, "resource");
    CHECK(strcmp(attr_s(res, "service.name"), "svc") == 0);
    json_t *spans = json_object_get(json_array_get(json_object_get(rs, "scopeSpans"), 0), "spans");
    CHECK_INT_EQ(json_array_size(spans), 3);

    json_t *s0 = json_array_get(spans, 0);
    CHECK(strcmp(json_string_value(json_object_get(s0, "traceId")), "a0a1a2a3a4a5a6a7a8a9aaabacadaeaf") == 0);
    CHECK(strcmp(json_string_value(json_object_get(s0, "spanId")), "1111111111111111") == 0);
    CHECK(strcmp(json_string_value(json_object_get(s0, "parentSpanId")), "2222222222222222") == 0);
    CHECK(strcmp(json_string_value(json_object_get(s0, "traceState")), "k=v") == 0);
    CHECK(strcmp(json_string_value(json_object_get(s0, "name")), "GET /v1/users/{id}") == 0);
    CHECK_INT_EQ(json_integer_value(json_object_get(s0, "kind")), 2);
    /* 64-bit times are decimal strings of Unix nanoseconds */
    CHECK(strcmp(json_string_value(json_object_get(s0, "startTimeUnixNano")), "1700000000001000000") == 0);
    CHECK(strcmp(json_string_value(json_object_get(s0, "endTimeUnixNano")), "1700000000003500000") == 0);
    CHECK(strcmp(attr_s(s0, "http.request.method"), "GET") == 0);
    CHECK(strcmp(attr_s(s0, "http.route"), "/v1/users/{id}") == 0);
    CHECK(strcmp(attr_s(s0, "url.path"), "/v1/users/\"x\"") == 0);
    CHECK(strcmp(json_string_value(json_object_get(attr(s0, "http.response.status_code"), "intValue")),
                 "504") == 0);
    CHECK(strcmp(attr_s(s0, "error.type"), "504") == 0);
    CHECK_INT_EQ(json_integer_value(json_object_get(json_object_get(s0, "status"), "code")), 2);

    json_t *s1 = json_array_get(spans, 1);
    CHECK_INT_EQ(json_integer_value(json_object_get(s1, "kind")), 3);
    CHECK(strcmp(json_string_value(json_object_get(s1, "parentSpanId")), "1111111111111111") == 0);
    CHECK(strcmp(json_string_value(json_object_get(s1, "name")), "SELECT users_get") == 0);
    CHECK(strcmp(attr_s(s1, "db.system"), "postgresql") == 0);
    CHECK(strcmp(attr_s(s1, "db.operation.name"), "SELECT") == 0);
    CHECK(strcmp(attr_s(s1, "db.statement.name"), "users_get") == 0);
    CHECK(json_object_get(s1, "traceState") == NULL);
    CHECK(json_object_get(json_object_get(s1, "status"), "code") == NULL); /* unset */

    json_t *s2 = json_array_get(spans, 2);
    CHECK(strcmp(json_string_value(json_object_get(s2, "name")), "GET") == 0);
    CHECK(strcmp(attr_s(s2, "db.system"), "redis") == 0);
    CHECK(strcmp(attr_s(s2, "db.operation.name"), "GET") == 0);
    json_decref(doc);
    buf_deinit(&b);
}

TEST(otlp_encode_root_and_unmatched)
{
    trace_rec_t r;
    memset(&r, 0, sizeof(r));
    r.trace_id[0] = 1;
    r.span_id[0] = 1;
    r.kind = TRACE_KIND_SERVER;
    r.method = "_OTHER";
    r.status = 404;
    buf_t b;
    buf_init(&b, 1 << 16);
    otlp_encode(&b, &r, 1, "api", "0", 0);
    json_t *doc = json_loadb(b.ptr, b.len, 0, NULL);
    CHECK(doc != NULL);
    json_t *s = json_array_get(
        json_object_get(
            json_array_get(
                json_object_get(json_array_get(json_object_get(doc, "resourceSpans"), 0), "scopeSpans"), 0),
            "spans"),
        0);
    CHECK(json_object_get(s, "parentSpanId") == NULL); /* a root */
    CHECK(strcmp(json_string_value(json_object_get(s, "name")), "HTTP") == 0);
    CHECK(attr(s, "http.route") == NULL);
    CHECK(json_object_get(json_object_get(s, "status"), "code") == NULL); /* a 4xx is not an error */
    json_decref(doc);
    buf_deinit(&b);
}
