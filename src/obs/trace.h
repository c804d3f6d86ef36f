/*
 * trace: the span model - W3C Trace Context in, the request's SERVER span,
 * CLIENT spans for PostgreSQL and Redis, and the per-thread queues the OTLP
 * exporter (obs/otlp.h) drains.
 *
 * Every request gets a trace id and a span id (the access log shows them,
 * exported or not): from a valid `traceparent`, the caller's trace and a
 * new child span; otherwise a new trace. A span is *sampled* (recorded and
 * exported) only while export is on: with a parent, as the parent's
 * sampled flag says; without one, with probability OTEL_TRACES_SAMPLER_ARG
 * decided from the trace id's low 64 bits (so every process decides alike).
 *
 * The current scope: while a request runs on a worker - its dispatch, and
 * every PostgreSQL or Redis callback made for it - trace_scope points to
 * its trace id, span id and request id. db/ and redis/ copy the scope when
 * work is submitted (trace_client_begin), so a CLIENT span knows its parent
 * without the callers passing anything, and they restore the copy around
 * the callback. Error log lines carry the scope's ids (obs/log.h).
 *
 * Hot-path costs, by design: no lock, no syscall, no allocation per span
 * (records live in the owning object - the request's context, the batch,
 * the command - and are copied into a preallocated single-producer ring);
 * timestamps come from trace_now_us, one monotonic clock read per loop
 * turn. A full ring drops the span and counts it. With export off, a
 * request costs three random numbers (its ids) and nothing else.
 *
 * Thread rules: trace_configure and the ring registry belong to the main
 * thread before workers start; scopes, spans and rings to their thread;
 * trace_collect to the exporter thread.
 */
#ifndef OBS_TRACE_H
#define OBS_TRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/clock.h"
#include "base/str.h"

#define TRACE_ID_LEN       16
#define TRACE_SPAN_ID_LEN  8
#define TRACE_REQID_MAX    128 /* http/reqid.h: ids are 1..128 characters */
#define TRACE_TEXT_MAX     112 /* url.path (truncated) or a Redis command name */
#define TRACE_MAX_STMTS    4   /* db/pool.h DB_MAX_BATCH */
#define TRACESTATE_MAX     512 /* W3C: propagate at least 512 characters */
#define TRACESTATE_MEMBERS 32

/* ---- W3C Trace Context (pure; fuzzed) ---- */

typedef struct {
    uint8_t trace_id[TRACE_ID_LEN];
    uint8_t parent_id[TRACE_SPAN_ID_LEN];
    uint8_t flags; /* bit 0: sampled */
} trace_parent_t;

/*
 * Parses a `traceparent` value (W3C Trace Context, section 3.2): version
 * "00" is exactly 55 characters; a later version may append "-..." fields,
 * which are ignored; version "ff", upper-case hex, all-zero trace or parent
 * ids, and anything else malformed are ERR_INVAL.
 */
int trace_parse_traceparent(str_t v, trace_parent_t *out) __attribute__((warn_unused_result));

/*
 * The part of a `tracestate` value (section 3.3) to carry on: the longest
 * prefix of whole list members within TRACESTATE_MAX characters and
 * TRACESTATE_MEMBERS members, without trailing separators. Returns its
 * length; 0 when v is empty or has characters a tracestate cannot hold.
 */
size_t trace_tracestate_clip(str_t v);

/* Lower-case hex of n bytes into out (2n characters, not NUL-terminated). */
void trace_hex(const uint8_t *id, size_t n, char *out);

/* ---- configuration (main thread, before workers) ---- */

typedef struct {
    bool exporting;       /* OTEL_EXPORTER_OTLP_ENDPOINT is set */
    double ratio;         /* OTEL_TRACES_SAMPLER_ARG, 0..1 */
    unsigned queue_spans; /* per thread; rounded up to a power of two */
} trace_opts_t;

void trace_configure(const trace_opts_t *o);
bool trace_exporting(void);
/* The sampling decision for a new trace (no parent): from the id alone. */
bool trace_sample_root(const uint8_t trace_id[TRACE_ID_LEN]);

/* ---- the loop's clock ---- */

extern _Thread_local uint64_t trace_turn_us;

/* A new loop turn: the next trace_now_us reads the clock again. Only loop
   threads call it; elsewhere trace_now_us reads the clock every time. */
static inline void trace_new_turn(void)
{
    trace_turn_us = 0;
}

/* Monotonic microseconds, read once per loop turn (the first caller of the
   turn reads it: after the loop's wait, so it is the time the turn's
   events were taken up). */
static inline uint64_t trace_now_us(void)
{
    uint64_t t = trace_turn_us;
    if (__builtin_expect(t == 0 || t == UINT64_MAX, 0)) {
        uint64_t now = clock_mono_us();
        if (t == 0) {
            trace_turn_us = now;
        }
        return now;
    }
    return t;
}

/* ---- the current scope ---- */

typedef struct {
    uint8_t trace_id[TRACE_ID_LEN];
    uint8_t span_id[TRACE_SPAN_ID_LEN]; /* the current span: parent of new CLIENT spans */
    bool sampled;
    str_t request_id;
} trace_scope_t;

/* NULL outside any request. Points into a live object: the request's
   context while it runs, or a trace_saved_t during a callback. */
extern _Thread_local const trace_scope_t *trace_scope;

static inline const trace_scope_t *trace_scope_enter(const trace_scope_t *s)
{
    const trace_scope_t *prev = trace_scope;
    trace_scope = s;
    return prev;
}

static inline void trace_scope_leave(const trace_scope_t *prev)
{
    trace_scope = prev;
}

/* A scope copied to outlive its request (the request id with it). */
typedef struct {
    trace_scope_t s;
    bool valid;
    char reqid[TRACE_REQID_MAX];
} trace_saved_t;

/* Copies the current scope (none: an empty copy, valid == false). */
void trace_save(trace_saved_t *out);
/* The current scope is *s being freed: it is replaced by a thread-local
   copy until the scope around it is left (a response sent, and the request
   freed, before its handler has returned). */
void trace_scope_retire(const trace_scope_t *s);

/* ---- the request's SERVER span ---- */

typedef struct {
    trace_scope_t scope; /* its trace id, its own span id, sampled, request id */
    uint8_t parent_id[TRACE_SPAN_ID_LEN];
    bool has_parent;
    str_t tracestate; /* view (request memory); carried on when sampled */
} trace_server_t;

/*
 * Starts the request's span from its `traceparent` (STR_NULL: none, or
 * more than one) and its `tracestate` (all such headers joined by ',').
 * request_id is kept as a view.
 */
void trace_server_begin(trace_server_t *sp, str_t traceparent, str_t tracestate, str_t request_id);

typedef struct {
    const char *method; /* static: "GET" ... "_OTHER" */
    const char *route;  /* static route template; NULL: unmatched */
    str_t path;         /* without the query; truncated to TRACE_TEXT_MAX */
    int status;
    int http_version; /* 10, 11 or 20 */
    uint64_t start_us, end_us;
} trace_server_info_t;

/* Ends it: queued for export when sampled (a 5xx sets status error). */
void trace_server_end(const trace_server_t *sp, const trace_server_info_t *info);

/* ---- CLIENT spans: a PostgreSQL round trip, a Redis command ---- */

typedef enum { TRACE_DB_POSTGRESQL = 1, TRACE_DB_REDIS = 2 } trace_db_t;

typedef struct {
    trace_saved_t parent; /* the scope at submit; entered again around the callback */
    uint8_t span_id[TRACE_SPAN_ID_LEN];
    uint64_t start_us;
} trace_client_t;

/* Copies the current scope and starts a span under it (when sampled). */
void trace_client_begin(trace_client_t *c);

typedef struct {
    trace_db_t db;
    const char *stmts[TRACE_MAX_STMTS]; /* PostgreSQL: statement names (static) */
    unsigned nstmts;
    const char *sql;   /* PostgreSQL: the first statement's text (static) */
    str_t command;     /* Redis: the command name */
    const char *error; /* NULL: success; else error.type ("timeout", a SQLSTATE, ...) */
    uint64_t end_us;
} trace_client_info_t;

void trace_client_end(const trace_client_t *c, const trace_client_info_t *info);

/* ---- export queues ---- */

typedef enum { TRACE_KIND_SERVER = 2, TRACE_KIND_CLIENT = 3 } trace_kind_t; /* OTLP's numbers */

/* One finished span, as queued. */
typedef struct {
    uint8_t trace_id[TRACE_ID_LEN];
    uint8_t span_id[TRACE_SPAN_ID_LEN];
    uint8_t parent_id[TRACE_SPAN_ID_LEN];
    uint64_t start_us, end_us; /* monotonic */
    uint8_t kind;
    bool has_parent;
    bool error;
    uint8_t db;
    uint8_t nstmts;
    uint8_t text_len;
    uint8_t http_version;
    uint16_t status;
    const char *method;
    const char *route;
    const char *stmts[TRACE_MAX_STMTS];
    const char *sql;
    char err[24];
    char text[TRACE_TEXT_MAX];
    char *tracestate; /* heap, NUL-terminated, owned by the record; NULL: none */
} trace_rec_t;

/* Gives the calling thread its span queue (when export is on). Returns 0
   or ERR_NOMEM (its spans are then dropped and counted). */
int trace_thread_attach(void) __attribute__((warn_unused_result));

/* Exporter thread: moves up to max queued spans into out (their
   tracestates with them: free them with trace_rec_release). */
size_t trace_collect(trace_rec_t *out, size_t max);
void trace_rec_release(trace_rec_t *r);
/* Frees every queue (after every producer and the exporter have stopped). */
void trace_queues_free(void);

#endif
