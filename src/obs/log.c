/*
 * log: rings and the writer thread.
 *
 * Ring protocol (single producer = the owning thread, single consumer = the
 * writer): head and tail are free-running byte counters; the producer copies
 * a whole line then publishes head with release order, the consumer reads up
 * to head (acquire), writes, and publishes tail (release). A line is either
 * entirely in the ring or dropped, so output lines never interleave.
 */
#include "obs/log.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "obs/trace.h"
#include "base/banned.h"

#define LOG_MAX_RINGS      128
#define LOG_LINE_MAX       (64 * 1024)
#define LOG_WRITER_IDLE_NS (5 * 1000 * 1000)

typedef struct {
    char *data;
    uint32_t mask;
    _Atomic uint64_t head;
    _Atomic uint64_t tail;
} ring_t;

static _Atomic int min_level = LOG_INFO;
static _Atomic uint64_t dropped;
static ring_t *rings[LOG_MAX_RINGS];
static _Atomic int ring_count;
static pthread_mutex_t attach_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t direct_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t writer;
static _Atomic bool writer_running;
static _Atomic bool writer_stop;

static _Thread_local ring_t *my_ring;
static _Thread_local buf_t line_buf;
static _Thread_local jw_t line_json;

static const char *const level_names[] = {"trace", "debug", "info", "warn", "error", "fatal"};

int log_level_parse(str_t s, log_level_t *out)
{
    for (int i = LOG_TRACE; i <= LOG_FATAL; i++) {
        if (str_eq_nocase(s, str_from_cstr(level_names[i]))) {
            *out = (log_level_t)i;
            return 0;
        }
    }
    return ERR_INVAL;
}

void log_set_level(log_level_t level)
{
    atomic_store(&min_level, (int)level);
}

bool log_enabled(log_level_t level)
{
    return (int)level >= atomic_load_explicit(&min_level, memory_order_relaxed);
}

uint64_t log_dropped(void)
{
    return atomic_load(&dropped);
}

static void write_all(const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(STDOUT_FILENO, p, n);
        if (w < 0) {
            if (errno == EINTR) {
                continue;
            }
            return; /* stdout is gone: nothing sensible left to do with logs */
        }
        p += w;
        n -= (size_t)w;
    }
}

static bool ring_push(ring_t *r, const char *p, size_t n)
{
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    uint64_t cap = (uint64_t)r->mask + 1;
    if (n > cap - (head - tail)) {
        return false;
    }
    size_t off = (size_t)(head & r->mask);
    size_t first = n < cap - off ? n : (size_t)(cap - off);
    memcpy(r->data + off, p, first);
    memcpy(r->data, p + first, n - first);
    atomic_store_explicit(&r->head, head + n, memory_order_release);
    return true;
}

/* Writes what the ring holds. Returns whether anything was written. */
static bool ring_drain(ring_t *r)
{
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
    uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
    if (head == tail) {
        return false;
    }
    uint64_t cap = (uint64_t)r->mask + 1;
    size_t off = (size_t)(tail & r->mask);
    size_t n = (size_t)(head - tail);
    size_t first = n < cap - off ? n : (size_t)(cap - off);
    write_all(r->data + off, first);
    write_all(r->data, n - first);
    atomic_store_explicit(&r->tail, head, memory_order_release);
    return true;
}

static bool drain_all(void)
{
    bool any = false;
    int n = atomic_load_explicit(&ring_count, memory_order_acquire);
    for (int i = 0; i < n; i++) {
        any |= ring_drain(rings[i]);
    }
    return any;
}

static void *writer_main(void *arg)
{
    (void)arg;
    while (!atomic_load(&writer_stop)) {
        if (!drain_all()) {
            struct timespec ts = {0, LOG_WRITER_IDLE_NS};
            nanosleep(&ts, NULL);
        }
    }
    drain_all();
    return NULL;
}

int log_start(void)
{
    atomic_store(&writer_stop, false);
    if (pthread_create(&writer, NULL, writer_main, NULL) != 0) {
        return ERR_IO;
    }
    atomic_store(&writer_running, true);
    return 0;
}

void log_stop(void)
{
    if (!atomic_load(&writer_running)) {
        return;
    }
    atomic_store(&writer_stop, true);
    pthread_join(writer, NULL);
    atomic_store(&writer_running, false);
    /* The rings' owners have exited by now (workers are joined before the
       log stops), so the rings can go. */
    pthread_mutex_lock(&attach_lock);
    int n = atomic_load(&ring_count);
    for (int i = 0; i < n; i++) {
        free(rings[i]->data);
        free(rings[i]);
        rings[i] = NULL;
    }
    atomic_store(&ring_count, 0);
    pthread_mutex_unlock(&attach_lock);
}

int log_thread_attach(uint32_t ring_bytes)
{
    if (ring_bytes == 0 || (ring_bytes & (ring_bytes - 1)) != 0) {
        return ERR_INVAL;
    }
    ring_t *r = calloc(1, sizeof(*r));
    char *data = malloc(ring_bytes);
    if (r == NULL || data == NULL) {
        free(r);
        free(data);
        return ERR_NOMEM;
    }
    r->data = data;
    r->mask = ring_bytes - 1;
    int rc = 0;
    pthread_mutex_lock(&attach_lock);
    int n = atomic_load(&ring_count);
    if (n == LOG_MAX_RINGS) {
        rc = ERR_NOMEM;
    } else {
        rings[n] = r;
        atomic_store_explicit(&ring_count, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&attach_lock);
    if (rc != 0) {
        free(data);
        free(r);
        return rc;
    }
    my_ring = r;
    return 0;
}

void log_thread_detach(void)
{
    buf_deinit(&line_buf);
    my_ring = NULL; /* the ring itself is freed by log_stop, after it is drained */
}

jw_t *log_begin(log_level_t level, const char *msg)
{
    if (!log_enabled(level)) {
        return NULL;
    }
    if (line_buf.max == 0) {
        buf_init(&line_buf, LOG_LINE_MAX);
    }
    buf_reset(&line_buf);
    jw_init(&line_json, &line_buf);
    char ts[CLOCK_RFC3339_LEN + 1];
    size_t tslen = clock_format_rfc3339(clock_wall_us(), ts);
    jw_obj_open(&line_json);
    jw_kv_str(&line_json, "time", str_make(ts, tslen));
    jw_kv_str(&line_json, "level", str_from_cstr(level_names[level]));
    jw_kv_str(&line_json, "msg", str_from_cstr(msg));
    /* A warning or error while a request runs names it: its id, and the
       trace and span that the access line and exported spans show too. */
    const trace_scope_t *scope = trace_scope;
    if (level >= LOG_WARN && scope != NULL) {
        char hex[2 * TRACE_ID_LEN];
        if (scope->request_id.len > 0) {
            jw_kv_str(&line_json, "request_id", scope->request_id);
        }
        trace_hex(scope->trace_id, TRACE_ID_LEN, hex);
        jw_key(&line_json, STR("trace_id"));
        jw_str_plain(&line_json, str_make(hex, 2 * TRACE_ID_LEN));
        trace_hex(scope->span_id, TRACE_SPAN_ID_LEN, hex);
        jw_key(&line_json, STR("span_id"));
        jw_str_plain(&line_json, str_make(hex, 2 * TRACE_SPAN_ID_LEN));
    }
    return &line_json;
}

void log_end(jw_t *j)
{
    jw_obj_close(j);
    buf_putc(j->b, '\n');
    if (buf_failed(j->b)) {
        atomic_fetch_add(&dropped, 1);
        return;
    }
    if (my_ring != NULL && atomic_load_explicit(&writer_running, memory_order_relaxed)) {
        if (!ring_push(my_ring, j->b->ptr, j->b->len)) {
            atomic_fetch_add(&dropped, 1);
        }
        return;
    }
    pthread_mutex_lock(&direct_lock);
    write_all(j->b->ptr, j->b->len);
    pthread_mutex_unlock(&direct_lock);
}

void log_msg(log_level_t level, const char *fmt, ...)
{
    if (!log_enabled(level)) {
        return;
    }
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    jw_t *j = log_begin(level, msg);
    log_end(j);
}
