/*
 * otlp: the span exporter - one helper thread that drains every worker's
 * span queue (obs/trace.h) and POSTs OTLP/HTTP JSON to
 * <OTEL_EXPORTER_OTLP_ENDPOINT>/v1/traces with libcurl.
 *
 * A batch goes out when it holds batch_max spans, or schedule_delay_ms
 * after its first span was taken. A 429, 502, 503 or 504 answer, or a
 * connection that failed or was lost, is retried with exponential backoff
 * and jitter (a Retry-After of up to a minute is honoured), at most
 * OTLP_MAX_ATTEMPTS times; any other answer drops the batch. Dropped spans
 * are counted (api_trace_spans_dropped_total), exported ones too. Workers
 * never wait for any of this: while the exporter is slow or the collector
 * is down, their queues fill and further spans are dropped at once.
 *
 * Not here: sampling and the span model (obs/trace.h), other signals, gRPC,
 * compression.
 */
#ifndef OBS_OTLP_H
#define OBS_OTLP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/buf.h"
#include "obs/trace.h"

#define OTLP_MAX_ATTEMPTS 5

typedef struct {
    const char *endpoint;        /* base URL: http(s)://host[:port][/prefix] */
    const char *service_name;    /* resource service.name */
    const char *service_version; /* resource service.version */
    unsigned batch_max;          /* spans per request */
    int64_t schedule_delay_ms;   /* longest wait of a span for its batch */
    int64_t timeout_ms;          /* one request, connect included */
} otlp_opts_t;

/* Starts the exporter thread (signals already blocked). Returns 0, or
   ERR_INVAL / ERR_NOMEM / ERR_IO with a message in err. */
int otlp_start(const otlp_opts_t *o, char *err, size_t errlen) __attribute__((warn_unused_result));
/* Exports what is queued (one attempt per batch, within about two seconds)
   and stops the thread. Call after the workers have stopped. */
void otlp_stop(void);

/* ---- pure parts, for the tests ---- */

/* The traces URL for an endpoint ("http://c:4318/" -> "http://c:4318/v1/traces"),
   or ERR_INVAL when it is not http(s) or does not fit. */
int otlp_traces_url(const char *endpoint, char *out, size_t outlen) __attribute__((warn_unused_result));

/* Appends one ExportTraceServiceRequest for recs[0..n) as OTLP JSON; times
   are monotonic + wall_minus_mono_us. */
void otlp_encode(buf_t *b, const trace_rec_t *recs, size_t n, const char *service_name,
                 const char *service_version, int64_t wall_minus_mono_us);

/* Whether an answer (HTTP status, or 0 with transport_failed) is retried. */
bool otlp_retryable(long status, bool transport_failed);

/* The wait before attempt number `attempt` (1 = the first retry): doubling
   from 250 ms up to 8 s, less a random quarter (jitter from r); a
   Retry-After (seconds, > 0) wins when it is longer, up to 60 s. */
int64_t otlp_backoff_ms(unsigned attempt, int64_t retry_after_s, uint64_t r);

/* db.operation.name of a statement: its first SQL keyword, upper case
   ("SELECT"), into out (NUL-terminated); "" when none. */
void otlp_sql_operation(const char *sql, char *out, size_t outlen);

#endif
