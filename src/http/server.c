/*
 * server: h2o glue. Three h2o facts shape this file (see notes/c-stack.md):
 * h2o_send_inline() does not set Content-Length (so we always do, or errors
 * go out chunked and drop keep-alive); h2o 2.2.5 has no per-request timeout
 * (each context arms its own deadline on the worker's timer heap); and h2o
 * answers some errors itself in text/plain (413, broken chunked bodies), so
 * a filter rewrites those into problem documents.
 */
#include "http/server.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <h2o/http2.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "base/jw.h"
#include "http/h1head.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "obs/trace.h"
#include "base/banned.h"

#define SCRATCH_MAX      (8u * 1024 * 1024)
#define LISTEN_BACKLOG   4096
#define ACCEPTS_PER_WAKE 64
/* Out of file descriptors: accepting again after this long. The listener
   is level-triggered, so retrying at once would spin on EMFILE. */
#define ACCEPT_BACKOFF_MS 100

/* Set while http_respond() is inside h2o: tells the problem filter that the
   response is ours and already well formed. */
static _Thread_local bool sending_own;

/* A connection this worker accepted (see "Connections" below). */
typedef struct {
    h2o_linklist_t link; /* in w->connections */
    http_worker_t *w;
    h2o_socket_t *sock;
    bool h2_streams; /* an HTTP/2 connection with open streams (h2_scan) */
    bool peer_known;
    uint8_t peer_len;
    char peer[INET6_ADDRSTRLEN]; /* the peer's address as text, once known */
} http_conn_t;

/* ---- access log and metrics ---- */

static str_t format_peer(h2o_conn_t *conn, char *out, size_t outlen)
{
    struct sockaddr_storage ss;
    socklen_t sl = conn->callbacks->get_peername(conn, (struct sockaddr *)&ss);
    out[0] = '\0';
    if (sl != 0 && ss.ss_family == AF_INET) {
        inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr, out, (socklen_t)outlen);
    } else if (sl != 0 && ss.ss_family == AF_INET6) {
        inet_ntop(AF_INET6, &((struct sockaddr_in6 *)&ss)->sin6_addr, out, (socklen_t)outlen);
    }
    return str_from_cstr(out);
}

static http_conn_t *conn_of(h2o_req_t *req);

/* The bare address of the peer: formatted once per connection (every
   request would otherwise pay for getpeername and inet_ntop). */
static str_t peer_addr(h2o_req_t *req, char *out, size_t outlen)
{
    http_conn_t *c = conn_of(req);
    if (c == NULL) {
        return format_peer(req->conn, out, outlen);
    }
    if (!c->peer_known) {
        c->peer_len = (uint8_t)format_peer(req->conn, c->peer, sizeof(c->peer)).len;
        c->peer_known = true;
    }
    size_t n = c->peer_len < outlen ? c->peer_len : outlen - 1;
    memcpy(out, c->peer, n);
    out[n] = '\0';
    return str_make(out, n);
}

typedef struct {
    str_t request_id;
    const char *route;
    int status;
    size_t bytes;
    uint64_t duration_us;
    const uint8_t *trace_id;
    const uint8_t *span_id;
    str_t client; /* the client address after TRUSTED_PROXIES (STR_NULL: the peer) */
} access_t;

static void log_access(http_worker_t *w, h2o_req_t *req, const access_t *a)
{
    jw_t *j = log_begin(LOG_INFO, "request");
    if (j == NULL) {
        return;
    }
    char hex[2 * TRACE_ID_LEN];
    str_t path = str_make(req->path.base, req->query_at != SIZE_MAX ? req->query_at : req->path.len);
    jw_kv_str(j, "request_id", a->request_id);
    trace_hex(a->trace_id, TRACE_ID_LEN, hex);
    jw_key(j, STR("trace_id"));
    jw_str_plain(j, str_make(hex, 2 * TRACE_ID_LEN));
    trace_hex(a->span_id, TRACE_SPAN_ID_LEN, hex);
    jw_key(j, STR("span_id"));
    jw_str_plain(j, str_make(hex, 2 * TRACE_SPAN_ID_LEN));
    jw_kv_str(j, "method", str_make(req->method.base, req->method.len));
    jw_kv_str(j, "path", path); /* never the query: it may carry secrets */
    if (a->route != NULL) {
        jw_kv_str(j, "route", str_from_cstr(a->route));
    }
    jw_kv_int(j, "status", a->status);
    jw_key(j, STR("duration_ms"));
    jw_double(j, (double)a->duration_us / 1000.0, 3);
    jw_kv_int(j, "bytes", (int64_t)a->bytes);
    jw_kv_int(j, "worker", w->id);
    char addr[INET6_ADDRSTRLEN];
    jw_kv_str(j, "remote", a->client.ptr != NULL ? a->client : peer_addr(req, addr, sizeof(addr)));
    log_end(j);
}

/* The method as a metric label (HTTP_* bit -> index; unknown: _OTHER). */
static metric_method_t method_label(unsigned bit)
{
    switch (bit) {
    case HTTP_GET:
        return MM_GET;
    case HTTP_HEAD:
        return MM_HEAD;
    case HTTP_POST:
        return MM_POST;
    case HTTP_PUT:
        return MM_PUT;
    case HTTP_PATCH:
        return MM_PATCH;
    case HTTP_DELETE:
        return MM_DELETE;
    case HTTP_OPTIONS:
        return MM_OPTIONS;
    }
    return MM_OTHER;
}

static const char *const method_text[MM__COUNT] = {"GET",   "HEAD",   "POST",    "PUT",
                                                   "PATCH", "DELETE", "OPTIONS", "_OTHER"};

static int http_version(const h2o_req_t *req)
{
    return req->version >= 0x200 ? 20 : req->version == 0x100 ? 10 : 11;
}

/* ---- responses ---- */

/* On every response: no MIME sniffing of what we send; and an error is
   about this request only, so no cache (shared or private) may keep it. */
static void add_security_headers(h2o_req_t *req, int status)
{
    h2o_set_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-content-type-options"), 0,
                          H2O_STRLIT("nosniff"), 1);
    if (status >= 400) {
        h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, H2O_STRLIT("no-store"), 1);
    }
}

static void on_write_timeout(struct timer *t);

void http_header_add(http_ctx_t *ctx, str_t name, str_t value)
{
    h2o_req_t *req = ctx->req;
    h2o_iovec_t v = h2o_strdup(&req->pool, value.ptr, value.len);
    h2o_add_header_by_str(&req->pool, &req->res.headers, name.ptr, name.len, 1, NULL, v.base, v.len);
}

str_t http_header_get(const http_ctx_t *ctx, str_t name)
{
    ssize_t i = h2o_find_header_by_str(&ctx->req->headers, name.ptr, name.len, -1);
    if (i < 0) {
        return STR_NULL;
    }
    h2o_iovec_t v = ctx->req->headers.entries[i].value;
    return str_make(v.base, v.len);
}

str_t http_peer_addr(const http_ctx_t *ctx, char *out, size_t outlen)
{
    return peer_addr(ctx->req, out, outlen);
}

str_t http_client_addr(http_ctx_t *ctx)
{
    if (ctx->client.ptr == NULL) {
        char peer[INET6_ADDRSTRLEN];
        str_t p = peer_addr(ctx->req, peer, sizeof(peer));
        const http_cidrs_t *trusted = ctx->w->server->opts.trusted_proxies;
        if (trusted == NULL || trusted->n == 0) {
            memcpy(ctx->client_buf, p.ptr, p.len + 1);
            ctx->client = str_make(ctx->client_buf, p.len);
        } else {
            /* every X-Forwarded-For header, in order */
            str_t xff[16];
            size_t n = 0;
            for (ssize_t i = -1; n < 16;) {
                i = h2o_find_header_by_str(&ctx->req->headers, H2O_STRLIT("x-forwarded-for"), i);
                if (i < 0) {
                    break;
                }
                xff[n++] =
                    str_make(ctx->req->headers.entries[i].value.base, ctx->req->headers.entries[i].value.len);
            }
            size_t len = http_forwarded_client(trusted, p, xff, n, ctx->client_buf);
            ctx->client = str_make(ctx->client_buf, len);
        }
    }
    return ctx->client;
}

buf_t *http_scratch(http_ctx_t *ctx)
{
    buf_reset(&ctx->w->scratch);
    return &ctx->w->scratch;
}

int64_t http_deadline_left_ms(const http_ctx_t *ctx)
{
    uint64_t now = clock_mono_ms();
    return now >= ctx->deadline_ms ? 0 : (int64_t)(ctx->deadline_ms - now);
}

void http_respond(http_ctx_t *ctx, int status, str_t content_type, str_t body)
{
    if (ctx->responded || ctx->req == NULL) {
        return;
    }
    h2o_req_t *req = ctx->req;
    http_worker_t *w = ctx->w;
    if (ctx->on_respond != NULL) {
        bool (*hook)(http_ctx_t *, int, str_t, str_t) = ctx->on_respond;
        ctx->on_respond = NULL;
        if (hook(ctx, status, content_type, body)) {
            return; /* deferred: the hook sends it */
        }
    }
    ctx->responded = true;
    ctx->status = status;
    ctx->bytes = body.len;
    uint64_t end_us = clock_mono_us();
    /* From here the same timer bounds how long the client may take to read
       the answer: one that never reads would hold its slot for ever. */
    ctx->deadline.cb = on_write_timeout;
    if (timer_arm(&w->timers, &ctx->deadline, clock_mono_ms() + (uint64_t)w->server->opts.write_timeout_ms) !=
        0) {
        timer_cancel(&w->timers, &ctx->deadline);
    }

    req->res.status = status;
    req->res.reason = http_status_reason(status);
    req->res.content_length = body.len;
    if (content_type.len > 0) {
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, content_type.ptr,
                       content_type.len);
    }
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL,
                          ctx->request_id.ptr, ctx->request_id.len);
    add_security_headers(req, status);
    /* Log, count and end the span before sending: once h2o has the
       response, the request (and ctx with it) may be freed by the time
       control comes back. */
    const http_route_t *route = ctx->match.route;
    uint64_t duration_us = end_us > ctx->start_us ? end_us - ctx->start_us : 0;
    access_t a = {.request_id = ctx->request_id,
                  .route = route ? route->pattern : NULL,
                  .status = status,
                  .bytes = ctx->method == HTTP_HEAD ? 0 : body.len,
                  .duration_us = duration_us,
                  .trace_id = ctx->span.scope.trace_id,
                  .span_id = ctx->span.scope.span_id,
                  .client = http_client_addr(ctx)};
    log_access(w, req, &a);
    metric_method_t method = method_label(ctx->method);
    metrics_http_observe(method, route ? (unsigned)(route - w->server->routes) + 1 : 0, (unsigned)status,
                         duration_us);
    if (status == 429) {
        metrics_inc(M_HTTP_RATE_LIMITED);
    }
    if (ctx->span.scope.sampled) {
        trace_server_info_t info = {.method = method_text[method],
                                    .route = a.route,
                                    .path = ctx->path,
                                    .status = status,
                                    .http_version = http_version(req),
                                    .start_us = ctx->start_us,
                                    .end_us = end_us};
        trace_server_end(&ctx->span, &info);
    }
    trace_scope_retire(&ctx->span.scope);
    sending_own = true;
    h2o_send_inline(req, body.ptr, body.len);
    sending_own = false;
}

void http_respond_json(http_ctx_t *ctx, int status, const buf_t *body)
{
    if (buf_failed(body)) {
        http_respond_err(ctx, ERR_NOMEM);
        return;
    }
    http_respond(ctx, status, STR("application/json"), buf_str(body));
}

void http_respond_problem(http_ctx_t *ctx, const http_problem_t *p)
{
    if (ctx->responded || ctx->req == NULL) {
        return;
    }
    buf_t *b = http_scratch(ctx);
    http_problem_render(b, p);
    if (buf_failed(b)) {
        buf_reset(b);
        http_problem_t small = *p;
        small.nerrors = 0; /* the errors list was what did not fit */
        http_problem_render(b, &small);
    }
    ctx->answer_retryable = p->retryable || p->status >= 500;
    if (p->retry_after_s > 0) {
        char v[16];
        int n = snprintf(v, sizeof(v), "%d", p->retry_after_s);
        http_header_add(ctx, STR("retry-after"), str_make(v, (size_t)n));
    }
    http_respond(ctx, p->status, STR(HTTP_PROBLEM_CONTENT_TYPE), buf_str(b));
}

void http_respond_error(http_ctx_t *ctx, int status, const char *slug, const char *detail)
{
    http_problem_t p = {.status = status, .slug = slug, .detail = str_from_cstr(detail)};
    http_respond_problem(ctx, &p);
}

void http_respond_invalid(http_ctx_t *ctx, int status, str_t field, const char *message, const char *detail)
{
    http_field_error_t fe = {field, str_from_cstr(message)};
    http_problem_t p = {.status = status,
                        .slug = status == 422 ? "validation-failed" : "bad-request",
                        .detail = str_from_cstr(detail),
                        .errors = &fe,
                        .nerrors = 1};
    http_respond_problem(ctx, &p);
}

void http_respond_err(http_ctx_t *ctx, int err)
{
    http_problem_t p;
    http_problem_from_err(err, STR_NULL, &p);
    if (err == ERR_TIMEOUT) {
        metrics_inc(M_HTTP_TIMEOUTS);
    } else if (err == ERR_UNAVAILABLE) {
        metrics_inc(M_HTTP_SHED_UNAVAILABLE);
    }
    if (p.status == 500) {
        log_error("request %.*s failed: %s", (int)ctx->request_id.len, ctx->request_id.ptr, err_name(err));
    }
    http_respond_problem(ctx, &p);
}

/* ---- pending operations ---- */

void http_pending_attach(http_ctx_t *ctx, http_pending_t *p)
{
    p->ctx = ctx;
    ctx->pending = p;
}

http_ctx_t *http_pending_finish(http_pending_t *p)
{
    http_ctx_t *ctx = p->ctx;
    p->ctx = NULL;
    if (ctx == NULL) {
        return NULL;
    }
    ctx->pending = NULL;
    return ctx->responded ? NULL : ctx;
}

/* ---- request lifecycle ---- */

static void cancel_pending(http_ctx_t *ctx)
{
    http_pending_t *p = ctx->pending;
    if (p != NULL) {
        ctx->pending = NULL;
        p->ctx = NULL;
        if (p->cancel != NULL) {
            p->cancel(p);
        }
    }
}

static void on_ctx_dispose(void *p)
{
    http_ctx_t *ctx = p;
    timer_cancel(&ctx->w->timers, &ctx->deadline);
    cancel_pending(ctx); /* the client is gone: its work is no longer wanted */
    if (!ctx->responded) {
        log_debug("request %.*s abandoned by the client", (int)ctx->request_id.len, ctx->request_id.ptr);
    }
    ctx->w->inflight--;
    metrics_set(M_HTTP_ACTIVE, (int64_t)ctx->w->inflight);
    h2o_linklist_unlink(&ctx->link);
    trace_scope_retire(&ctx->span.scope);
    ctx->req = NULL;
}

/* The client has not taken its answer in WRITE_TIMEOUT_MS: close the
   connection under h2o (its pending write fails and it cleans up), which
   frees the request. On HTTP/2 that ends the connection's other streams
   too: a client that does not read its socket stalls them all anyway. */
static void on_write_timeout(struct timer *t)
{
    http_ctx_t *ctx = t->data;
    if (ctx->req == NULL) {
        return;
    }
    h2o_socket_t *sock = ctx->req->conn->callbacks->get_socket(ctx->req->conn);
    if (sock != NULL) {
        log_info("request %.*s: the client did not read its response within %lld ms; closing the connection",
                 (int)ctx->request_id.len, ctx->request_id.ptr,
                 (long long)ctx->w->server->opts.write_timeout_ms);
        (void)shutdown(h2o_socket_get_fd(sock), SHUT_RDWR);
    }
}

static void on_deadline(struct timer *t)
{
    http_ctx_t *ctx = t->data;
    if (ctx->responded) {
        return;
    }
    const trace_scope_t *prev = trace_scope_enter(&ctx->span.scope);
    cancel_pending(ctx);
    http_respond_err(ctx, ERR_TIMEOUT);
    trace_scope_leave(prev);
}

void http_worker_abort_requests(http_worker_t *w)
{
    h2o_linklist_t *node = w->requests.next;
    while (node != &w->requests) {
        http_ctx_t *ctx = H2O_STRUCT_FROM_MEMBER(http_ctx_t, link, node);
        node = node->next;
        if (!ctx->responded) {
            cancel_pending(ctx);
            metrics_inc(M_HTTP_SHED_SHUTDOWN);
            http_respond_error(ctx, 503, "shutting-down",
                               "the server is shutting down; retry on another instance");
        }
    }
}

/*
 * HTTP/1 framing checks h2o 2.2.5 does not make (http/h1head.h). It
 * consumes Content-Length and Transfer-Encoding without exposing them, so
 * the raw request head - still at the start of the socket's input buffer
 * while the request is processed - is read. Returns 0, 400, 414 or 431.
 */
static int check_h1_head(h2o_req_t *req, size_t max_head)
{
    if (req->version >= 0x200) {
        return 0;
    }
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock == NULL || sock->input == NULL) {
        return 0;
    }
    return http_h1_head_check(sock->input->bytes, sock->input->size, max_head);
}

/* A header's only value; STR_NULL when absent or given more than once. */
static str_t header_once(h2o_req_t *req, const char *name, size_t len)
{
    ssize_t i = h2o_find_header_by_str(&req->headers, name, len, -1);
    if (i < 0 || h2o_find_header_by_str(&req->headers, name, len, i) >= 0) {
        return STR_NULL;
    }
    return str_make(req->headers.entries[i].value.base, req->headers.entries[i].value.len);
}

/*
 * The request's span, from its traceparent (W3C Trace Context; two of them
 * are as good as none). tracestate is only read when the span will be
 * exported; several tracestate headers are one list (RFC 9110 section
 * 5.3), joined here.
 */
static void start_span(http_ctx_t *ctx)
{
    h2o_req_t *req = ctx->req;
    str_t tp = header_once(req, H2O_STRLIT("traceparent"));
    str_t ts = STR_NULL;
    if (tp.len > 0 && trace_exporting()) {
        size_t total = 0, n = 0;
        for (ssize_t i = -1; (i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("tracestate"), i)) >= 0;) {
            total += req->headers.entries[i].value.len + 1;
            n++;
        }
        if (n == 1) {
            ssize_t i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("tracestate"), -1);
            ts = str_make(req->headers.entries[i].value.base, req->headers.entries[i].value.len);
        } else if (n > 1 && total <= 4 * TRACESTATE_MAX) {
            char *joined = h2o_mem_alloc_pool(&req->pool, total);
            size_t len = 0;
            for (ssize_t i = -1;
                 (i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("tracestate"), i)) >= 0;) {
                h2o_iovec_t v = req->headers.entries[i].value;
                if (len > 0) {
                    joined[len++] = ',';
                }
                memcpy(joined + len, v.base, v.len);
                len += v.len;
            }
            ts = str_make(joined, len);
        }
    }
    trace_server_begin(&ctx->span, tp, ts, ctx->request_id);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    (void)self;
    http_worker_t *w = http_worker_of(req->conn->ctx);
    http_server_t *s = w->server;
    http_ctx_t *ctx = h2o_mem_alloc_shared(&req->pool, sizeof(*ctx), on_ctx_dispose);
    *ctx = (http_ctx_t){.req = req, .w = w, .start_us = trace_now_us()};
    timer_init(&ctx->deadline, on_deadline, ctx);
    w->inflight++;
    metrics_set(M_HTTP_ACTIVE, (int64_t)w->inflight);
    h2o_linklist_insert(&w->requests, &ctx->link);

    ssize_t hi = h2o_find_header_by_str(&req->headers, H2O_STRLIT("x-request-id"), -1);
    str_t given = hi >= 0 ? str_make(req->headers.entries[hi].value.base, req->headers.entries[hi].value.len)
                          : STR_NULL;
    if (http_reqid_valid(given)) {
        ctx->request_id = given; /* lives in the request's headers */
    } else {
        http_reqid_generate(ctx->request_id_buf);
        ctx->request_id = str_make(ctx->request_id_buf, HTTP_REQID_GEN_LEN);
    }
    ctx->method = http_method_parse(str_make(req->method.base, req->method.len));
    size_t plen = req->query_at != SIZE_MAX ? req->query_at : req->path.len;
    ctx->path = str_make(req->path.base, plen);
    start_span(ctx);

    if (w->stopping) {
        metrics_inc(M_HTTP_SHED_SHUTDOWN);
        http_respond_error(ctx, 503, "shutting-down",
                           "the server is shutting down; retry on another instance");
        return 0;
    }

    ctx->query =
        plen < req->path.len ? str_make(req->path.base + plen + 1, req->path.len - plen - 1) : STR("");

    /* Load shedding: past the in-flight cap a request costs one small
       response, never a queue slot (DESIGN.md, "Pool and load shedding"). */
    if (w->inflight > (uint64_t)s->opts.max_inflight) {
        http_problem_t p = {.status = 503,
                            .slug = "overloaded",
                            .title = "Server overloaded",
                            .detail = STR("too many requests in progress; retry shortly"),
                            .retry_after_s = 1};
        metrics_inc(M_HTTP_SHED_OVERLOADED);
        http_respond_problem(ctx, &p);
        return 0;
    }

    int framing = check_h1_head(req, (size_t)s->opts.max_header_bytes);
    if (framing != 0) {
        req->http1_is_persistent = 0;
        http_respond_error(ctx, framing,
                           framing == 431   ? "headers-too-large"
                           : framing == 414 ? "uri-too-long"
                                            : "bad-request",
                           framing == 431   ? "the request's headers are larger than the server accepts"
                           : framing == 414 ? "the request target is longer than the server accepts"
                                            : "conflicting Content-Length / Transfer-Encoding framing");
        return 0;
    }
    /* h2o is given one byte more than the limit (its chunked reader rejects a
       body of exactly the limit), so the limit itself is checked here. */
    if (req->entity.base != NULL && req->entity.len > (size_t)s->opts.max_body_bytes) {
        req->http1_is_persistent = 0;
        http_respond_error(ctx, 413, "body-too-large", "the request body is larger than the server accepts");
        return 0;
    }

    ctx->route_status = http_router_match(s->router, ctx->method, ctx->path, &ctx->match);
    int64_t timeout = s->opts.request_timeout_ms;
    if (ctx->match.route != NULL && ctx->match.route->timeout_ms > 0 &&
        ctx->match.route->timeout_ms < timeout) {
        timeout = ctx->match.route->timeout_ms;
    }
    ctx->deadline_ms = clock_mono_ms() + (uint64_t)timeout;
    if (timer_arm(&w->timers, &ctx->deadline, ctx->deadline_ms) != 0) {
        http_respond_err(ctx, ERR_UNAVAILABLE);
        return 0;
    }
    const trace_scope_t *prev = trace_scope_enter(&ctx->span.scope);
    s->dispatch(ctx);
    trace_scope_leave(prev);
    return 0;
}

/* ---- problem filter for h2o's own error responses ---- */

typedef struct {
    h2o_ostream_t super;
    h2o_iovec_t body;
} problem_ostream_t;

static void problem_do_send(h2o_ostream_t *self, h2o_req_t *req, h2o_iovec_t *bufs, size_t bufcnt,
                            h2o_send_state_t state)
{
    problem_ostream_t *o = (problem_ostream_t *)self;
    (void)bufs;
    if (h2o_send_state_is_in_progress(state) || bufcnt == 0) {
        /* bufcnt == 0 on a final send: a HEAD request, headers only */
        h2o_ostream_send_next(self, req, NULL, 0, state);
        return;
    }
    h2o_ostream_send_next(self, req, &o->body, 1, state);
}

static const char *slug_for_status(int status)
{
    switch (status) {
    case 413:
        return "body-too-large";
    case 431:
        return "headers-too-large";
    case 404:
        return "not-found";
    default:
        return status >= 500 ? "internal" : "bad-request";
    }
}

static void on_setup_problem_ostream(h2o_filter_t *self, h2o_req_t *req, h2o_ostream_t **slot)
{
    (void)self;
    int status = req->res.status;
    if (sending_own || status < 400) {
        h2o_setup_next_ostream(req, slot);
        return;
    }
    http_worker_t *w = http_worker_of(req->conn->ctx);
    char detail[160];
    snprintf(detail, sizeof(detail), "%s",
             status == 413 ? "the request body is larger than the server accepts"
                           : "the request could not be read");
    http_problem_t p = {.status = status, .slug = slug_for_status(status), .detail = str_from_cstr(detail)};
    buf_reset(&w->scratch);
    http_problem_render(&w->scratch, &p);
    h2o_iovec_t body = h2o_strdup(&req->pool, w->scratch.ptr, w->scratch.len);

    char idbuf[HTTP_REQID_GEN_LEN];
    http_reqid_generate(idbuf);
    h2o_iovec_t id = h2o_strdup(&req->pool, idbuf, sizeof(idbuf));
    h2o_set_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE,
                   H2O_STRLIT(HTTP_PROBLEM_CONTENT_TYPE), 1);
    h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("x-request-id"), 0, NULL, id.base,
                          id.len);
    req->res.content_length = body.len;
    add_security_headers(req, status);
    /* An answer h2o made itself (no context, no route): the request still
       gets ids, a log line and its place in the metrics. */
    trace_server_t span;
    trace_server_begin(&span, STR_NULL, STR_NULL, STR_NULL);
    int64_t began =
        (int64_t)req->timestamps.request_begin_at.tv_sec * 1000000 + req->timestamps.request_begin_at.tv_usec;
    int64_t took = req->timestamps.request_begin_at.tv_sec != 0 ? clock_wall_us() - began : 0;
    access_t a = {.request_id = str_make(id.base, id.len),
                  .status = status,
                  .bytes = body.len,
                  .duration_us = took > 0 ? (uint64_t)took : 0,
                  .trace_id = span.scope.trace_id,
                  .span_id = span.scope.span_id};
    log_access(w, req, &a);
    metrics_http_observe(method_label(http_method_parse(str_make(req->method.base, req->method.len))), 0,
                         (unsigned)status, a.duration_us);

    problem_ostream_t *o = (problem_ostream_t *)h2o_add_ostream(req, sizeof(*o), slot);
    o->super.do_send = problem_do_send;
    o->body = body;
    slot = &o->super.next;
    h2o_setup_next_ostream(req, slot);
}

/* ---- set-up ---- */

int http_server_init(http_server_t *s, const http_server_opts_t *opts, const http_route_t *routes,
                     size_t nroutes, http_dispatch_fn dispatch)
{
    *s = (http_server_t){.opts = *opts, .dispatch = dispatch, .routes = routes, .nroutes = nroutes};
    s->router = http_router_new(routes, nroutes, opts->debug_routes ? HTTP_ROUTE_DEBUG : 0);
    if (s->router == NULL) {
        return ERR_NOMEM;
    }
    h2o_config_init(&s->h2o);
    s->h2o.server_name = h2o_iovec_init(H2O_STRLIT("")); /* no Server header */
    s->h2o.max_request_entity_size = (size_t)opts->max_body_bytes + 1;
    s->h2o.http1.req_timeout = (uint64_t)opts->header_timeout_ms;
    /* h2o 2.2.5's HTTP/2 lacks the Rapid Reset (CVE-2023-44487) fix; this
       switch also gates h2c prior-knowledge detection. */
    s->h2o.http1.upgrade_to_http2 = opts->http2 ? 1 : 0;
    s->h2o.http2.idle_timeout = (uint64_t)opts->header_timeout_ms;
    s->h2o.http2.graceful_shutdown_timeout = (uint64_t)opts->header_timeout_ms;
    s->host = h2o_config_register_host(&s->h2o, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    h2o_pathconf_t *pc = h2o_config_register_path(s->host, "/", 0);
    h2o_handler_t *h = h2o_create_handler(pc, sizeof(*h));
    h->on_req = on_req;
    /* h2o's own errors bind the host's fallback path, ours bind "/" */
    h2o_filter_t *f = h2o_create_filter(pc, sizeof(*f));
    f->on_setup_ostream = on_setup_problem_ostream;
    f = h2o_create_filter(&s->host->fallback_path, sizeof(*f));
    f->on_setup_ostream = on_setup_problem_ostream;
    return 0;
}

void http_server_deinit(http_server_t *s)
{
    h2o_config_dispose(&s->h2o);
    http_router_free(s->router);
    s->router = NULL;
}

int http_listen(const char *host, int port, int *fd_out, char *err, size_t errlen)
{
    struct sockaddr_storage ss = {0};
    socklen_t sl;
    struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
    if (inet_pton(AF_INET, host, &sin->sin_addr) == 1) {
        sin->sin_family = AF_INET;
        sin->sin_port = htons((uint16_t)port);
        sl = sizeof(*sin);
    } else if (inet_pton(AF_INET6, host, &sin6->sin6_addr) == 1) {
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons((uint16_t)port);
        sl = sizeof(*sin6);
    } else {
        snprintf(err, errlen, "invalid HOST \"%s\": expected a numeric IPv4 or IPv6 address", host);
        return ERR_INVAL;
    }
    int fd = socket(ss.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    if (fd < 0) {
        snprintf(err, errlen, "socket: %s", strerror(errno));
        return ERR_IO;
    }
    int one = 1;
    /* SO_REUSEPORT: one listener per worker, and a new process can bind
       the port while the old one drains (zero-downtime restarts). */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) != 0 ||
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) != 0) {
        snprintf(err, errlen, "setsockopt: %s", strerror(errno));
        close(fd);
        return ERR_IO;
    }
    if (bind(fd, (struct sockaddr *)&ss, sl) != 0 || listen(fd, LISTEN_BACKLOG) != 0) {
        snprintf(err, errlen, "cannot listen on %s:%d (HOST/PORT): %s", host, port, strerror(errno));
        close(fd);
        return ERR_IO;
    }
    *fd_out = fd;
    return 0;
}

/* ---- connections ----
 *
 * Every accepted socket gets a record on its worker's list, removed when the
 * socket closes. During shutdown that list answers "is anything still in
 * flight?" without h2o's private structures: HTTP/1 keeps a request's bytes
 * in the socket's input buffer from the first byte until its response has
 * been written (h2o 2.2.5 lib/http1.c consumes them in on_send_complete),
 * so a non-empty buffer - or bytes still in the kernel - means a request in
 * flight. HTTP/2 streams are enumerated with h2o's public foreach_request
 * (every open stream has a request, also while it still receives DATA).
 */

static void on_accept(h2o_socket_t *listener, const char *err);

/* Accepts again, unless at MAX_CONNECTIONS or backing off after EMFILE.
   (h2o_socket_read_start sets the callback: it must be on_accept.) */
static void accept_maybe_resume(http_worker_t *w)
{
    if (w->listener != NULL && w->listener_paused && !w->accept_backoff &&
        w->conns < (uint64_t)w->server->opts.max_connections) {
        w->listener_paused = false;
        h2o_socket_read_start(w->listener, on_accept);
    }
}

static void on_conn_close(void *data)
{
    http_conn_t *c = data;
    http_worker_t *w = c->w;
    h2o_linklist_unlink(&c->link);
    free(c);
    w->conns--;
    accept_maybe_resume(w);
}

/* The registry entry of the connection a request came on (NULL for a
   connection this worker did not accept, which does not happen today). */
static http_conn_t *conn_of(h2o_req_t *req)
{
    h2o_socket_t *sock =
        req->conn->callbacks->get_socket ? req->conn->callbacks->get_socket(req->conn) : NULL;
    return sock != NULL && sock->on_close.cb == on_conn_close ? sock->on_close.data : NULL;
}

static void on_accept_resume(struct timer *t)
{
    http_worker_t *w = t->data;
    w->accept_backoff = false;
    accept_maybe_resume(w);
}

static void pause_accepting(http_worker_t *w)
{
    h2o_socket_read_stop(w->listener);
    w->listener_paused = true;
}

static void on_accept(h2o_socket_t *listener, const char *err)
{
    http_worker_t *w = listener->data;
    if (err != NULL) {
        return;
    }
    for (int i = 0; i < ACCEPTS_PER_WAKE; i++) {
        if (w->conns >= (uint64_t)w->server->opts.max_connections) {
            /* Leave the rest in the kernel backlog (and to other workers)
               until a connection closes. */
            pause_accepting(w);
            return;
        }
        http_conn_t *c = malloc(sizeof(*c));
        if (c == NULL) {
            return;
        }
        errno = 0;
        h2o_socket_t *sock = h2o_evloop_socket_accept(listener);
        if (sock == NULL) {
            int e = errno;
            free(c);
            if (e == EMFILE || e == ENFILE || e == ENOBUFS || e == ENOMEM) {
                if (!w->accept_backoff) {
                    log_warn("worker %u: cannot accept (%s) with %llu connections open; pausing %d ms", w->id,
                             strerror(e), (unsigned long long)w->conns, ACCEPT_BACKOFF_MS);
                }
                pause_accepting(w);
                w->accept_backoff =
                    timer_arm(&w->timers, &w->accept_resume, clock_mono_ms() + ACCEPT_BACKOFF_MS) == 0;
            }
            return;
        }
        *c = (http_conn_t){.w = w, .sock = sock};
        h2o_linklist_insert(&w->connections, &c->link);
        w->conns++;
        sock->on_close.cb = on_conn_close;
        sock->on_close.data = c;
        h2o_accept(&w->accept, sock);
    }
}

int http_worker_init(http_worker_t *w, http_server_t *s, unsigned id, int listen_fd)
{
    *w = (http_worker_t){.server = s, .id = id};
    h2o_context_init(&w->h2o, h2o_evloop_create(), &s->h2o);
    w->accept.ctx = &w->h2o;
    w->accept.hosts = s->h2o.hosts;
    timer_heap_init(&w->timers);
    timer_init(&w->accept_resume, on_accept_resume, w);
    h2o_linklist_init_anchor(&w->requests);
    h2o_linklist_init_anchor(&w->connections);
    buf_init(&w->scratch, SCRATCH_MAX);
    w->listener = h2o_evloop_socket_create(w->h2o.loop, listen_fd, H2O_SOCKET_FLAG_DONT_READ);
    w->listener->data = w;
    h2o_socket_read_start(w->listener, on_accept);
    return 0;
}

void http_worker_run_once(http_worker_t *w, int32_t max_wait_ms)
{
    int32_t wait = timer_heap_next_wait(&w->timers, clock_mono_ms(), max_wait_ms);
    trace_new_turn(); /* span and request times: read after the wait */
    h2o_evloop_run(w->h2o.loop, wait);
    trace_new_turn();
    timer_heap_run(&w->timers, clock_mono_ms());
}

void http_worker_stop_accepting(http_worker_t *w)
{
    if (w->listener == NULL) {
        return;
    }
    /* Accept what is already queued on this listener first: closing a
       SO_REUSEPORT socket resets the connections in its backlog. */
    if (!w->listener_paused) {
        on_accept(w->listener, NULL);
    }
    timer_cancel(&w->timers, &w->accept_resume);
    h2o_socket_read_stop(w->listener);
    h2o_socket_close(w->listener);
    w->listener = NULL;
}

void http_worker_request_shutdown(http_worker_t *w)
{
    h2o_context_request_shutdown(&w->h2o);
    /* What HTTP/2 does next (lib/http2/connection.c): one second after the
       first GOAWAY it sends the final one, and from then on drops DATA
       frames and closes a connection as soon as no stream is sending its
       response - cutting off uploads and requests still being handled.
       http_worker_close_idle() holds that step back while streams are
       open; this is the callback it will run then. */
    w->h2_goaway_cb = w->h2o.http2._graceful_shutdown_timeout.cb;
}

static int mark_stream(h2o_req_t *req, void *data)
{
    size_t *n = data;
    (*n)++;
    h2o_socket_t *sock = req->conn->callbacks->get_socket(req->conn);
    if (sock != NULL && sock->on_close.cb == on_conn_close) {
        ((http_conn_t *)sock->on_close.data)->h2_streams = true;
    }
    return 0;
}

/* Marks the connections that carry HTTP/2 streams; returns how many
   streams are open on this worker. */
static size_t h2_scan(http_worker_t *w)
{
    for (h2o_linklist_t *n = w->connections.next; n != &w->connections; n = n->next) {
        H2O_STRUCT_FROM_MEMBER(http_conn_t, link, n)->h2_streams = false;
    }
    size_t streams = 0;
    H2O_HTTP2_CALLBACKS.foreach_request(&w->h2o, mark_stream, &streams);
    return streams;
}

/* A connection with bytes of a request received (by h2o, or still in the
   kernel) that has not been answered. An HTTP/2 connection without streams
   looks idle here too, and is: closing it loses nothing. */
static bool conn_busy(const http_conn_t *c)
{
    if (c->h2_streams || (c->sock->input != NULL && c->sock->input->size > 0)) {
        return true;
    }
    int queued = 0;
    return ioctl(h2o_socket_get_fd(c->sock), FIONREAD, &queued) == 0 && queued > 0;
}

bool http_worker_busy(http_worker_t *w)
{
    size_t streams = h2_scan(w);
    /* HTTP/2: the first GOAWAY is out; the final one waits until no stream
       is open. */
    h2o_timeout_entry_t *e = &w->h2o.http2._graceful_shutdown_timeout;
    if (w->h2_goaway_cb != NULL && e->cb == w->h2_goaway_cb) {
        if (streams > 0) {
            if (h2o_timeout_is_linked(e)) {
                h2o_timeout_unlink(e);
            }
            w->h2_goaway_held = true;
        } else if (w->h2_goaway_held && !h2o_timeout_is_linked(e)) {
            w->h2_goaway_held = false;
            e->cb(e); /* idle HTTP/2 connections close as it goes out */
        }
    }
    if (w->inflight > 0 || streams > 0) {
        return true;
    }
    for (h2o_linklist_t *n = w->connections.next; n != &w->connections; n = n->next) {
        if (conn_busy(H2O_STRUCT_FROM_MEMBER(http_conn_t, link, n))) {
            return true;
        }
    }
    return false;
}

void http_worker_close_idle(http_worker_t *w)
{
    (void)h2_scan(w);
    /* An idle connection is shut down under h2o, which sees the end of the
       stream and closes it the normal way. */
    for (h2o_linklist_t *n = w->connections.next; n != &w->connections; n = n->next) {
        http_conn_t *c = H2O_STRUCT_FROM_MEMBER(http_conn_t, link, n);
        if (!conn_busy(c)) {
            (void)shutdown(h2o_socket_get_fd(c->sock), SHUT_RDWR);
        }
    }
}

void http_worker_stop_dispatching(http_worker_t *w)
{
    w->stopping = true;
}

/* Closes every connection left: at the end, whatever state it is in. */
static void close_all(http_worker_t *w)
{
    for (h2o_linklist_t *n = w->connections.next; n != &w->connections; n = n->next) {
        http_conn_t *c = H2O_STRUCT_FROM_MEMBER(http_conn_t, link, n);
        (void)shutdown(h2o_socket_get_fd(c->sock), SHUT_RDWR);
    }
    /* HTTP/2 connections also close on their own idle timeout; run it. */
    h2o_timeout_run(w->h2o.loop, &w->h2o.http2.idle_timeout, UINT64_MAX);
}

void http_worker_deinit(http_worker_t *w)
{
    http_worker_stop_accepting(w);
    w->stopping = true;
    h2o_evloop_t *loop = w->h2o.loop;
    /* let closes and final writes complete before the context goes */
    for (int i = 0; i < 50 && w->conns > 0; i++) {
        close_all(w);
        h2o_evloop_run(loop, 10);
        timer_heap_run(&w->timers, clock_mono_ms());
    }
    if (w->conns > 0) {
        log_warn("worker %u: %llu connections still open at exit", w->id, (unsigned long long)w->conns);
    }
    /* h2o_context_request_shutdown() arms HTTP/2's GOAWAY re-send timer even
       with no HTTP/2 connection, and h2o_context_dispose() asserts every
       timeout list is empty: the connections are gone, so drop it. */
    if (h2o_timeout_is_linked(&w->h2o.http2._graceful_shutdown_timeout)) {
        h2o_timeout_unlink(&w->h2o.http2._graceful_shutdown_timeout);
    }
    timer_cancel(&w->timers, &w->accept_resume);
    h2o_context_dispose(&w->h2o);
    h2o_evloop_destroy(loop);
    timer_heap_deinit(&w->timers);
    buf_deinit(&w->scratch);
}
