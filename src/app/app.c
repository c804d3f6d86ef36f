/* app: worker threads and the shutdown sequence. */
#include "app/app.h"
#include "app/notify.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "base/clock.h"
#include "base/err.h"
#include "db/pool.h"
#include "http/server.h"
#include "middleware/auth.h"
#include "middleware/jwt.h"
#include "middleware/idempotency.h"
#include "middleware/ratelimit.h"
#include "redis/client.h"
#include "routes/cursor.h"
#include "services/users.h"
#include "middleware/pipeline.h"
#include "obs/log.h"
#include "routes/routes.h"
#include "base/banned.h"

#define LOG_RING_BYTES   (1u << 20)
#define LOOP_MAX_WAIT_MS 1000

typedef enum { PHASE_RUN, PHASE_CLOSE, PHASE_ABORT } phase_t;

#define PURGE_EVERY_MS 60000

typedef struct worker {
    struct app *app;
    struct timer purge; /* worker 0: expired idempotency keys */
    unsigned id;
    int listen_fd;
    pthread_t thread;
    http_worker_t http;
    h2o_multithread_receiver_t wake; /* main -> worker: "look at the phase" */
    _Atomic bool ready;              /* wake is registered */
    _Atomic bool done;
    int init_rc;
} worker_t;

typedef struct app {
    const config_t *cfg;
    db_pool_opts_t db_opts;
    bool use_redis;
    redis_opts_t redis_opts;
    users_svc_opts_t users_opts;
    http_server_t server;
    worker_t *workers;
    unsigned nworkers;
    _Atomic int phase;
    _Atomic unsigned drained; /* workers that have had no request in flight */
    pthread_barrier_t started;
} app_t;

static void on_wake(h2o_multithread_receiver_t *r, h2o_linklist_t *messages)
{
    /* only ever woken with no message; the loop then re-reads the phase */
    (void)r;
    (void)messages;
}

static void on_purge(struct timer *t)
{
    worker_t *wk = t->data;
    http_worker_t *w = &wk->http;
    if (db_pool_healthy(w->db)) {
        idem_purge(w->db, clock_mono_ms() + 30000);
    }
    if (timer_arm(&w->timers, &wk->purge, clock_mono_ms() + PURGE_EVERY_MS) != 0) {
        log_warn("cannot reschedule the idempotency purge");
    }
}

static void *worker_main(void *arg)
{
    worker_t *wk = arg;
    app_t *app = wk->app;
    http_worker_t *w = &wk->http;

    if (log_thread_attach(LOG_RING_BYTES) != 0) {
        log_warn("worker %u: no log ring, logging synchronously", wk->id);
    }
    wk->init_rc = http_worker_init(w, &app->server, wk->id, wk->listen_fd);
    if (wk->init_rc == 0) {
        db_pool_opts_t dbo = app->db_opts;
        dbo.worker_id = wk->id;
        dbo.down_counter = &app->server.deps_down;
        w->db = db_pool_new(w->h2o.loop, &w->timers, &dbo);
        if (w->db == NULL) {
            wk->init_rc = ERR_NOMEM;
        }
    }
    if (wk->init_rc == 0 && app->use_redis) {
        redis_opts_t ro = app->redis_opts;
        ro.worker_id = wk->id;
        w->redis = redis_client_new(w->h2o.loop, &w->timers, &ro);
        if (w->redis == NULL) {
            wk->init_rc = ERR_NOMEM;
        }
    }
    if (wk->init_rc == 0) {
        w->users = users_svc_new(w->db, w->redis, &app->users_opts);
        if (w->users == NULL) {
            wk->init_rc = ERR_NOMEM;
        }
    }
    if (wk->init_rc == 0 && wk->id == 0) {
        timer_init(&wk->purge, on_purge, wk);
        if (timer_arm(&w->timers, &wk->purge, clock_mono_ms() + 5000) != 0) {
            log_warn("cannot schedule the idempotency purge");
        }
    }
    if (wk->init_rc == 0) {
        h2o_multithread_register_receiver(w->h2o.queue, &wk->wake, on_wake);
        atomic_store(&wk->ready, true);
    }
    pthread_barrier_wait(&app->started);
    if (wk->init_rc != 0) {
        atomic_store(&wk->done, true);
        log_thread_detach();
        return NULL;
    }

    bool closing = false;
    bool drained = false;
    uint64_t grace_end = 0;
    for (;;) {
        http_worker_run_once(w, closing ? 20 : notify_loop_wait_ms(LOOP_MAX_WAIT_MS));
        notify_worker_turn(wk->id);
        int phase = atomic_load(&app->phase);
        if (phase >= PHASE_CLOSE && !closing) {
            closing = true;
            grace_end = clock_mono_ms() + (uint64_t)app->cfg->shutdown_grace_ms;
            http_worker_stop_accepting(w);
            http_worker_request_shutdown(w);
            /* Idle keep-alive connections stay open until the last request
               is done: clients on them still see readiness turn 503. They
               are closed on the way out (http_worker_deinit). */
        }
        /* The process drains as one: a worker with nothing left in flight
           keeps its idle connections (and answers readiness 503 on them)
           until every worker is done, so clients see one consistent end. */
        if (closing && w->inflight == 0 && !drained) {
            drained = true;
            atomic_fetch_add(&app->drained, 1);
        }
        if (drained && w->inflight == 0 && atomic_load(&app->drained) == app->nworkers) {
            break;
        }
        if (closing && (clock_mono_ms() >= grace_end || phase == PHASE_ABORT)) {
            log_warn("worker %u: grace period over, aborting %llu requests", wk->id,
                     (unsigned long long)w->inflight);
            http_worker_abort_requests(w);
            /* let the 503s go out */
            for (int i = 0; i < 10 && w->inflight > 0; i++) {
                http_worker_run_once(w, 10);
            }
            break;
        }
    }

    h2o_multithread_unregister_receiver(w->h2o.queue, &wk->wake);
    timer_cancel(&w->timers, &wk->purge);
    /* Order matters: the pool's last callbacks may still talk to Redis and
       to the users service, and Redis's last callbacks to the service. */
    db_pool_free(w->db);
    w->db = NULL;
    redis_client_free(w->redis);
    w->redis = NULL;
    users_svc_free(w->users);
    w->users = NULL;
    http_worker_deinit(w);
    atomic_store(&wk->done, true);
    log_thread_detach();
    return NULL;
}

static void wake_workers(app_t *app)
{
    for (unsigned i = 0; i < app->nworkers; i++) {
        if (atomic_load(&app->workers[i].ready)) {
            h2o_multithread_send_message(&app->workers[i].wake, NULL);
        }
    }
}

static bool all_done(app_t *app)
{
    for (unsigned i = 0; i < app->nworkers; i++) {
        if (!atomic_load(&app->workers[i].done)) {
            return false;
        }
    }
    return true;
}

/* Waits up to ms for SIGTERM/SIGINT. Returns the signal, or 0 on timeout. */
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

static void force_exit(int sig)
{
    log_error("second signal (%s) during shutdown: exiting now", strsignal(sig));
    log_stop();
    _exit(1);
}

int app_serve(const config_t *cfg)
{
    int rc = 1;
    app_t app = {.cfg = cfg, .nworkers = (unsigned)cfg->workers};
    atomic_init(&app.phase, PHASE_RUN);
    char err[256];

    /* Signals: blocked in every thread (they inherit the mask) and taken
       synchronously by the main thread with sigwait. */
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    http_server_opts_t opts = {
        .request_timeout_ms = cfg->request_timeout_ms,
        .header_timeout_ms = cfg->header_timeout_ms,
        .max_body_bytes = cfg->max_body_bytes,
        .max_header_bytes = cfg->max_header_bytes,
        .max_connections = cfg->max_connections,
        .max_inflight = cfg->max_inflight,
        .http2 = cfg->http2,
        .debug_routes = cfg->debug_routes,
    };
    if (cfg->redis_url[0] != '\0') {
        if (redis_addr_parse(cfg->redis_url, &app.redis_opts.addr, err, sizeof(err)) != 0) {
            fprintf(stderr, "api: %s\n", err);
            return 2;
        }
        app.use_redis = true;
        app.redis_opts.command_timeout_ms = cfg->redis_timeout_ms;
        app.redis_opts.breaker_threshold = (unsigned)cfg->breaker_failures;
        app.redis_opts.breaker_cooldown_ms = (uint64_t)cfg->breaker_cooldown_ms;
        app.redis_opts.down_counter = cfg->redis_required ? &app.server.deps_down : NULL;
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
    app.users_opts = (users_svc_opts_t){
        .cache_ttl_ms = cfg->cache_ttl_s * 1000,
        /* outlives any statement a cancelled write may still run */
        .tombstone_ms = 2 * cfg->request_timeout_ms > 10000 ? 2 * cfg->request_timeout_ms : 10000,
    };
    /* every statement of every service, prepared on each connection */
    db_stmt_t *stmts = calloc(users_statements_count + idem_statements_count, sizeof(db_stmt_t));
    if (stmts == NULL) {
        log_fatal("out of memory");
        return 1;
    }
    memcpy(stmts, users_statements, users_statements_count * sizeof(db_stmt_t));
    memcpy(stmts + users_statements_count, idem_statements, idem_statements_count * sizeof(db_stmt_t));
    unsigned per_worker = (unsigned)(cfg->db_pool_size / cfg->workers);
    app.db_opts = (db_pool_opts_t){
        .conninfo = cfg->database_url,
        .conns = per_worker > 0 ? per_worker : 1,
        .max_pipeline = (unsigned)cfg->db_pipeline_depth,
        .max_waiters = (unsigned)cfg->db_max_waiters,
        .statement_timeout_ms = cfg->request_timeout_ms,
        .stmts = stmts,
        .nstmts = users_statements_count + idem_statements_count,
        .breaker_threshold = (unsigned)cfg->breaker_failures,
        .breaker_cooldown_ms = (uint64_t)cfg->breaker_cooldown_ms,
    };
    jwt_verifier_opts_t jo = {
        .hs256_secret = cfg->jwt_secret,
        .hs256_secret_len = strlen(cfg->jwt_secret),
        .issuer = cfg->jwt_issuer,
        .audience = cfg->jwt_audience,
        .leeway_s = 5,
    };
    jwt_verifier_t *verifier = jwt_verifier_new(&jo);
    if (verifier == NULL || cursor_set_key(cfg->cursor_secret, strlen(cfg->cursor_secret)) != 0) {
        log_fatal("cannot set up token and cursor keys");
        jwt_verifier_free(verifier);
        free(stmts);
        return 1;
    }
    mw_auth_init(verifier);
    if (db_cancel_start() != 0) {
        log_fatal("cannot start the database cancel thread");
        jwt_verifier_free(verifier);
        free(stmts);
        return 1;
    }
    if (http_server_init(&app.server, &opts, routes_table, routes_count, mw_run) != 0) {
        log_fatal("cannot build the router");
        db_cancel_stop();
        jwt_verifier_free(verifier);
        free(stmts);
        return 1;
    }
    /* nothing is connected yet: every worker's pool, and its Redis client
       when Redis is required, counts as down until it connects */
    atomic_store(&app.server.deps_down, (int)app.nworkers * (app.use_redis && cfg->redis_required ? 2 : 1));
    app.workers = calloc(app.nworkers, sizeof(worker_t));
    if (app.workers == NULL) {
        log_fatal("out of memory");
        goto out_server;
    }
    unsigned opened = 0;
    for (; opened < app.nworkers; opened++) {
        worker_t *wk = &app.workers[opened];
        wk->app = &app;
        wk->id = opened;
        if (http_listen(cfg->host, (int)cfg->port, &wk->listen_fd, err, sizeof(err)) != 0) {
            log_fatal("%s", err);
            goto out_listeners;
        }
    }

    if (notify_start(app.nworkers) != 0) {
        log_fatal("cannot start the service-manager watchdog");
        goto out_listeners;
    }
    pthread_barrier_init(&app.started, NULL, app.nworkers + 1);
    unsigned started = 0;
    for (; started < app.nworkers; started++) {
        worker_t *wk = &app.workers[started];
        if (pthread_create(&wk->thread, NULL, worker_main, wk) != 0) {
            log_fatal("cannot start worker thread %u", started);
            break;
        }
    }
    if (started < app.nworkers) {
        /* The barrier counts every worker; start none rather than wait forever. */
        log_stop();
        _exit(1);
    }
    pthread_barrier_wait(&app.started);
    bool ok = true;
    for (unsigned i = 0; i < app.nworkers; i++) {
        ok &= app.workers[i].init_rc == 0;
    }
    if (ok) {
        jw_t *j = log_begin(LOG_INFO, "listening");
        if (j != NULL) {
            jw_kv_str(j, "host", str_from_cstr(cfg->host));
            jw_kv_int(j, "port", cfg->port);
            jw_kv_int(j, "workers", cfg->workers);
            jw_kv_str(j, "version", STR(API_VERSION));
            log_end(j);
        }
        notify_ready();
        int sig = wait_signal(&set, -1);
        log_info("%s received: draining (readiness 503)", strsignal(sig));
        notify_stopping();
    }

    /* Phase 1: not ready, still serving, so load balancers can notice. */
    atomic_store(&app.server.draining, true);
    if (ok && cfg->shutdown_delay_ms > 0) {
        int sig = wait_signal(&set, cfg->shutdown_delay_ms);
        if (sig > 0) {
            force_exit(sig);
        }
    }
    /* Phase 2: close listeners, finish in-flight work within the grace. */
    atomic_store(&app.phase, PHASE_CLOSE);
    wake_workers(&app);
    uint64_t hard_end = clock_mono_ms() + (uint64_t)cfg->shutdown_grace_ms + 2000;
    while (!all_done(&app)) {
        int sig = wait_signal(&set, 20);
        if (sig > 0) {
            force_exit(sig);
        }
        if (clock_mono_ms() > hard_end) {
            atomic_store(&app.phase, PHASE_ABORT);
            wake_workers(&app);
        }
    }
    for (unsigned i = 0; i < app.nworkers; i++) {
        pthread_join(app.workers[i].thread, NULL);
    }
    notify_stop();
    pthread_barrier_destroy(&app.started);
    rc = ok ? 0 : 1;
    log_info("shutdown complete");
    goto out_workers;

out_listeners:
    for (unsigned i = 0; i < opened; i++) {
        close(app.workers[i].listen_fd);
    }
out_workers:
    free(app.workers);
out_server:
    http_server_deinit(&app.server);
    db_cancel_stop();
    mw_auth_init(NULL);
    jwt_verifier_free(verifier);
    cursor_clear_key();
    free(stmts);
    return rc;
}
