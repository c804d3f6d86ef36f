/*
 * server: h2o set-up, workers, and the per-request context.
 *
 * One http_server_t is shared read-only by all workers. Each worker owns an
 * h2o event loop and context, its SO_REUSEPORT listener, a timer heap, and
 * (through forward-declared pointers) its own database pool, Redis client and
 * so on: nothing on the hot path is shared between threads.
 *
 * Every request gets an http_ctx_t from its own memory pool. The context dies
 * with the request, so anything asynchronous holds an http_pending_t instead
 * of a bare pointer: when the request goes away first (deadline answered,
 * HTTP/2 stream reset) the pending's ctx becomes NULL, and a late completion
 * sees that and drops its result. A response is sent exactly once; later
 * attempts are ignored.
 */
#ifndef HTTP_SERVER_H
#define HTTP_SERVER_H

#if H2O_USE_LIBUV
#error "build with -DH2O_USE_LIBUV=0: h2o's structs differ between its loops"
#endif

#include <h2o.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "base/buf.h"
#include "base/str.h"
#include "base/timer.h"
#include "http/forwarded.h"
#include "http/problem.h"
#include "http/reqid.h"
#include "http/router.h"
#include "obs/trace.h"

typedef struct http_ctx http_ctx_t;
typedef struct http_worker http_worker_t;

typedef struct {
    int64_t request_timeout_ms;
    int64_t header_timeout_ms;
    int64_t write_timeout_ms; /* a response not taken by the client in this long: connection closed */
    int64_t max_body_bytes;
    int64_t max_header_bytes; /* request line + headers (HTTP/1) */
    int64_t max_connections;  /* per worker */
    int64_t max_inflight;     /* per worker */
    bool http2;
    bool debug_routes;
    const http_cidrs_t *trusted_proxies; /* whose X-Forwarded-For is believed (NULL: none) */
} http_server_opts_t;

/* Runs a request that has its context and route match; see middleware/. */
typedef void (*http_dispatch_fn)(http_ctx_t *ctx);

typedef struct http_server {
    h2o_globalconf_t h2o;
    h2o_hostconf_t *host;
    http_router_t *router;
    http_server_opts_t opts;
    http_dispatch_fn dispatch;
    const http_route_t *routes; /* the table: a route's metric label is its index + 1 */
    size_t nroutes;
    _Atomic bool draining; /* shutdown has begun: readiness is 503 */
    /* (worker, required dependency) pairs that are down; readiness needs 0.
       Starts at the number of workers (no pool connected yet). */
    _Atomic int deps_down;
} http_server_t;

struct http_worker {
    http_server_t *server;
    unsigned id;
    h2o_context_t h2o;
    h2o_accept_ctx_t accept;
    h2o_socket_t *listener;
    bool listener_paused; /* at MAX_CONNECTIONS */
    bool accept_backoff;  /* out of file descriptors: accepting again soon */
    struct timer accept_resume;
    timer_heap_t timers;
    buf_t scratch; /* response rendering; used synchronously only */
    uint64_t inflight;
    uint64_t conns;
    h2o_linklist_t connections; /* every accepted connection (see server.c) */
    h2o_linklist_t requests;    /* http_ctx_t.link of every request in progress */
    bool stopping;              /* torn down: requests get 503, nothing is dispatched */
    bool h2_goaway_held;        /* HTTP/2's final GOAWAY waits for streams still receiving */
    void (*h2_goaway_cb)(h2o_timeout_entry_t *entry);
    /* subsystems owned by this worker, set up by app/ (NULL when absent) */
    struct db_pool *db;
    struct redis_client *redis;
    struct users_svc *users;
    void *app;
};

/* An asynchronous operation working for a request; see the file comment. */
typedef struct http_pending http_pending_t;
struct http_pending {
    http_ctx_t *ctx;                   /* NULL once the request is gone */
    void (*cancel)(http_pending_t *p); /* optional: deadline passed, stop the work */
};

struct http_ctx {
    h2o_req_t *req;
    http_worker_t *w;
    str_t request_id;
    char request_id_buf[HTTP_REQID_GEN_LEN];
    trace_server_t span;   /* its ids (also in the access log); span.scope is the request's trace scope */
    uint64_t start_us;     /* monotonic: the loop turn it was read in (obs/trace.h trace_now_us) */
    uint64_t deadline_ms;  /* monotonic */
    struct timer deadline; /* then, once answered: the write timeout */
    unsigned method;
    str_t client; /* http_client_addr(), once computed */
    char client_buf[HTTP_ADDR_MAX];
    str_t path;  /* raw, without the query */
    str_t query; /* after '?', possibly empty */
    http_route_status_t route_status;
    http_match_t match;
    unsigned step; /* the pipeline's position */
    bool responded;
    int status;
    size_t bytes;
    http_pending_t *pending;
    h2o_linklist_t link; /* in w->requests */
    /* the authenticated caller (middleware/auth), views into the pool */
    bool authenticated;
    str_t subject;  /* the token's sub; empty when it has none */
    str_t scopes;   /* space-separated */
    int auth_error; /* why a sent token was refused (jwt_error_t); 0: none sent */
    /* idempotency (middleware/idempotency): its state, and a hook that sees
       the final answer before it is sent. A hook that returns true has
       taken the answer and sends it later itself (it is called once).
       answer_retryable: the answer being sent is not the request's outcome
       (http_problem_t.retryable). */
    void *idem;
    bool answer_retryable;
    bool (*on_respond)(http_ctx_t *ctx, int status, str_t content_type, str_t body);
};

/* ---- server and workers (main thread, then each worker's own thread) ---- */

int http_server_init(http_server_t *s, const http_server_opts_t *opts, const http_route_t *routes,
                     size_t nroutes, http_dispatch_fn dispatch) __attribute__((warn_unused_result));
void http_server_deinit(http_server_t *s);

/*
 * Opens a listening TCP socket with SO_REUSEPORT on host:port (host numeric).
 * Returns 0 and the fd, or ERR_IO with a message in err.
 */
int http_listen(const char *host, int port, int *fd, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Sets up w on the calling thread; takes ownership of listen_fd. */
int http_worker_init(http_worker_t *w, http_server_t *s, unsigned id, int listen_fd)
    __attribute__((warn_unused_result));
/* Runs the loop once: waits at most max_wait_ms for I/O, then due timers. */
void http_worker_run_once(http_worker_t *w, int32_t max_wait_ms);
/* Closes the listener: new connections go to other processes or are refused. */
void http_worker_stop_accepting(http_worker_t *w);
/* Asks h2o to wind down: GOAWAY on HTTP/2, no more keep-alive on HTTP/1. */
void http_worker_request_shutdown(http_worker_t *w);
/*
 * Whether anything is still in flight on this worker: a request being
 * handled, or a connection that has received bytes of a request not yet
 * answered - a head still arriving, a body still uploading (also after
 * `Expect: 100-continue`), an HTTP/2 stream still receiving DATA. A request
 * is in flight from its first byte. Called on every turn of the drain, it
 * also holds back HTTP/2's final GOAWAY while streams are open (after it,
 * h2o 2.2.5 drops DATA and closes connections with requests still being
 * handled), and lets it go out when none are.
 */
bool http_worker_busy(http_worker_t *w);
/* Closes the connections that are idle (nothing received, nothing to send):
   the end of the drain. */
void http_worker_close_idle(http_worker_t *w);
/* From now on requests are answered 503 at once and never dispatched: the
   subsystems they would reach are about to be freed. */
void http_worker_stop_dispatching(http_worker_t *w);
/* Answers every request still in progress with 503 and cancels its pending
   work: the end of the shutdown grace period. */
void http_worker_abort_requests(http_worker_t *w);
void http_worker_deinit(http_worker_t *w);

/* ---- per request (worker thread) ---- */

/* Adds a response header. The name is not copied: it must outlive the
   request and be lower case (a literal: STR("etag")); the value is copied
   into the request's pool. */
void http_header_add(http_ctx_t *ctx, str_t name, str_t value);
/* A request header's value (names are lower case), or STR_NULL. */
str_t http_header_get(const http_ctx_t *ctx, str_t name);
/* The request's remote address as text, written into out (INET6_ADDRSTRLEN). */
str_t http_peer_addr(const http_ctx_t *ctx, char *out, size_t outlen);
/* The client's address: the peer, or behind a trusted proxy the one
   X-Forwarded-For names (http/forwarded.h). Computed once per request; the
   view lives as long as the request. Rate limits and the access log use it. */
str_t http_client_addr(http_ctx_t *ctx);

/* The worker's scratch buffer, emptied. Valid until the next response. */
buf_t *http_scratch(http_ctx_t *ctx);

/* Sends status with body (copied). Cancels the deadline; logs the access line. */
void http_respond(http_ctx_t *ctx, int status, str_t content_type, str_t body);
void http_respond_json(http_ctx_t *ctx, int status, const buf_t *body);
void http_respond_problem(http_ctx_t *ctx, const http_problem_t *p);
void http_respond_error(http_ctx_t *ctx, int status, const char *slug, const char *detail);
void http_respond_err(http_ctx_t *ctx, int err);
/* A 400/422 problem naming one offending field or parameter. */
void http_respond_invalid(http_ctx_t *ctx, int status, str_t field, const char *message, const char *detail);

/* Milliseconds left before the deadline (0 when passed). */
int64_t http_deadline_left_ms(const http_ctx_t *ctx);

/* Ties an async operation to ctx (at most one at a time). */
void http_pending_attach(http_ctx_t *ctx, http_pending_t *p);
/* Unties p; returns its request if it still awaits an answer, else NULL. */
http_ctx_t *http_pending_finish(http_pending_t *p);

static inline http_worker_t *http_worker_of(h2o_context_t *c)
{
    return H2O_STRUCT_FROM_MEMBER(http_worker_t, h2o, c);
}

#endif
