/* log: level parsing, request scope fields (the writer is exercised by the black-box tests). */
#include "base/err.h"
#include "obs/log.h"
#include "obs/trace.h"
#include "test.h"

TEST(log_level_parse_names)
{
    log_level_t l;
    CHECK_INT_EQ(log_level_parse(STR("trace"), &l), 0);
    CHECK(l == LOG_TRACE);
    CHECK_INT_EQ(log_level_parse(STR("FATAL"), &l), 0);
    CHECK(l == LOG_FATAL);
    CHECK_INT_EQ(log_level_parse(STR("verbose"), &l), ERR_INVAL);
    log_set_level(LOG_WARN);
    CHECK(!log_enabled(LOG_INFO));
    CHECK(log_enabled(LOG_ERROR));
    log_set_level(LOG_INFO);
}

/* The line log_begin has started, as text (log_end is not called: nothing
   is written). */
static str_t open_line(jw_t *j)
{
    return str_make(j->b->ptr, j->b->len);
}

TEST(log_warnings_in_a_request_scope_name_it)
{
    trace_server_t sp;
    trace_server_begin(&sp, STR("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"), STR_NULL,
                       STR("req-42"));
    const trace_scope_t *prev = trace_scope_enter(&sp.scope);
    jw_t *j = log_begin(LOG_ERROR, "boom");
    CHECK(j != NULL);
    str_t line = open_line(j);
    char span[17];
    trace_hex(sp.scope.span_id, 8, span);
    span[16] = '\0';
    char want[128];
    snprintf(want, sizeof(want), "\"span_id\":\"%s\"", span);
    CHECK(memmem(line.ptr, line.len, "\"request_id\":\"req-42\"", 21) != NULL);
    CHECK(memmem(line.ptr, line.len, "\"trace_id\":\"4bf92f3577b34da6a3ce929d0e0e4736\"", 45) != NULL);
    CHECK(memmem(line.ptr, line.len, want, strlen(want)) != NULL);
    /* info lines (the access line writes its own) do not get them */
    j = log_begin(LOG_INFO, "fine");
    line = open_line(j);
    CHECK(memmem(line.ptr, line.len, "request_id", 10) == NULL);
    trace_scope_leave(prev);
    /* outside any request: nothing */
    j = log_begin(LOG_ERROR, "boom");
    line = open_line(j);
    CHECK(memmem(line.ptr, line.len, "trace_id", 8) == NULL);
}
