/*
 * metrics: the Prometheus registry - per-thread shards, merged on scrape.
 *
 * Every thread that records (the workers, the OTLP exporter) owns one shard
 * (metrics_thread_attach) and is its only writer: a counter update is a
 * relaxed load and store on the thread's own cache lines - no lock, no
 * atomic read-modify-write, nothing shared with another worker. The scrape
 * (metrics_render, on whichever worker serves GET /metrics) reads every
 * shard with relaxed loads and sums them, so it never waits for a worker
 * and costs O(shards x series). A thread without a shard records into a
 * discard shard that is never scraped, so the calls below are safe on any
 * thread.
 *
 * Names, labels and types are fixed by the registry in this file: scalar
 * families (counters and gauges with fixed label values, METRICS_SCALARS),
 * dependency histograms, and the HTTP request histogram, whose series
 * (method x route template x status) are made on first use, bounded by
 * METRICS_HTTP_SERIES_MAX per shard. docs/observability.md lists them all;
 * a test checks that the two agree.
 *
 * Not here: anything that blocks. The scrape's process_* values come from
 * /proc (in-memory files) and getrlimit.
 */
#ifndef OBS_METRICS_H
#define OBS_METRICS_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"

/*
 * The scalar families: X(id, name, type, merge, labels, help). Entries of
 * one family are adjacent and share name, type and help; labels are written
 * as they appear in the exposition. merge says how shards combine: SUM, or
 * MAX (the worst worker: breaker states).
 */
#define METRICS_SCALARS(X)                                                                                   \
    X(M_HTTP_ACTIVE, "http_server_active_requests", GAUGE, SUM, "", "HTTP requests in progress.")            \
    X(M_HTTP_SHED_OVERLOADED, "api_http_requests_shed_total", COUNTER, SUM, "reason=\"overloaded\"",         \
      "Requests answered 503 without being served: over MAX_INFLIGHT (overloaded), a dependency "            \
      "unavailable or its pool full (unavailable), or during shutdown (shutting_down).")                     \
    X(M_HTTP_SHED_UNAVAILABLE, "api_http_requests_shed_total", COUNTER, SUM, "reason=\"unavailable\"", "")   \
    X(M_HTTP_SHED_SHUTDOWN, "api_http_requests_shed_total", COUNTER, SUM, "reason=\"shutting_down\"", "")    \
    X(M_HTTP_TIMEOUTS, "api_http_requests_timed_out_total", COUNTER, SUM, "",                                \
      "Requests answered 504: their deadline (REQUEST_TIMEOUT_MS) passed; their database work is "           \
      "cancelled.")                                                                                          \
    X(M_HTTP_RATE_LIMITED, "api_http_requests_rate_limited_total", COUNTER, SUM, "",                         \
      "Requests answered 429: over their rate-limit budget.")                                                \
    X(M_DB_CONN_IDLE, "api_db_pool_connections", GAUGE, SUM, "state=\"idle\"",                               \
      "PostgreSQL data connections by state: idle (ready, nothing in flight), busy (ready, batches in "      \
      "flight), connecting (connecting or setting up), down (waiting to reconnect).")                        \
    X(M_DB_CONN_BUSY, "api_db_pool_connections", GAUGE, SUM, "state=\"busy\"", "")                           \
    X(M_DB_CONN_CONNECTING, "api_db_pool_connections", GAUGE, SUM, "state=\"connecting\"", "")               \
    X(M_DB_CONN_DOWN, "api_db_pool_connections", GAUGE, SUM, "state=\"down\"", "")                           \
    X(M_DB_IN_USE, "api_db_pool_in_use", GAUGE, SUM, "",                                                     \
      "Batches in flight on the pool's connections (pipelined: several per connection).")                    \
    X(M_DB_CAPACITY, "api_db_pool_capacity", GAUGE, SUM, "",                                                 \
      "Batches the pool can have in flight: connections x DATABASE_PIPELINE_DEPTH.")                         \
    X(M_DB_WAITING, "api_db_pool_waiting", GAUGE, SUM, "", "Batches waiting for a pipeline slot.")           \
    X(M_DB_MAX_WAITING, "api_db_pool_max_waiting", GAUGE, SUM, "",                                           \
      "Batches allowed to wait for a slot (DATABASE_MAX_WAITERS per worker); beyond it, 503.")               \
    X(M_DB_REJECT_FULL, "api_db_pool_rejected_total", COUNTER, SUM, "reason=\"full\"",                       \
      "Batches refused at once: the waiting room was full (full), or PostgreSQL was unhealthy or its "       \
      "breaker open (unavailable).")                                                                         \
    X(M_DB_REJECT_UNAVAILABLE, "api_db_pool_rejected_total", COUNTER, SUM, "reason=\"unavailable\"", "")     \
    X(M_BREAKER_PG, "api_circuit_breaker_state", GAUGE, MAX, "dependency=\"postgresql\"",                    \
      "Circuit breaker state per dependency, the worst over the workers: 0 closed, 1 half-open, 2 open.")    \
    X(M_BREAKER_REDIS, "api_circuit_breaker_state", GAUGE, MAX, "dependency=\"redis\"", "")                  \
    X(M_BREAKER_PG_CLOSED, "api_circuit_breaker_transitions_total", COUNTER, SUM,                            \
      "dependency=\"postgresql\",state=\"closed\"", "Circuit breaker transitions, by the state entered.")    \
    X(M_BREAKER_PG_HALF_OPEN, "api_circuit_breaker_transitions_total", COUNTER, SUM,                         \
      "dependency=\"postgresql\",state=\"half_open\"", "")                                                   \
    X(M_BREAKER_PG_OPEN, "api_circuit_breaker_transitions_total", COUNTER, SUM,                              \
      "dependency=\"postgresql\",state=\"open\"", "")                                                        \
    X(M_BREAKER_REDIS_CLOSED, "api_circuit_breaker_transitions_total", COUNTER, SUM,                         \
      "dependency=\"redis\",state=\"closed\"", "")                                                           \
    X(M_BREAKER_REDIS_HALF_OPEN, "api_circuit_breaker_transitions_total", COUNTER, SUM,                      \
      "dependency=\"redis\",state=\"half_open\"", "")                                                        \
    X(M_BREAKER_REDIS_OPEN, "api_circuit_breaker_transitions_total", COUNTER, SUM,                           \
      "dependency=\"redis\",state=\"open\"", "")                                                             \
    X(M_REDIS_TIMEOUTS, "api_redis_command_timeouts_total", COUNTER, SUM, "",                                \
      "Redis commands that got no answer within their deadline.")                                            \
    X(M_CACHE_HITS, "api_cache_hits_total", COUNTER, SUM, "", "User reads answered from the Redis cache.")   \
    X(M_CACHE_MISSES, "api_cache_misses_total", COUNTER, SUM, "",                                            \
      "User reads the Redis cache could not answer (absent, or Redis unusable).")                            \
    X(M_CACHE_COALESCED, "api_cache_coalesced_total", COUNTER, SUM, "",                                      \
      "Cache misses that joined a PostgreSQL read already in flight for the same user.")                     \
    X(M_RL_FAIL_LOCAL, "api_rate_limit_fail_mode_total", COUNTER, SUM, "mode=\"local\"",                     \
      "Rate-limit decisions taken without Redis, by RATE_LIMIT_FAIL_MODE: local (an in-process bucket), "    \
      "open (allowed unchecked), closed (refused with 503).")                                                \
    X(M_RL_FAIL_OPEN, "api_rate_limit_fail_mode_total", COUNTER, SUM, "mode=\"open\"", "")                   \
    X(M_RL_FAIL_CLOSED, "api_rate_limit_fail_mode_total", COUNTER, SUM, "mode=\"closed\"", "")               \
    X(M_IDEM_REPLAYS, "api_idempotency_replays_total", COUNTER, SUM, "",                                     \
      "Requests answered with the stored first response of their Idempotency-Key.")                          \
    X(M_IDEM_CONFLICTS, "api_idempotency_conflicts_total", COUNTER, SUM, "",                                 \
      "Requests refused with 422: their Idempotency-Key was first used with another request.")               \
    X(M_IDEM_IN_FLIGHT, "api_idempotency_in_flight_total", COUNTER, SUM, "",                                 \
      "Requests refused with 409: the first request with their Idempotency-Key was still running.")          \
    X(M_IDEM_PURGED, "api_idempotency_purged_rows_total", COUNTER, SUM, "",                                  \
      "Expired idempotency records deleted by the purge.")                                                   \
    X(M_SPANS_EXPORTED, "api_trace_spans_exported_total", COUNTER, SUM, "",                                  \
      "Spans accepted by the OTLP collector.")                                                               \
    X(M_SPANS_DROPPED_QUEUE, "api_trace_spans_dropped_total", COUNTER, SUM, "reason=\"queue_full\"",         \
      "Spans lost: the export queue was full (queue_full), or the collector refused them or stayed "         \
      "unreachable through the retries (export_failed).")                                                    \
    X(M_SPANS_DROPPED_EXPORT, "api_trace_spans_dropped_total", COUNTER, SUM, "reason=\"export_failed\"", "") \
    X(M_HTTP_SERIES_OVERFLOW, "api_metrics_series_overflow_total", COUNTER, SUM, "",                         \
      "Requests not counted in http_server_request_duration_seconds: a worker had no room for a new "        \
      "series (bounded per worker).")

typedef enum {
#define METRICS_ENUM(id, name, type, merge, labels, help) id,
    METRICS_SCALARS(METRICS_ENUM)
#undef METRICS_ENUM
        M__COUNT
} metric_t;

/* Histograms of dependencies, with one label each. */
typedef enum {
    MH_DB_POOL_WAIT, /* no label */
    MH_DB_BATCH,     /* statement: the batch's first statement (metrics_opts_t.statements) */
    MH_REDIS_COMMAND /* command: metrics_redis_command() */
} metric_hist_t;

/* The Redis commands with a label of their own; others count as "other". */
typedef enum {
    MR_GET,
    MR_SET,
    MR_DEL,
    MR_EVAL,
    MR_EVALSHA,
    MR_SCRIPT,
    MR_EXPIRE,
    MR_PEXPIRE,
    MR_INCR,
    MR_MGET,
    MR_UNLINK,
    MR_PING,
    MR_OTHER,
    MR__COUNT
} metric_redis_cmd_t;

#define METRICS_MAX_STATEMENTS  64 /* more: the rest count as "other" */
#define METRICS_MAX_ROUTES      254
#define METRICS_HTTP_SERIES_MAX 1024 /* per shard */

/* HTTP methods as metric label values (OpenTelemetry: unknown -> _OTHER). */
typedef enum {
    MM_GET,
    MM_HEAD,
    MM_POST,
    MM_PUT,
    MM_PATCH,
    MM_DELETE,
    MM_OPTIONS,
    MM_OTHER,
    MM__COUNT
} metric_method_t;

typedef struct {
    const char *const *routes; /* route templates; route index i + 1 names routes[i], 0 is "unmatched" */
    size_t nroutes;
    const char *const *statements; /* PostgreSQL statement names, in the pool's order */
    size_t nstatements;
    const char *version; /* api_build_info */
    const char *commit;  /* may be NULL */
} metrics_opts_t;

/* What only the scraper knows, passed to metrics_render. */
typedef struct {
    bool ready;           /* what /health/ready answers now */
    uint64_t log_dropped; /* log lines dropped so far */
} metrics_scrape_t;

/*
 * Sets up the registry (main thread, before any shard exists). The string
 * arrays are copied. Returns 0 or ERR_NOMEM. metrics_deinit frees every
 * shard: call it after every recording thread has stopped.
 */
int metrics_init(const metrics_opts_t *opts) __attribute__((warn_unused_result));
void metrics_deinit(void);

/* Gives the calling thread a shard of its own (kept until metrics_deinit).
   Returns 0 or ERR_NOMEM (the thread then keeps the discard shard). */
int metrics_thread_attach(void) __attribute__((warn_unused_result));
/* The calling thread records into the discard shard again. */
void metrics_thread_detach(void);

/* ---- recording, on the calling thread's shard ---- */

extern _Thread_local _Atomic uint64_t *metrics_cur;

/* Single writer per shard: a plain load and store, no locked instruction. */
static inline void metrics_add(metric_t m, uint64_t n)
{
    _Atomic uint64_t *c = &metrics_cur[m];
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n, memory_order_relaxed);
}

static inline void metrics_inc(metric_t m)
{
    metrics_add(m, 1);
}

/* A gauge's value on this thread's shard (shards combine by the family's merge). */
static inline void metrics_set(metric_t m, int64_t v)
{
    atomic_store_explicit(&metrics_cur[m], (uint64_t)v, memory_order_relaxed);
}

/* Observes a duration of us microseconds. label: the statement index for
   MH_DB_BATCH (>= nstatements: "other"), a metric_redis_cmd_t for
   MH_REDIS_COMMAND, ignored for MH_DB_POOL_WAIT. */
void metrics_observe(metric_hist_t h, unsigned label, uint64_t us);

/* One HTTP request: method, route index (0: unmatched), status, duration. */
void metrics_http_observe(metric_method_t method, unsigned route, unsigned status, uint64_t us);

/* The label of a Redis command name (case-insensitive). */
metric_redis_cmd_t metrics_redis_command(const char *name, size_t len);

/* ---- the scrape (any thread) ---- */

/* Appends the whole exposition (text format 0.0.4) to b. */
void metrics_render(buf_t *b, const metrics_scrape_t *x);

/* Parsed from /proc/self/stat (exposed for its unit test). */
typedef struct {
    uint64_t utime_ticks, stime_ticks, starttime_ticks;
    uint64_t vsize_bytes, rss_pages;
} metrics_proc_stat_t;
int metrics_parse_proc_stat(const char *s, size_t n, metrics_proc_stat_t *out)
    __attribute__((warn_unused_result));

#endif
