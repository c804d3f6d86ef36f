/*
 * otlp: the exporter thread, the JSON encoding, retries.
 *
 * OTLP/JSON (opentelemetry-proto, "JSON Protobuf Encoding"): trace and span
 * ids are hex strings, enums are numbers, 64-bit integers (times,
 * intValue) are decimal strings, attributes are {key, value: {stringValue
 * | intValue}}. Times leave the process as Unix nanoseconds: spans carry
 * monotonic microseconds, converted here with the offset of the moment of
 * encoding, so a clock step moves a batch, never a span within it.
 */
#include "obs/otlp.h"

#include <curl/curl.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/jw.h"
#include "base/rand.h"
#include "base/redact.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "base/banned.h"

#define POLL_MS        50
#define FINAL_FLUSH_MS 2000
#define BODY_MAX       (64u * 1024 * 1024)
#define URL_MAX        1024

static struct {
    otlp_opts_t o;
    char url[URL_MAX];
    char url_safe[URL_MAX]; /* for logs: no password */
    char *service_name;
    char *service_version;
    pthread_t thread;
    bool running;
    pthread_mutex_t lock;
    pthread_cond_t cond;
    bool stop;
    CURL *curl;
    struct curl_slist *headers;
    bool failing; /* the last batch failed: logged once per outage */
} ex = {.lock = PTHREAD_MUTEX_INITIALIZER, .cond = PTHREAD_COND_INITIALIZER};

/* ---- pure parts ---- */

int otlp_traces_url(const char *endpoint, char *out, size_t outlen)
{
    str_t e = str_from_cstr(endpoint);
    if (!(e.len > 7 && str_eq_nocase(str_make(e.ptr, 7), STR("http://"))) &&
        !(e.len > 8 && str_eq_nocase(str_make(e.ptr, 8), STR("https://")))) {
        return ERR_INVAL;
    }
    while (e.len > 0 && e.ptr[e.len - 1] == '/') {
        e.len--; /* "<endpoint>/v1/traces" whatever the endpoint ends with */
    }
    int n = snprintf(out, outlen, "%.*s/v1/traces", (int)e.len, e.ptr);
    return n > 0 && (size_t)n < outlen ? 0 : ERR_INVAL;
}

bool otlp_retryable(long status, bool transport_failed)
{
    /* OTLP/HTTP, "Failures": these are transient; any other (400 and the
       like) will fail the same way again. */
    return transport_failed || status == 429 || status == 502 || status == 503 || status == 504;
}

int64_t otlp_backoff_ms(unsigned attempt, int64_t retry_after_s, uint64_t r)
{
    int64_t base = 250;
    for (unsigned i = 1; i < attempt && base < 8000; i++) {
        base *= 2;
    }
    if (base > 8000) {
        base = 8000;
    }
    int64_t wait = base - (int64_t)(r % (uint64_t)(base / 4 + 1));
    if (retry_after_s > 0) {
        int64_t ra = (retry_after_s > 60 ? 60 : retry_after_s) * 1000;
        if (ra > wait) {
            wait = ra;
        }
    }
    return wait;
}

void otlp_sql_operation(const char *sql, char *out, size_t outlen)
{
    size_t n = 0;
    if (outlen == 0) {
        return;
    }
    while (sql != NULL && (*sql == ' ' || *sql == '\n' || *sql == '\t' || *sql == '(')) {
        sql++;
    }
    for (; sql != NULL && n + 1 < outlen; sql++) {
        char c = *sql;
        if (c >= 'a' && c <= 'z') {
            c = (char)(c - 32);
        } else if (c < 'A' || c > 'Z') {
            break;
        }
        out[n++] = c;
    }
    out[n] = '\0';
}

static void put_u64_str(jw_t *j, uint64_t v)
{
    char tmp[24];
    int n = snprintf(tmp, sizeof(tmp), "%llu", (unsigned long long)v);
    jw_str_plain(j, str_make(tmp, (size_t)n));
}

static void put_hex(jw_t *j, const uint8_t *id, size_t n)
{
    char hex[2 * TRACE_ID_LEN];
    trace_hex(id, n, hex);
    jw_str_plain(j, str_make(hex, 2 * n));
}

static void attr_open(jw_t *j, const char *key)
{
    jw_obj_open(j);
    JW_KEY(j, "key");
    jw_str(j, str_from_cstr(key));
    JW_KEY(j, "value");
    jw_obj_open(j);
}

static void attr_str(jw_t *j, const char *key, str_t v)
{
    attr_open(j, key);
    JW_KEY(j, "stringValue");
    jw_str(j, v);
    jw_obj_close(j);
    jw_obj_close(j);
}

static void attr_int(jw_t *j, const char *key, int64_t v)
{
    attr_open(j, key);
    JW_KEY(j, "intValue");
    put_u64_str(j, (uint64_t)v);
    jw_obj_close(j);
    jw_obj_close(j);
}

static uint64_t unix_ns(uint64_t mono_us, int64_t offset_us)
{
    int64_t w = (int64_t)mono_us + offset_us;
    return w > 0 ? (uint64_t)w * 1000u : 0;
}

static void encode_span(jw_t *j, const trace_rec_t *r, int64_t offset_us)
{
    char name[TRACE_TEXT_MAX + 160];
    char op[32] = "";
    bool server = r->kind == TRACE_KIND_SERVER;
    if (server) {
        /* semantic conventions: "{method} {http.route}", or the method alone */
        const char *m = r->method && strcmp(r->method, "_OTHER") != 0 ? r->method : "HTTP";
        snprintf(name, sizeof(name), "%s%s%s", m, r->route ? " " : "", r->route ? r->route : "");
    } else if (r->db == TRACE_DB_POSTGRESQL) {
        if (r->nstmts > 1) {
            snprintf(op, sizeof(op), "BATCH");
        } else {
            otlp_sql_operation(r->sql, op, sizeof(op));
        }
        snprintf(name, sizeof(name), "%s %s", op[0] ? op : "postgresql",
                 r->nstmts > 0 && r->stmts[0] ? r->stmts[0] : "");
    } else {
        snprintf(name, sizeof(name), "%.*s", (int)r->text_len, r->text);
    }
    jw_obj_open(j);
    JW_KEY(j, "traceId");
    put_hex(j, r->trace_id, TRACE_ID_LEN);
    JW_KEY(j, "spanId");
    put_hex(j, r->span_id, TRACE_SPAN_ID_LEN);
    if (r->has_parent) {
        JW_KEY(j, "parentSpanId");
        put_hex(j, r->parent_id, TRACE_SPAN_ID_LEN);
    }
    if (r->tracestate != NULL) {
        JW_KEY(j, "traceState");
        jw_str(j, str_from_cstr(r->tracestate));
    }
    JW_KEY(j, "name");
    jw_str(j, str_from_cstr(name));
    JW_KEY(j, "kind");
    jw_int(j, r->kind);
    JW_KEY(j, "startTimeUnixNano");
    put_u64_str(j, unix_ns(r->start_us, offset_us));
    JW_KEY(j, "endTimeUnixNano");
    put_u64_str(j, unix_ns(r->end_us, offset_us));
    JW_KEY(j, "attributes");
    jw_arr_open(j);
    if (server) {
        attr_str(j, "http.request.method", str_from_cstr(r->method ? r->method : "_OTHER"));
        if (r->route != NULL) {
            attr_str(j, "http.route", str_from_cstr(r->route));
        }
        attr_int(j, "http.response.status_code", r->status);
        attr_str(j, "url.path", str_make(r->text, r->text_len));
        attr_str(j, "url.scheme", STR("http"));
        attr_str(j, "network.protocol.version",
                 r->http_version >= 20   ? STR("2")
                 : r->http_version == 10 ? STR("1.0")
                                         : STR("1.1"));
    } else {
        str_t sys = r->db == TRACE_DB_POSTGRESQL ? STR("postgresql") : STR("redis");
        attr_str(j, "db.system", sys);
        attr_str(j, "db.system.name", sys);
        if (r->db == TRACE_DB_POSTGRESQL) {
            attr_str(j, "db.operation.name", str_from_cstr(op));
            char names[160];
            size_t len = 0;
            for (unsigned i = 0; i < r->nstmts && r->stmts[i] != NULL; i++) {
                int w = snprintf(names + len, sizeof(names) - len, "%s%s", i ? " " : "", r->stmts[i]);
                if (w < 0 || (size_t)w >= sizeof(names) - len) {
                    break;
                }
                len += (size_t)w;
            }
            attr_str(j, "db.statement.name", str_make(names, len));
            attr_int(j, "db.batch.size", r->nstmts);
            if (r->sql != NULL) {
                attr_str(j, "db.query.text", str_from_cstr(r->sql));
            }
        } else {
            attr_str(j, "db.operation.name", str_make(r->text, r->text_len));
        }
    }
    if (r->error && r->err[0] != '\0') {
        attr_str(j, "error.type", str_from_cstr(r->err));
    }
    jw_arr_close(j);
    JW_KEY(j, "status");
    jw_obj_open(j);
    if (r->error) {
        JW_KEY(j, "code");
        jw_int(j, 2); /* STATUS_CODE_ERROR; unset otherwise (a 4xx is not the server's error) */
    }
    jw_obj_close(j);
    jw_obj_close(j);
}

void otlp_encode(buf_t *b, const trace_rec_t *recs, size_t n, const char *service_name,
                 const char *service_version, int64_t wall_minus_mono_us)
{
    jw_t j;
    jw_init(&j, b);
    jw_obj_open(&j);
    JW_KEY(&j, "resourceSpans");
    jw_arr_open(&j);
    jw_obj_open(&j);
    JW_KEY(&j, "resource");
    jw_obj_open(&j);
    JW_KEY(&j, "attributes");
    jw_arr_open(&j);
    attr_str(&j, "service.name", str_from_cstr(service_name));
    attr_str(&j, "service.version", str_from_cstr(service_version));
    attr_str(&j, "telemetry.sdk.language", STR("c"));
    jw_arr_close(&j);
    jw_obj_close(&j);
    JW_KEY(&j, "scopeSpans");
    jw_arr_open(&j);
    jw_obj_open(&j);
    JW_KEY(&j, "scope");
    jw_obj_open(&j);
    JW_KEY(&j, "name");
    jw_str(&j, STR("api"));
    JW_KEY(&j, "version");
    jw_str(&j, str_from_cstr(service_version));
    jw_obj_close(&j);
    JW_KEY(&j, "spans");
    jw_arr_open(&j);
    for (size_t i = 0; i < n; i++) {
        encode_span(&j, &recs[i], wall_minus_mono_us);
    }
    jw_arr_close(&j);
    jw_obj_close(&j);
    jw_arr_close(&j);
    jw_obj_close(&j);
    jw_arr_close(&j);
    jw_obj_close(&j);
}

/* ---- sending ---- */

typedef struct {
    int64_t retry_after_s;
} answer_t;

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    answer_t *a = arg;
    size_t len = size * n;
    str_t line = str_make(p, len);
    if (len > 12 && str_eq_nocase(str_make(p, 12), STR("retry-after:"))) {
        str_t v = str_make(p + 12, len - 12);
        while (v.len > 0 && (v.ptr[0] == ' ' || v.ptr[0] == '\t')) {
            v.ptr++, v.len--;
        }
        while (v.len > 0 &&
               (v.ptr[v.len - 1] == '\r' || v.ptr[v.len - 1] == '\n' || v.ptr[v.len - 1] == ' ')) {
            v.len--;
        }
        int64_t s;
        a->retry_after_s = str_to_i64(v, 0, 86400, &s) == 0 ? s : 0; /* an HTTP date: ignored */
    } else if (str_starts_with(line, STR("HTTP/"))) {
        a->retry_after_s = 0;
    }
    return len;
}

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    (void)p, (void)arg;
    return size * n; /* the answer's body is not needed */
}

/* One POST. Returns the HTTP status, or 0 with *transport set. */
static long post(const buf_t *body, int64_t timeout_ms, answer_t *a, bool *transport, char *why,
                 size_t whylen)
{
    CURL *c = ex.curl;
    *a = (answer_t){0};
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body->ptr);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body->len);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, a);
    CURLcode cc = curl_easy_perform(c);
    long status = 0;
    *transport = cc != CURLE_OK;
    if (cc == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        snprintf(why, whylen, "HTTP status %ld", status);
    } else {
        snprintf(why, whylen, "%s", curl_easy_strerror(cc));
    }
    return status;
}

/* Waits up to ms, or until stop. Returns whether stop was asked. */
static bool wait_ms(int64_t ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&ex.lock);
    while (!ex.stop) {
        if (pthread_cond_timedwait(&ex.cond, &ex.lock, &until) == ETIMEDOUT) {
            break;
        }
    }
    bool stop = ex.stop;
    pthread_mutex_unlock(&ex.lock);
    return stop;
}

static void send_batch(trace_rec_t *recs, size_t n, bool final, uint64_t final_end_ms, buf_t *body)
{
    buf_reset(body);
    otlp_encode(body, recs, n, ex.service_name, ex.service_version,
                clock_wall_us() - (int64_t)clock_mono_us());
    if (buf_failed(body)) {
        metrics_add(M_SPANS_DROPPED_EXPORT, n);
        return;
    }
    char why[256] = "";
    for (unsigned attempt = 1;; attempt++) {
        int64_t timeout = ex.o.timeout_ms;
        if (final) {
            uint64_t now = clock_mono_ms();
            if (now >= final_end_ms) {
                break;
            }
            if ((int64_t)(final_end_ms - now) < timeout) {
                timeout = (int64_t)(final_end_ms - now);
            }
        }
        answer_t a;
        bool transport;
        long status = post(body, timeout, &a, &transport, why, sizeof(why));
        if (!transport && status >= 200 && status < 300) {
            metrics_add(M_SPANS_EXPORTED, n);
            if (ex.failing) {
                log_info("OTLP export to %s works again", ex.url_safe);
                ex.failing = false;
            }
            return;
        }
        if (final || !otlp_retryable(status, transport) || attempt >= OTLP_MAX_ATTEMPTS ||
            wait_ms(otlp_backoff_ms(attempt, a.retry_after_s, rand_u64()))) {
            break;
        }
    }
    metrics_add(M_SPANS_DROPPED_EXPORT, n);
    if (!ex.failing) {
        log_warn("OTLP export to %s failed (%s): spans are dropped and counted until it works again",
                 ex.url_safe, why);
        ex.failing = true;
    }
}

static void release_all(trace_rec_t *recs, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        trace_rec_release(&recs[i]);
    }
}

static void *exporter_main(void *arg)
{
    (void)arg;
    if (metrics_thread_attach() != 0) {
        log_warn("OTLP exporter: no metrics shard; its counts are lost");
    }
    size_t max = ex.o.batch_max;
    trace_rec_t *batch = calloc(max, sizeof(*batch));
    buf_t body;
    buf_init(&body, BODY_MAX);
    size_t n = 0;
    uint64_t first_ms = 0; /* when the oldest span of the batch was taken */
    bool stop = false;
    while (batch != NULL && !stop) {
        size_t got = trace_collect(batch + n, max - n);
        if (n == 0 && got > 0) {
            first_ms = clock_mono_ms();
        }
        n += got;
        if (n > 0 && (n == max || clock_mono_ms() - first_ms >= (uint64_t)ex.o.schedule_delay_ms)) {
            send_batch(batch, n, false, 0, &body);
            release_all(batch, n);
            n = 0;
            continue; /* a full queue may hold more at once */
        }
        stop = wait_ms(POLL_MS);
    }
    /* Stopping: what is queued gets one attempt, within FINAL_FLUSH_MS. */
    uint64_t end = clock_mono_ms() + FINAL_FLUSH_MS;
    while (batch != NULL) {
        n += trace_collect(batch + n, max - n);
        if (n == 0) {
            break;
        }
        if (clock_mono_ms() < end) {
            send_batch(batch, n, true, end, &body);
        } else {
            metrics_add(M_SPANS_DROPPED_EXPORT, n);
        }
        release_all(batch, n);
        n = 0;
    }
    free(batch);
    buf_deinit(&body);
    log_thread_detach(); /* its line buffer */
    return NULL;
}

/* ---- life cycle ---- */

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static CURLcode curl_init_rc;

static void curl_init(void)
{
    /* once per process, never cleaned up (see middleware/jwks_fetch.c) */
    curl_init_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
}

static void free_all(void)
{
    curl_slist_free_all(ex.headers);
    ex.headers = NULL;
    if (ex.curl != NULL) {
        curl_easy_cleanup(ex.curl);
        ex.curl = NULL;
    }
    free(ex.service_name);
    free(ex.service_version);
    ex.service_name = ex.service_version = NULL;
}

int otlp_start(const otlp_opts_t *o, char *err, size_t errlen)
{
    if (otlp_traces_url(o->endpoint, ex.url, sizeof(ex.url)) != 0) {
        char safe[256];
        redact_url(str_from_cstr(o->endpoint), safe, sizeof(safe));
        snprintf(err, errlen,
                 "invalid OTEL_EXPORTER_OTLP_ENDPOINT \"%s\": expected http://host:port or https://...",
                 safe);
        return ERR_INVAL;
    }
    redact_url(str_from_cstr(ex.url), ex.url_safe, sizeof(ex.url_safe));
    ex.o = *o;
    if (ex.o.batch_max == 0) {
        ex.o.batch_max = 512;
    }
    pthread_once(&curl_once, curl_init);
    ex.service_name = strdup(o->service_name ? o->service_name : "api");
    ex.service_version = strdup(o->service_version ? o->service_version : "");
    ex.curl = curl_init_rc == CURLE_OK ? curl_easy_init() : NULL;
    ex.headers = curl_slist_append(NULL, "Content-Type: application/json");
    if (ex.curl == NULL || ex.headers == NULL || ex.service_name == NULL || ex.service_version == NULL) {
        free_all();
        snprintf(err, errlen, "cannot set up the OTLP exporter: out of memory");
        return ERR_NOMEM;
    }
    CURL *c = ex.curl;
    curl_easy_setopt(c, CURLOPT_URL, ex.url);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L); /* threads: no SIGALRM for DNS timeouts */
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, ex.headers);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "api/" API_VERSION);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    ex.stop = false;
    ex.failing = false;
    if (pthread_create(&ex.thread, NULL, exporter_main, NULL) != 0) {
        free_all();
        snprintf(err, errlen, "cannot start the OTLP exporter thread");
        return ERR_IO;
    }
    ex.running = true;
    return 0;
}

void otlp_stop(void)
{
    if (!ex.running) {
        return;
    }
    pthread_mutex_lock(&ex.lock);
    ex.stop = true;
    pthread_cond_broadcast(&ex.cond);
    pthread_mutex_unlock(&ex.lock);
    pthread_join(ex.thread, NULL);
    ex.running = false;
    free_all();
}
