/* trace: W3C Trace Context parsing, sampling, scopes and span queues. */
#include <stdlib.h>

#include "base/err.h"
#include "obs/metrics.h"
#include "obs/trace.h"
#include "test.h"

#define TP_TRACE "4bf92f3577b34da6a3ce929d0e0e4736"
#define TP_SPAN  "00f067aa0ba902b7"

static int parse(const char *s, trace_parent_t *p)
{
    return trace_parse_traceparent(str_from_cstr(s), p);
}

TEST(trace_traceparent_valid)
{
    trace_parent_t p;
    CHECK_INT_EQ(parse("00-" TP_TRACE "-" TP_SPAN "-01", &p), 0);
    char hex[32];
    trace_hex(p.trace_id, 16, hex);
    CHECK_MEM_EQ(hex, 32, TP_TRACE);
    trace_hex(p.parent_id, 8, hex);
    CHECK_MEM_EQ(hex, 16, TP_SPAN);
    CHECK_INT_EQ(p.flags, 1);
    CHECK_INT_EQ(parse("00-" TP_TRACE "-" TP_SPAN "-00", &p), 0);
    CHECK_INT_EQ(p.flags, 0);
    /* flags other than sampled are carried, not refused */
    CHECK_INT_EQ(parse("00-" TP_TRACE "-" TP_SPAN "-03", &p), 0);
    CHECK_INT_EQ(p.flags, 3);
    /* a later version may append fields after a dash */
    CHECK_INT_EQ(parse("01-" TP_TRACE "-" TP_SPAN "-01", &p), 0);
    CHECK_INT_EQ(parse("cc-" TP_TRACE "-" TP_SPAN "-01-what-the-future-holds", &p), 0);
}

TEST(trace_traceparent_invalid)
{
    trace_parent_t p;
    const char *bad[] = {
        "",
        "00",
        "ff-" TP_TRACE "-" TP_SPAN "-01",                     /* version ff is forbidden */
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-" TP_SPAN "-01", /* upper case */
        "00-" TP_TRACE "-00F067AA0BA902B7-01",                /* upper case */
        "0A-" TP_TRACE "-" TP_SPAN "-01",                     /* upper-case version */
        "00-" TP_TRACE "-" TP_SPAN "-0A",                     /* upper-case flags */
        "00-00000000000000000000000000000000-" TP_SPAN "-01", /* zero trace id */
        "00-" TP_TRACE "-0000000000000000-01",                /* zero parent id */
        "00-" TP_TRACE "-" TP_SPAN "-01-",                    /* version 00: exactly 55 */
        "00-" TP_TRACE "-" TP_SPAN "-011",                    /* longer */
        "00-" TP_TRACE "-" TP_SPAN "-1",                      /* shorter */
        "01-" TP_TRACE "-" TP_SPAN "-01x",                    /* extra without a dash */
        "00_" TP_TRACE "-" TP_SPAN "-01",                     /* separators */
        "00-" TP_TRACE "_" TP_SPAN "-01",
        "00-" TP_TRACE "-" TP_SPAN "_01",
        "00-4bf92f3577b34da6a3ce929d0e0e473g-" TP_SPAN "-01",      /* not hex */
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b-01-", /* short parent */
        " 00-" TP_TRACE "-" TP_SPAN "-01",                         /* leading space */
        "zz-" TP_TRACE "-" TP_SPAN "-01",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (parse(bad[i], &p) != ERR_INVAL) {
            test_fail(__FILE__, __LINE__, "accepted \"%s\"", bad[i]);
        }
    }
    /* not NUL-terminated: only the view is read */
    char buf[60];
    memcpy(buf, "00-" TP_TRACE "-" TP_SPAN "-01", 55);
    CHECK_INT_EQ(trace_parse_traceparent(str_make(buf, 54), &p), ERR_INVAL);
}

static size_t clip(const char *s)
{
    return trace_tracestate_clip(str_from_cstr(s));
}

TEST(trace_tracestate_clip)
{
    CHECK_INT_EQ(clip("congo=t61rcWkgMzE"), 17);
    CHECK_INT_EQ(clip("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE"), 39);
    CHECK_INT_EQ(clip("a=1 , b=2\t"), 9); /* spaces around members are allowed; trailing ones dropped */
    CHECK_INT_EQ(clip("a=1,,b=2"), 8);    /* empty members are allowed */
    CHECK_INT_EQ(clip(""), 0);
    CHECK_INT_EQ(clip("novalue"), 0);
    CHECK_INT_EQ(clip("=x"), 0);
    CHECK_INT_EQ(clip("a=b=c"), 0);
    CHECK_INT_EQ(clip("a=\x01"), 0);
    CHECK_INT_EQ(clip("a=\xc3\xa9"), 0);
    /* 33 members: the 33rd and what follows are dropped */
    char many[33 * 4 + 1] = "";
    for (int i = 0; i < 33; i++) {
        snprintf(many + 4 * i, sizeof(many) - 4 * (size_t)i, "%c=%d,", 'a' + i % 26, i % 10);
    }
    CHECK_INT_EQ(clip(many), 32 * 4 - 1);
    /* longer than 512: cut at the last whole member within it */
    char big[700];
    memset(big, 'v', sizeof(big));
    for (int i = 0; i < 6; i++) { /* six members of 100 characters */
        big[101 * i] = (char)('k' + i);
        big[101 * i + 1] = '=';
        big[101 * i + 100] = ',';
    }
    big[6 * 101 - 1] = '\0';
    CHECK_INT_EQ(clip(big), 5 * 101 - 1);
}

TEST(trace_sampling)
{
    uint8_t id[16] = {0};
    trace_opts_t o = {.exporting = false, .ratio = 1.0, .queue_spans = 8};
    trace_configure(&o);
    CHECK(!trace_sample_root(id)); /* export off: nothing is sampled */
    o.exporting = true;
    trace_configure(&o);
    CHECK(trace_sample_root(id));
    o.ratio = 0.0;
    trace_configure(&o);
    memset(id + 8, 0, 8);
    CHECK(!trace_sample_root(id));
    o.ratio = 0.5; /* the low 64 bits below 2^63 */
    trace_configure(&o);
    id[8] = 0x7f;
    memset(id + 9, 0xff, 7);
    CHECK(trace_sample_root(id));
    id[8] = 0x80;
    memset(id + 9, 0, 7);
    CHECK(!trace_sample_root(id));
    /* about the ratio over many random ids */
    o.ratio = 0.25;
    trace_configure(&o);
    int sampled = 0;
    for (int i = 0; i < 4000; i++) {
        trace_server_t sp;
        trace_server_begin(&sp, STR_NULL, STR_NULL, STR_NULL);
        sampled += sp.scope.sampled;
    }
    CHECK(sampled > 800 && sampled < 1200);
    o.exporting = false;
    trace_configure(&o);
}

TEST(trace_server_span_ids)
{
    trace_opts_t o = {.exporting = true, .ratio = 0.0, .queue_spans = 8};
    trace_configure(&o);
    trace_server_t sp;
    str_t tp = STR("00-" TP_TRACE "-" TP_SPAN "-01");
    trace_server_begin(&sp, tp, STR("a=1,b=2"), STR("rid"));
    char hex[32];
    trace_hex(sp.scope.trace_id, 16, hex);
    CHECK_MEM_EQ(hex, 32, TP_TRACE); /* the caller's trace */
    CHECK(sp.has_parent);
    trace_hex(sp.parent_id, 8, hex);
    CHECK_MEM_EQ(hex, 16, TP_SPAN);
    trace_hex(sp.scope.span_id, 8, hex);
    CHECK(memcmp(hex, TP_SPAN, 16) != 0); /* a span of its own */
    CHECK(sp.scope.sampled);              /* the parent's flag wins over the ratio */
    CHECK_MEM_EQ(sp.tracestate.ptr, sp.tracestate.len, "a=1,b=2");
    CHECK_MEM_EQ(sp.scope.request_id.ptr, sp.scope.request_id.len, "rid");

    trace_server_begin(&sp, STR("00-" TP_TRACE "-" TP_SPAN "-00"), STR_NULL, STR_NULL);
    CHECK(sp.has_parent && !sp.scope.sampled); /* an unsampled parent is followed too */

    /* invalid: a new trace, no parent, and no tracestate */
    trace_server_begin(&sp, STR("00-" TP_TRACE "-" TP_SPAN "-0"), STR("a=1"), STR_NULL);
    CHECK(!sp.has_parent);
    trace_hex(sp.scope.trace_id, 16, hex);
    CHECK(memcmp(hex, TP_TRACE, 32) != 0);
    CHECK_INT_EQ(sp.tracestate.len, 0);
    o.exporting = false;
    trace_configure(&o);
}

TEST(trace_scope_save_and_retire)
{
    trace_saved_t sv;
    CHECK(trace_scope == NULL);
    trace_save(&sv);
    CHECK(!sv.valid);
    char *rid = malloc(8);
    memcpy(rid, "req-123", 8);
    trace_server_t sp;
    trace_server_begin(&sp, STR_NULL, STR_NULL, str_make(rid, 7));
    const trace_scope_t *prev = trace_scope_enter(&sp.scope);
    trace_save(&sv);
    CHECK(sv.valid);
    CHECK(memcmp(sv.s.span_id, sp.scope.span_id, 8) == 0);
    CHECK(sv.s.request_id.ptr != rid); /* a copy */
    CHECK_MEM_EQ(sv.s.request_id.ptr, sv.s.request_id.len, "req-123");
    /* the request goes while its scope is current: a copy takes over */
    trace_scope_retire(&sp.scope);
    CHECK(trace_scope != &sp.scope && trace_scope != NULL);
    memset(rid, 'x', 7);
    free(rid);
    CHECK_MEM_EQ(trace_scope->request_id.ptr, trace_scope->request_id.len, "req-123");
    CHECK(memcmp(trace_scope->trace_id, sp.scope.trace_id, 16) == 0);
    trace_scope_leave(prev);
    CHECK(trace_scope == NULL);
    trace_scope_retire(NULL); /* harmless */
}

TEST(trace_queue_and_collect)
{
    static const char *const r[] = {"/x"};
    metrics_opts_t mo = {.routes = r, .nroutes = 1, .version = "t"};
    CHECK_INT_EQ(metrics_init(&mo), 0);
    CHECK_INT_EQ(metrics_thread_attach(), 0);
    trace_opts_t o = {.exporting = true, .ratio = 1.0, .queue_spans = 3}; /* rounded up to 4 */
    trace_configure(&o);
    CHECK_INT_EQ(trace_thread_attach(), 0);

    trace_server_t sp;
    trace_server_begin(&sp, STR("00-" TP_TRACE "-" TP_SPAN "-01"), STR("k=v"), STR("id"));
    const trace_scope_t *prev = trace_scope_enter(&sp.scope);
    trace_client_t c;
    trace_client_begin(&c); /* a child of the request span */
    trace_scope_leave(prev);
    trace_client_info_t ci = {.db = TRACE_DB_REDIS, .command = STR("GET"), .end_us = c.start_us + 5};
    trace_client_end(&c, &ci);
    trace_server_info_t si = {.method = "GET",
                              .route = "/x",
                              .path = STR("/x"),
                              .status = 503,
                              .http_version = 11,
                              .start_us = 10,
                              .end_us = 20};
    for (int i = 0; i < 5; i++) {
        trace_server_end(&sp, &si); /* 1 + 5 spans into a queue of 4: 2 dropped */
    }
    trace_rec_t out[8];
    size_t n = trace_collect(out, 8);
    CHECK_INT_EQ(n, 4);
    CHECK(out[0].kind == TRACE_KIND_CLIENT);
    CHECK(memcmp(out[0].parent_id, sp.scope.span_id, 8) == 0);
    CHECK(memcmp(out[0].trace_id, sp.scope.trace_id, 16) == 0);
    CHECK(out[0].db == TRACE_DB_REDIS && out[0].text_len == 3);
    CHECK(out[1].kind == TRACE_KIND_SERVER && out[1].error && out[1].status == 503);
    CHECK(out[1].tracestate != NULL && strcmp(out[1].tracestate, "k=v") == 0);
    CHECK(memcmp(out[1].parent_id, sp.parent_id, 8) == 0);
    for (size_t i = 0; i < n; i++) {
        trace_rec_release(&out[i]);
    }
    CHECK_INT_EQ(trace_collect(out, 8), 0);

    /* outside any request, a client span is not recorded */
    trace_client_begin(&c);
    trace_client_end(&c, &ci);
    CHECK_INT_EQ(trace_collect(out, 8), 0);

    buf_t b;
    buf_init(&b, 1 << 20);
    metrics_scrape_t x = {0};
    metrics_render(&b, &x);
    buf_putc(&b, '\0');
    CHECK(strstr(b.ptr, "api_trace_spans_dropped_total{reason=\"queue_full\"} 2\n") != NULL);
    buf_deinit(&b);
    trace_server_end(&sp, &si); /* left queued: freed with the queues */
    trace_queues_free();
    o.exporting = false;
    trace_configure(&o);
    metrics_deinit();
}

TEST(trace_turn_clock)
{
    uint64_t saved = trace_turn_us;
    trace_new_turn();
    uint64_t a = trace_now_us();
    CHECK(a > 0);
    CHECK(trace_now_us() == a); /* the same turn, the same time */
    trace_new_turn();
    CHECK(trace_now_us() >= a);
    trace_turn_us = UINT64_MAX; /* not a loop thread: read each time */
    CHECK(trace_now_us() >= a);
    CHECK(trace_turn_us == UINT64_MAX);
    trace_turn_us = saved;
}
