/*
 * log: structured JSON logs, one object per line on stdout.
 *
 * Event-loop threads never block on logging: after log_thread_attach() a
 * thread's lines go into its own lock-free single-producer ring, and the
 * writer thread (log_start) copies rings to stdout. A full ring drops the line
 * and counts it (log_dropped()); it never waits. Threads without a ring (main,
 * CLI commands, tests) write synchronously, which is fine off the hot path.
 *
 * Every line has "time" (RFC 3339 UTC), "level" and "msg"; more fields go in
 * between log_begin() and log_end(). Callers must not log secrets.
 */
#ifndef OBS_LOG_H
#define OBS_LOG_H

#include <stdbool.h>
#include <stdint.h>

#include "base/jw.h"
#include "base/str.h"

typedef enum { LOG_TRACE, LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR, LOG_FATAL } log_level_t;

/* Parses "trace".."fatal" (case-insensitive). Returns 0 or ERR_INVAL. */
int log_level_parse(str_t s, log_level_t *out) __attribute__((warn_unused_result));
void log_set_level(log_level_t level);
bool log_enabled(log_level_t level);

/* Starts the writer thread. Returns 0 or ERR_IO. Call once, from main. */
int log_start(void) __attribute__((warn_unused_result));
/* Drains every ring, stops the writer thread. Lines logged later are synchronous. */
void log_stop(void);
/* Gives the calling thread its own ring of ring_bytes (a power of two). */
int log_thread_attach(uint32_t ring_bytes) __attribute__((warn_unused_result));
/* Frees the calling thread's formatting buffer; call before a thread exits. */
void log_thread_detach(void);
uint64_t log_dropped(void);

/*
 * Starts a line at level with msg. Returns a JSON writer positioned inside
 * the object, or NULL when the level is disabled (then skip the fields and do
 * not call log_end). Only one line per thread may be open at a time.
 */
jw_t *log_begin(log_level_t level, const char *msg);
void log_end(jw_t *j);

/* One-line message with printf formatting of msg. */
void log_msg(log_level_t level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_trace(...) log_msg(LOG_TRACE, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_fatal(...) log_msg(LOG_FATAL, __VA_ARGS__)

#endif
