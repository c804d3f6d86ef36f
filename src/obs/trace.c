/*
 * trace: Trace Context parsing, ids and sampling, scopes, and the span
 * rings.
 *
 * Ring protocol (as obs/log.c's, in records rather than bytes): one
 * producer (the owning thread) and one consumer (the exporter); head and
 * tail are free-running counters; the producer fills slot head, then
 * publishes head + 1 with release order; the consumer reads up to head
 * (acquire), copies the slots out, then publishes the new tail (release).
 */
#include "obs/trace.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/err.h"
#include "base/rand.h"
#include "obs/metrics.h"
#include "base/banned.h"

#define MAX_RINGS 256

_Thread_local uint64_t trace_turn_us = UINT64_MAX;
_Thread_local const trace_scope_t *trace_scope;

static struct {
    bool exporting;
    bool sample_all;
    uint64_t sample_below; /* a root is sampled when its id's low 64 bits are below */
    unsigned queue_spans;
} cfg;

typedef struct {
    trace_rec_t *slots;
    uint64_t mask;
    _Atomic uint64_t head;
    _Atomic uint64_t tail;
} ring_t;

static pthread_mutex_t rings_lock = PTHREAD_MUTEX_INITIALIZER;
static ring_t *rings[MAX_RINGS];
static _Atomic unsigned nrings;
static _Thread_local ring_t *my_ring;
static _Thread_local trace_saved_t retired; /* see trace_scope_retire */
static unsigned collect_next;               /* exporter only: the ring to start from (fairness) */

/* ---- W3C Trace Context ---- */

static int hex_value(char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }
    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }
    return -1; /* upper case too: the spec allows lower case only */
}

/* n bytes from 2n lower-case hex digits; false on any other character. */
static bool parse_hex(const char *s, uint8_t *out, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int hi = hex_value(s[2 * i]), lo = hex_value(s[2 * i + 1]);
        if (hi < 0 || lo < 0) {
            return false;
        }
        out[i] = (uint8_t)(hi << 4 | lo);
    }
    return true;
}

static bool all_zero(const uint8_t *p, size_t n)
{
    uint8_t acc = 0;
    for (size_t i = 0; i < n; i++) {
        acc |= p[i];
    }
    return acc == 0;
}

int trace_parse_traceparent(str_t v, trace_parent_t *out)
{
    /* version "-" trace-id "-" parent-id "-" flags: 2 + 1 + 32 + 1 + 16 + 1 + 2 */
    enum { LEN = 55 };
    uint8_t version;
    trace_parent_t p;
    if (v.len < LEN || !parse_hex(v.ptr, &version, 1) || version == 0xff) {
        return ERR_INVAL;
    }
    /* Version 00 is exactly 55 characters; a later version may add fields
       after a '-' and is parsed as 00 (section 3.2.4 / 4.3). */
    if ((version == 0 && v.len != LEN) || (v.len > LEN && v.ptr[LEN] != '-')) {
        return ERR_INVAL;
    }
    if (v.ptr[2] != '-' || v.ptr[35] != '-' || v.ptr[52] != '-' || !parse_hex(v.ptr + 3, p.trace_id, 16) ||
        !parse_hex(v.ptr + 36, p.parent_id, 8) || !parse_hex(v.ptr + 53, &p.flags, 1)) {
        return ERR_INVAL;
    }
    if (all_zero(p.trace_id, sizeof(p.trace_id)) || all_zero(p.parent_id, sizeof(p.parent_id))) {
        return ERR_INVAL;
    }
    *out = p;
    return 0;
}

/* tracestate (section 3.3.1): list-members separated by ',' with optional
   spaces and tabs around them; a member is key=value, printable ASCII, no
   ',' or '=' in the value. Keys and values are not taken apart further:
   the value is carried, never interpreted. */
static bool member_ok(const char *p, size_t n)
{
    const char *eq = memchr(p, '=', n);
    if (eq == NULL || eq == p || eq == p + n - 1 || (size_t)(eq - p) > 256 ||
        (size_t)(p + n - eq - 1) > 256) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)p[i];
        if (c < 0x20 || c > 0x7e || (c == '=' && p + i != eq)) {
            return false;
        }
    }
    return p[n - 1] != ' ';
}

size_t trace_tracestate_clip(str_t v)
{
    size_t keep = 0, members = 0, i = 0;
    while (i < v.len) {
        while (i < v.len && (v.ptr[i] == ' ' || v.ptr[i] == '\t' || v.ptr[i] == ',')) {
            i++; /* empty members are allowed and dropped */
        }
        if (i == v.len) {
            break;
        }
        size_t start = i;
        while (i < v.len && v.ptr[i] != ',') {
            i++;
        }
        size_t end = i;
        while (end > start && (v.ptr[end - 1] == ' ' || v.ptr[end - 1] == '\t')) {
            end--;
        }
        if (!member_ok(v.ptr + start, end - start)) {
            return 0;
        }
        if (++members > TRACESTATE_MEMBERS || end > TRACESTATE_MAX) {
            break; /* carry the members before it */
        }
        keep = end;
    }
    return keep;
}

void trace_hex(const uint8_t *id, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[id[i] >> 4];
        out[2 * i + 1] = digits[id[i] & 0xf];
    }
}

/* ---- configuration and sampling ---- */

void trace_configure(const trace_opts_t *o)
{
    cfg.exporting = o->exporting;
    cfg.sample_all = o->ratio >= 1.0;
    /* ratio x 2^64, computed in long double so 0.5 is exactly 2^63 */
    cfg.sample_below = o->ratio <= 0.0  ? 0
                       : cfg.sample_all ? UINT64_MAX
                                        : (uint64_t)((long double)o->ratio * 18446744073709551616.0L);
    unsigned q = 1;
    while (q < o->queue_spans && q < (1u << 20)) {
        q <<= 1;
    }
    cfg.queue_spans = q;
}

bool trace_exporting(void)
{
    return cfg.exporting;
}

bool trace_sample_root(const uint8_t trace_id[TRACE_ID_LEN])
{
    if (!cfg.exporting) {
        return false;
    }
    if (cfg.sample_all) {
        return true;
    }
    uint64_t low = 0; /* OpenTelemetry's TraceIdRatioBased reads these bits */
    for (int i = 8; i < 16; i++) {
        low = low << 8 | trace_id[i];
    }
    return low < cfg.sample_below;
}

/* ---- scopes ---- */

static void copy_scope(trace_saved_t *out, const trace_scope_t *s)
{
    out->s = *s;
    size_t n = s->request_id.len < TRACE_REQID_MAX ? s->request_id.len : TRACE_REQID_MAX;
    if (n > 0) {
        memcpy(out->reqid, s->request_id.ptr, n);
    }
    out->s.request_id = str_make(out->reqid, n);
    out->valid = true;
}

void trace_save(trace_saved_t *out)
{
    const trace_scope_t *s = trace_scope;
    if (s == NULL) {
        out->valid = false;
        out->s.sampled = false;
        return;
    }
    copy_scope(out, s);
}

void trace_scope_retire(const trace_scope_t *s)
{
    if (trace_scope == s && s != NULL && s != &retired.s) {
        copy_scope(&retired, s);
        trace_scope = &retired.s;
    }
}

/* ---- ids ---- */

static void new_id(uint8_t *out, size_t n)
{
    do {
        for (size_t i = 0; i < n; i += 8) {
            uint64_t r = rand_u64();
            memcpy(out + i, &r, n - i < 8 ? n - i : 8);
        }
    } while (all_zero(out, n)); /* an all-zero id is invalid */
}

/* ---- rings ---- */

static trace_rec_t *rec_begin(void)
{
    ring_t *r = my_ring;
    if (r == NULL) {
        metrics_inc(M_SPANS_DROPPED_QUEUE);
        return NULL;
    }
    uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
    uint64_t tail = atomic_load_explicit(&r->tail, memory_order_acquire);
    if (head - tail > r->mask) {
        metrics_inc(M_SPANS_DROPPED_QUEUE);
        return NULL;
    }
    return &r->slots[head & r->mask];
}

static void rec_commit(void)
{
    ring_t *r = my_ring;
    atomic_store_explicit(&r->head, atomic_load_explicit(&r->head, memory_order_relaxed) + 1,
                          memory_order_release);
}

int trace_thread_attach(void)
{
    if (!cfg.exporting || my_ring != NULL) {
        return 0;
    }
    ring_t *r = calloc(1, sizeof(*r));
    trace_rec_t *slots = calloc(cfg.queue_spans, sizeof(trace_rec_t));
    if (r == NULL || slots == NULL) {
        free(r);
        free(slots);
        return ERR_NOMEM;
    }
    r->slots = slots;
    r->mask = cfg.queue_spans - 1;
    int rc = 0;
    pthread_mutex_lock(&rings_lock);
    unsigned n = atomic_load(&nrings);
    if (n == MAX_RINGS) {
        rc = ERR_NOMEM;
    } else {
        rings[n] = r;
        atomic_store_explicit(&nrings, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&rings_lock);
    if (rc != 0) {
        free(slots);
        free(r);
        return rc;
    }
    my_ring = r;
    return 0;
}

size_t trace_collect(trace_rec_t *out, size_t max)
{
    unsigned n = atomic_load_explicit(&nrings, memory_order_acquire);
    size_t got = 0;
    for (unsigned k = 0; k < n && got < max; k++) {
        ring_t *r = rings[(collect_next + k) % n];
        uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
        uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
        while (tail != head && got < max) {
            out[got++] = r->slots[tail & r->mask];
            tail++;
        }
        atomic_store_explicit(&r->tail, tail, memory_order_release);
    }
    if (n > 0) {
        collect_next = (collect_next + 1) % n;
    }
    return got;
}

void trace_rec_release(trace_rec_t *r)
{
    free(r->tracestate);
    r->tracestate = NULL;
}

void trace_queues_free(void)
{
    pthread_mutex_lock(&rings_lock);
    unsigned n = atomic_load(&nrings);
    for (unsigned i = 0; i < n; i++) {
        ring_t *r = rings[i];
        for (uint64_t t = atomic_load(&r->tail); t != atomic_load(&r->head); t++) {
            free(r->slots[t & r->mask].tracestate);
        }
        free(r->slots);
        free(r);
        rings[i] = NULL;
    }
    atomic_store(&nrings, 0);
    pthread_mutex_unlock(&rings_lock);
    my_ring = NULL;
}

/* ---- spans ---- */

void trace_server_begin(trace_server_t *sp, str_t traceparent, str_t tracestate, str_t request_id)
{
    trace_parent_t p;
    sp->scope.request_id = request_id;
    sp->tracestate = STR_NULL;
    if (traceparent.len > 0 && trace_parse_traceparent(traceparent, &p) == 0) {
        memcpy(sp->scope.trace_id, p.trace_id, TRACE_ID_LEN);
        memcpy(sp->parent_id, p.parent_id, TRACE_SPAN_ID_LEN);
        sp->has_parent = true;
        sp->scope.sampled = cfg.exporting && (p.flags & 1) != 0;
        if (tracestate.len > 0) {
            sp->tracestate = str_make(tracestate.ptr, trace_tracestate_clip(tracestate));
        }
    } else {
        new_id(sp->scope.trace_id, TRACE_ID_LEN);
        sp->has_parent = false;
        sp->scope.sampled = trace_sample_root(sp->scope.trace_id);
    }
    new_id(sp->scope.span_id, TRACE_SPAN_ID_LEN);
}

static void put_text(trace_rec_t *r, str_t s)
{
    size_t n = s.len < TRACE_TEXT_MAX ? s.len : TRACE_TEXT_MAX;
    if (n > 0) {
        memcpy(r->text, s.ptr, n);
    }
    r->text_len = (uint8_t)n;
}

void trace_server_end(const trace_server_t *sp, const trace_server_info_t *info)
{
    if (!sp->scope.sampled) {
        return;
    }
    trace_rec_t *r = rec_begin();
    if (r == NULL) {
        return;
    }
    memcpy(r->trace_id, sp->scope.trace_id, TRACE_ID_LEN);
    memcpy(r->span_id, sp->scope.span_id, TRACE_SPAN_ID_LEN);
    memcpy(r->parent_id, sp->parent_id, TRACE_SPAN_ID_LEN);
    r->has_parent = sp->has_parent;
    r->kind = TRACE_KIND_SERVER;
    r->start_us = info->start_us;
    r->end_us = info->end_us > info->start_us ? info->end_us : info->start_us;
    r->error = info->status >= 500;
    r->db = 0;
    r->nstmts = 0;
    r->status = (uint16_t)info->status;
    r->http_version = (uint8_t)info->http_version;
    r->method = info->method;
    r->route = info->route;
    r->sql = NULL;
    r->err[0] = '\0';
    if (r->error) {
        snprintf(r->err, sizeof(r->err), "%d", info->status); /* error.type: the status code */
    }
    put_text(r, info->path);
    r->tracestate = NULL;
    if (sp->tracestate.len > 0) {
        r->tracestate = malloc(sp->tracestate.len + 1); /* rare: only with a caller's tracestate */
        if (r->tracestate != NULL) {
            memcpy(r->tracestate, sp->tracestate.ptr, sp->tracestate.len);
            r->tracestate[sp->tracestate.len] = '\0';
        }
    }
    rec_commit();
}

void trace_client_begin(trace_client_t *c)
{
    trace_save(&c->parent);
    c->start_us = trace_now_us();
    if (c->parent.valid && c->parent.s.sampled) {
        new_id(c->span_id, TRACE_SPAN_ID_LEN);
    }
}

void trace_client_end(const trace_client_t *c, const trace_client_info_t *info)
{
    if (!c->parent.valid || !c->parent.s.sampled) {
        return;
    }
    trace_rec_t *r = rec_begin();
    if (r == NULL) {
        return;
    }
    memcpy(r->trace_id, c->parent.s.trace_id, TRACE_ID_LEN);
    memcpy(r->span_id, c->span_id, TRACE_SPAN_ID_LEN);
    memcpy(r->parent_id, c->parent.s.span_id, TRACE_SPAN_ID_LEN);
    r->has_parent = true;
    r->kind = TRACE_KIND_CLIENT;
    r->start_us = c->start_us;
    r->end_us = info->end_us > c->start_us ? info->end_us : c->start_us;
    r->error = info->error != NULL;
    r->db = (uint8_t)info->db;
    r->status = 0;
    r->http_version = 0;
    r->method = NULL;
    r->route = NULL;
    r->nstmts = (uint8_t)(info->nstmts < TRACE_MAX_STMTS ? info->nstmts : TRACE_MAX_STMTS);
    for (unsigned i = 0; i < r->nstmts; i++) {
        r->stmts[i] = info->stmts[i];
    }
    r->sql = info->sql;
    r->err[0] = '\0';
    if (info->error != NULL) {
        snprintf(r->err, sizeof(r->err), "%s", info->error);
    }
    put_text(r, info->command);
    r->tracestate = NULL;
    rec_commit();
}
