/*
 * app: the server process as a list of phases.
 *
 *   app_serve:  setup -> start -> wait for a signal -> drain -> stop
 *   worker:     subsystems up -> serve -> drain -> subsystems down
 *
 * Each phase is one function with one exit. The main thread owns the
 * phases; workers notice a phase change when their loop is woken.
 */
#include "app/app.h"
#include "app/notify.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "app/auth.h"
#include "base/clock.h"
#include "base/err.h"
#include "db/conninfo.h"
#include "db/idem.h"
#include "db/pool.h"
#include "http/server.h"
#include "middleware/idempotency.h"
#include "middleware/pipeline.h"
#include "middleware/ratelimit.h"
#include "obs/log.h"
#include "obs/metrics.h"
#include "obs/otlp.h"
#include "obs/trace.h"
#include "redis/client.h"
#include "routes/cursor.h"
#include "routes/routes.h"
#include "services/users.h"
#include "base/banned.h"

#define LOG_RING_BYTES   (1u << 20)
#define LOOP_MAX_WAIT_MS 1000
#define DRAIN_WAIT_MS    20
#define PURGE_EVERY_MS   10000
/* File descriptors kept back from MAX_CONNECTIONS per worker: database and
   Redis sockets, the listener, log and cancel sockets, accept headroom. */
#define FDS_RESERVED_PER_WORKER 32
#define FDS_RESERVED            64

typedef enum { PHASE_RUN, PHASE_CLOSE, PHASE_ABORT } phase_t;

typedef struct worker {
    struct app *app;
    idem_purger_t *purger; /* worker 0: expired idempotency keys */
    unsigned id;
    int listen_fd;
    pthread_t thread;
    http_worker_t http;
    h2o_multithread_receiver_t wake; /* main -> worker: "look at the phase" */
    _Atomic bool ready;              /* wake is registered; cleared under app->wake_lock */
    _Atomic bool done;
    int init_rc;
} worker_t;

typedef struct app {
    const config_t *cfg;
    const sigset_t *signals;
    /* app_setup */
    char *conninfo; /* DATABASE_URL with host names resolved */
    db_stmt_t *stmts;
    db_pool_opts_t db_opts;
    bool use_redis;
    redis_opts_t redis_opts;
    users_svc_opts_t users_opts;
    bool auth_started;
    bool notify_started;
    bool cancel_started;
    bool metrics_ready;
    bool otlp_started;
    bool server_ready;
    http_server_t server;
    http_cidrs_t trusted_proxies;
    /* app_start */
    worker_t *workers;
    unsigned nworkers;
    unsigned nlisteners;
    unsigned nthreads;
    _Atomic int phase;
    _Atomic int busy_workers; /* drain: workers with something in flight */
    pthread_barrier_t started;
    /* Held by the main thread while it wakes workers and by a worker while
       it stops being wakeable: a worker's queue dies with its h2o context,
       and a wake sent to a dead queue locks a destroyed mutex and writes a
       byte to a closed descriptor, which by then may be another file's. */
    pthread_mutex_t wake_lock;
} app_t;

/* ---- a worker's life ---- */

static void on_wake(h2o_multithread_receiver_t *r, h2o_linklist_t *messages)
{
    /* only ever woken with no message; the loop then re-reads the phase */
    (void)r;
    (void)messages;
}

/* The worker's loop, its pool, Redis client and services. */
static int worker_up(worker_t *wk)
{
    app_t *app = wk->app;
    http_worker_t *w = &wk->http;
    int rc = http_worker_init(w, &app->server, wk->id, wk->listen_fd);
    if (rc != 0) {
        return rc;
    }
    db_pool_opts_t dbo = app->db_opts;
    dbo.worker_id = wk->id;
    dbo.down_counter = &app->server.deps_down;
    w->db = db_pool_new(w->h2o.loop, &w->timers, &dbo);
    if (w->db == NULL) {
        return ERR_NOMEM;
    }
    if (app->use_redis) {
        redis_opts_t ro = app->redis_opts;
        ro.worker_id = wk->id;
        w->redis = redis_client_new(w->h2o.loop, &w->timers, &ro);
        if (w->redis == NULL) {
            return ERR_NOMEM;
        }
    }
    w->users = users_svc_new(w->db, w->redis, &app->users_opts);
    if (w->users == NULL) {
        return ERR_NOMEM;
    }
    if (wk->id == 0) {
        wk->purger = idem_purger_start(w->db, &w->timers, PURGE_EVERY_MS);
        if (wk->purger == NULL) {
            return ERR_NOMEM;
        }
    }
    h2o_multithread_register_receiver(w->h2o.queue, &wk->wake, on_wake);
    atomic_store(&wk->ready, true);
    return 0;
}

/* One turn of the worker's loop, counted for the service manager's
   watchdog (notify.h): it is fed only while every loop turns. */
static void worker_turn(worker_t *wk, int32_t max_wait_ms)
{
    http_worker_run_once(&wk->http, notify_loop_wait_ms(max_wait_ms));
    notify_worker_turn(wk->id);
}

/* Serves until the main thread moves past PHASE_RUN. */
static void worker_serve(worker_t *wk)
{
    while (atomic_load(&wk->app->phase) == PHASE_RUN) {
        worker_turn(wk, LOOP_MAX_WAIT_MS);
    }
}

/*
 * The listener closes and keep-alive ends; the loop keeps turning until no
 * connection is busy - a request is in flight from its first byte, so one
 * still uploading its body counts - or the grace period ends, when what is
 * left gets 503. Idle keep-alive connections stay open meanwhile: a request
 * sent on one is served (and answered with `Connection: close`), and a
 * client polling readiness on one sees the 503. They close at the end, once
 * no worker of the process is busy.
 */
static void worker_drain(worker_t *wk)
{
    app_t *app = wk->app;
    http_worker_t *w = &wk->http;
    uint64_t grace_end = clock_mono_ms() + (uint64_t)app->cfg->shutdown_grace_ms;
    http_worker_stop_accepting(w);
    http_worker_request_shutdown(w);
    /* The process drains as one: a worker with nothing left keeps its idle
       connections (and answers readiness 503 on them) until no worker is
       busy, so a client sees one end, not one per worker. */
    bool counted = true; /* in app->busy_workers */
    for (;;) {
        bool busy = http_worker_busy(w);
        if (busy != counted) {
            atomic_fetch_add(&app->busy_workers, busy ? 1 : -1);
            counted = busy;
        }
        if (!busy && atomic_load(&app->busy_workers) == 0) {
            break;
        }
        if (clock_mono_ms() >= grace_end || atomic_load(&app->phase) == PHASE_ABORT) {
            log_warn("worker %u: grace period over, aborting %llu requests", wk->id,
                     (unsigned long long)w->inflight);
            http_worker_abort_requests(w);
            /* let the 503s go out */
            for (int i = 0; i < 10 && w->inflight > 0; i++) {
                worker_turn(wk, 10);
            }
            break;
        }
        worker_turn(wk, DRAIN_WAIT_MS);
    }
    http_worker_close_idle(w);
    /* From here on a request that still reaches this worker (an HTTP/2
       stream opened during teardown) is answered 503, never dispatched to
       the subsystems about to be freed. */
    http_worker_stop_dispatching(w);
}

static void worker_down(worker_t *wk)
{
    http_worker_t *w = &wk->http;
    if (atomic_load(&wk->ready)) {
        pthread_mutex_lock(&wk->app->wake_lock);
        atomic_store(&wk->ready, false);
        pthread_mutex_unlock(&wk->app->wake_lock);
        h2o_multithread_unregister_receiver(w->h2o.queue, &wk->wake);
    }
    idem_purger_stop(wk->purger);
    wk->purger = NULL;
    /* Order matters: the pool's last callbacks may still talk to Redis and
       to the users service, and Redis's last callbacks to the service. */
    db_pool_free(w->db);
    w->db = NULL;
    redis_client_free(w->redis);
    w->redis = NULL;
    users_svc_free(w->users);
    w->users = NULL;
    if (w->server != NULL) {
        http_worker_deinit(w);
    }
}

static void *worker_main(void *arg)
{
    worker_t *wk = arg;
    if (log_thread_attach(LOG_RING_BYTES) != 0) {
        log_warn("worker %u: no log ring, logging synchronously", wk->id);
    }
    if (metrics_thread_attach() != 0 || trace_thread_attach() != 0) {
        log_warn("worker %u: out of memory for its metrics or span queue; they are not recorded", wk->id);
    }
    wk->init_rc = worker_up(wk);
    pthread_barrier_wait(&wk->app->started);
    if (wk->init_rc == 0) {
        worker_serve(wk);
        worker_drain(wk);
    }
    worker_down(wk);
    atomic_store(&wk->done, true);
    log_thread_detach();
    return NULL;
}

/* ---- the main thread's phases ---- */

static void wake_workers(app_t *app)
{
    pthread_mutex_lock(&app->wake_lock);
    for (unsigned i = 0; i < app->nthreads; i++) {
        if (atomic_load(&app->workers[i].ready)) {
            h2o_multithread_send_message(&app->workers[i].wake, NULL);
        }
    }
    pthread_mutex_unlock(&app->wake_lock);
}

static bool all_done(app_t *app)
{
    for (unsigned i = 0; i < app->nthreads; i++) {
        if (!atomic_load(&app->workers[i].done)) {
            return false;
        }
    }
    return true;
}

/* Waits up to ms (-1: forever) for SIGTERM/SIGINT. Returns it, or 0. */
static int wait_signal(const sigset_t *set, int64_t ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000};
    for (;;) {
        int sig = ms < 0 ? sigwaitinfo(set, NULL) : sigtimedwait(set, NULL, &ts);
        if (sig > 0) {
            return sig;
        }
        if (errno == EAGAIN) {
            return 0;
        }
        /* EINTR: some other signal; wait again */
    }
}

/* A second signal during shutdown: leave now. Workers are still running
   and writing into their log rings, so nothing is freed or flushed; this
   one line is written directly. */
static void force_exit(int sig)
{
    log_error("second signal (%s) during shutdown: exiting now", strsignal(sig));
    _exit(1);
}

/*
 * More connections than file descriptors would turn every accept into
 * EMFILE: raise the soft limit to the hard one, and clamp MAX_CONNECTIONS
 * to what is left after what each worker needs for itself.
 */
static int64_t fit_connections(const config_t *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
        return cfg->max_connections;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rlim_t want = rl.rlim_max;
        rl.rlim_cur = want;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) {
            (void)getrlimit(RLIMIT_NOFILE, &rl);
        }
    }
    int64_t nofile = rl.rlim_cur == RLIM_INFINITY ? INT64_MAX : (int64_t)rl.rlim_cur;
    int64_t reserved = FDS_RESERVED + cfg->workers * (FDS_RESERVED_PER_WORKER + cfg->db_pool_size);
    int64_t fit = nofile > reserved ? (nofile - reserved) / cfg->workers : 1;
    if (fit < 1) {
        fit = 1;
    }
    if (fit < cfg->max_connections) {
        log_warn("MAX_CONNECTIONS lowered from %lld to %lld per worker: the process may open %lld files "
                 "(ulimit -n)",
                 (long long)cfg->max_connections, (long long)fit, (long long)nofile);
        return fit;
    }
    return cfg->max_connections;
}

/* The metrics registry (routes and statements as labels), the sampler,
   and the OTLP exporter thread when an endpoint is set (signals are
   blocked by now: the thread inherits the mask). */
static int observability_setup(app_t *app, char *err, size_t errlen)
{
    const config_t *cfg = app->cfg;
    const char **routes = calloc(routes_count + 1, sizeof(char *));
    const char **stmts = calloc(app->db_opts.nstmts + 1, sizeof(char *));
    int rc = ERR_NOMEM;
    if (routes == NULL || stmts == NULL) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < routes_count; i++) {
        routes[i] = routes_table[i].pattern;
    }
    for (size_t i = 0; i < app->db_opts.nstmts; i++) {
        stmts[i] = app->db_opts.stmts[i].name;
    }
#ifdef API_COMMIT
    const char *commit = API_COMMIT;
#else
    const char *commit = "";
#endif
    metrics_opts_t mo = {.routes = routes,
                         .nroutes = routes_count,
                         .statements = stmts,
                         .nstatements = app->db_opts.nstmts,
                         .version = API_VERSION,
                         .commit = commit};
    if (metrics_init(&mo) != 0) {
        snprintf(err, errlen, "out of memory");
        goto out;
    }
    app->metrics_ready = true;
    trace_opts_t to = {.exporting = cfg->otel_endpoint != NULL,
                       .ratio = cfg->otel_sampler_ratio,
                       .queue_spans = (unsigned)cfg->otel_queue_spans};
    trace_configure(&to);
    rc = 0;
    if (cfg->otel_endpoint != NULL) {
        otlp_opts_t oo = {.endpoint = cfg->otel_endpoint,
                          .service_name = cfg->otel_service_name,
                          .service_version = API_VERSION,
                          .batch_max = (unsigned)cfg->otel_batch_spans,
                          .schedule_delay_ms = cfg->otel_schedule_delay_ms,
                          .timeout_ms = cfg->otel_timeout_ms};
        rc = otlp_start(&oo, err, errlen);
        app->otlp_started = rc == 0;
    }
out:
    free(routes);
    free(stmts);
    return rc;
}

/* Everything the workers share, built from the configuration. Returns an
   exit code (0: go on). */
static int app_setup(app_t *app)
{
    const config_t *cfg = app->cfg;
    char err[256];

    if (db_conninfo_prepare(cfg->database_url, &app->conninfo, err, sizeof(err)) != 0) {
        log_fatal("%s", err);
        return 2;
    }
    if (http_cidrs_parse(cfg->trusted_proxies, &app->trusted_proxies, err, sizeof(err)) != 0) {
        log_fatal("%s", err);
        return 2;
    }
    if (cfg->redis_url[0] != '\0') {
        if (redis_addr_parse(cfg->redis_url, &app->redis_opts.addr, err, sizeof(err)) != 0) {
            log_fatal("%s", err);
            return 2;
        }
        app->use_redis = true;
        app->redis_opts.command_timeout_ms = cfg->redis_timeout_ms;
        app->redis_opts.breaker_threshold = (unsigned)cfg->breaker_failures;
        app->redis_opts.breaker_cooldown_ms = (uint64_t)cfg->breaker_cooldown_ms;
        app->redis_opts.down_counter = cfg->redis_required ? &app->server.deps_down : NULL;
    }
    rl_opts_t rlo = {
        .limit = cfg->rate_limit_max,
        .window_s = cfg->rate_limit_window_s,
        .fail_mode = strcmp(cfg->rate_limit_fail_mode, "open") == 0     ? RL_FAIL_OPEN
                     : strcmp(cfg->rate_limit_fail_mode, "closed") == 0 ? RL_FAIL_CLOSED
                                                                        : RL_FAIL_LOCAL,
    };
    mw_ratelimit_init(&rlo);
    idem_opts_t io = {.ttl_s = cfg->idempotency_ttl_s, .lease_ms = 1000};
    mw_idempotency_init(&io);
    users_init();
    app->users_opts = (users_svc_opts_t){
        .cache_ttl_ms = cfg->cache_ttl_s * 1000,
        /* outlives any statement a cancelled write may still run */
        .tombstone_ms = 2 * cfg->request_timeout_ms > 10000 ? 2 * cfg->request_timeout_ms : 10000,
    };
    /* every statement of every service, prepared on each connection */
    size_t nstmts = users_statements_count + idem_statements_count;
    app->stmts = calloc(nstmts, sizeof(db_stmt_t));
    if (app->stmts == NULL) {
        log_fatal("out of memory");
        return 1;
    }
    memcpy(app->stmts, users_statements, users_statements_count * sizeof(db_stmt_t));
    memcpy(app->stmts + users_statements_count, idem_statements, idem_statements_count * sizeof(db_stmt_t));
    unsigned per_worker = (unsigned)(cfg->db_pool_size / cfg->workers);
    app->db_opts = (db_pool_opts_t){
        .conninfo = app->conninfo,
        .conns = per_worker > 0 ? per_worker : 1,
        .max_pipeline = (unsigned)cfg->db_pipeline_depth,
        .max_waiters = (unsigned)cfg->db_max_waiters,
        .prepared = cfg->db_prepared,
        .session_timeout_ms = cfg->request_timeout_ms,
        .heartbeat_ms = cfg->db_heartbeat_ms,
        .stall_ms = cfg->db_stall_ms,
        .stmts = app->stmts,
        .nstmts = nstmts,
        .breaker_threshold = (unsigned)cfg->breaker_failures,
        .breaker_cooldown_ms = (uint64_t)cfg->breaker_cooldown_ms,
    };
    if (observability_setup(app, err, sizeof(err)) != 0) {
        log_fatal("%s", err);
        return 1;
    }
    if (cursor_set_key(cfg->cursor_secret, strlen(cfg->cursor_secret)) != 0) {
        log_fatal("cannot set up the cursor key");
        return 1;
    }
    /* Signals are blocked (app_block_signals): the JWKS fetch thread
       started here inherits the mask. */
    if (app_auth_start(cfg, err, sizeof(err)) != 0) {
        log_fatal("%s", err);
        return 2;
    }
    app->auth_started = true;
    if (db_cancel_start() != 0) {
        log_fatal("cannot start the database cancel thread");
        return 1;
    }
    app->cancel_started = true;
    http_server_opts_t opts = {
        .request_timeout_ms = cfg->request_timeout_ms,
        .header_timeout_ms = cfg->header_timeout_ms,
        .write_timeout_ms = cfg->write_timeout_ms,
        .max_body_bytes = cfg->max_body_bytes,
        .max_header_bytes = cfg->max_header_bytes,
        .max_connections = fit_connections(cfg),
        .max_inflight = cfg->max_inflight,
        .http2 = cfg->http2,
        .debug_routes = cfg->debug_routes,
        .trusted_proxies = &app->trusted_proxies,
    };
    if (http_server_init(&app->server, &opts, routes_table, routes_count, mw_run) != 0) {
        log_fatal("cannot build the router");
        return 1;
    }
    app->server_ready = true;
    /* nothing is connected yet: every worker's pool, and its Redis client
       when Redis is required, counts as down until it connects */
    atomic_store(&app->server.deps_down,
                 (int)app->nworkers * (app->use_redis && cfg->redis_required ? 2 : 1));
    return 0;
}

/* Listeners first (a port that is taken fails the start before any thread
   runs), then the workers, then the barrier they all reach set up. */
static int app_start(app_t *app)
{
    const config_t *cfg = app->cfg;
    char err[256];
    app->workers = calloc(app->nworkers, sizeof(worker_t));
    if (app->workers == NULL) {
        log_fatal("out of memory");
        return 1;
    }
    for (; app->nlisteners < app->nworkers; app->nlisteners++) {
        worker_t *wk = &app->workers[app->nlisteners];
        wk->app = app;
        wk->id = app->nlisteners;
        if (http_listen(cfg->host, (int)cfg->port, &wk->listen_fd, err, sizeof(err)) != 0) {
            log_fatal("%s", err);
            return 1;
        }
    }
    /* the service manager's watchdog counts every worker's loop turns */
    if (notify_start(app->nworkers) != 0) {
        log_fatal("cannot start the service-manager watchdog");
        return 1;
    }
    app->notify_started = true;
    pthread_barrier_init(&app->started, NULL, app->nworkers + 1);
    for (; app->nthreads < app->nworkers; app->nthreads++) {
        worker_t *wk = &app->workers[app->nthreads];
        if (pthread_create(&wk->thread, NULL, worker_main, wk) != 0) {
            /* The barrier counts every worker; the ones started would wait
               at it forever, so there is no clean way back. */
            log_fatal("cannot start worker thread %u", app->nthreads);
            _exit(1);
        }
    }
    pthread_barrier_wait(&app->started);
    for (unsigned i = 0; i < app->nworkers; i++) {
        if (app->workers[i].init_rc != 0) {
            log_fatal("worker %u failed to start: %s", i, err_name(app->workers[i].init_rc));
            return 1;
        }
    }
    jw_t *j = log_begin(LOG_INFO, "listening");
    if (j != NULL) {
        jw_kv_str(j, "host", str_from_cstr(cfg->host));
        jw_kv_int(j, "port", cfg->port);
        jw_kv_int(j, "workers", cfg->workers);
        jw_kv_str(j, "version", STR(API_VERSION));
        log_end(j);
    }
    notify_ready();
    return 0;
}

/*
 * SIGTERM: readiness 503 at once; with SHUTDOWN_DELAY_MS, keep serving that
 * long so load balancers notice; then workers drain (their grace period
 * starts now). A second signal exits at once.
 */
static void app_drain(app_t *app)
{
    const config_t *cfg = app->cfg;
    atomic_store(&app->server.draining, true);
    if (cfg->shutdown_delay_ms > 0) {
        int sig = wait_signal(app->signals, cfg->shutdown_delay_ms);
        if (sig > 0) {
            force_exit(sig);
        }
    }
    atomic_store(&app->busy_workers, (int)app->nworkers);
    atomic_store(&app->phase, PHASE_CLOSE);
    wake_workers(app);
    /* workers end their own grace; this is the backstop if one is stuck */
    uint64_t hard_end = clock_mono_ms() + (uint64_t)cfg->shutdown_grace_ms + 2000;
    while (!all_done(app)) {
        int sig = wait_signal(app->signals, 20);
        if (sig > 0) {
            force_exit(sig);
        }
        if (clock_mono_ms() > hard_end && atomic_load(&app->phase) != PHASE_ABORT) {
            atomic_store(&app->phase, PHASE_ABORT);
            wake_workers(app);
        }
    }
}

/* Joins what started and frees what app_setup built, in reverse order. */
static void app_stop(app_t *app)
{
    if (app->nthreads > 0) {
        /* workers that never got to serve are waiting for the phase */
        atomic_store(&app->phase, PHASE_ABORT);
        wake_workers(app);
        for (unsigned i = 0; i < app->nthreads; i++) {
            pthread_join(app->workers[i].thread, NULL);
        }
        pthread_barrier_destroy(&app->started);
    }
    if (app->notify_started) {
        notify_stop(); /* after the workers: they count their turns in it */
    }
    for (unsigned i = app->nthreads; i < app->nlisteners; i++) {
        close(app->workers[i].listen_fd); /* never handed to a worker */
    }
    free(app->workers);
    if (app->server_ready) {
        http_server_deinit(&app->server);
    }
    if (app->otlp_started) {
        otlp_stop(); /* after the workers: it exports their last spans */
    }
    trace_queues_free();
    if (app->metrics_ready) {
        metrics_deinit();
    }
    if (app->cancel_started) {
        db_cancel_stop();
    }
    if (app->auth_started) {
        app_auth_stop(); /* after the workers: they verify with it */
    }
    cursor_clear_key();
    free(app->stmts);
    free(app->conninfo);
}

int app_serve(const config_t *cfg, const sigset_t *signals)
{
    app_t app = {.cfg = cfg,
                 .signals = signals,
                 .nworkers = (unsigned)cfg->workers,
                 .wake_lock = PTHREAD_MUTEX_INITIALIZER};
    atomic_init(&app.phase, PHASE_RUN);
    int rc = app_setup(&app);
    if (rc == 0) {
        rc = app_start(&app);
    }
    if (rc == 0) {
        int sig = wait_signal(signals, -1);
        log_info("%s received: draining (readiness 503)", strsignal(sig));
        notify_stopping();
        app_drain(&app);
        log_info("shutdown complete");
    }
    app_stop(&app);
    return rc;
}

int app_block_signals(sigset_t *set)
{
    sigemptyset(set);
    sigaddset(set, SIGTERM);
    sigaddset(set, SIGINT);
    /* Blocked here, before any thread exists, so every thread inherits the
       mask and only the main thread takes them (sigwait); a helper thread
       started earlier would let the default action kill the process. */
    if (pthread_sigmask(SIG_BLOCK, set, NULL) != 0) {
        return ERR_IO;
    }
    signal(SIGPIPE, SIG_IGN);
    return 0;
}
