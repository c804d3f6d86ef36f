/*
 * notify: sd_notify(3) readiness, stopping and a watchdog fed only by turning
 * worker loops. See notify.h for the contract.
 *
 * Invariant: a WATCHDOG=1 is sent only when every worker's turn counter has
 * moved since the previous look, one ping period ago. The counters are
 * written by their workers only (relaxed increments, one cache line each) and
 * read by the watchdog thread only; nothing else is shared, so no lock is
 * ever taken on a worker.
 */
#include "app/notify.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <systemd/sd-daemon.h>
#include <time.h>

#include "base/clock.h"
#include "base/err.h"
#include "obs/log.h"
#include "base/banned.h"

/* One counter per cache line, so workers never write to a shared line. */
typedef struct {
    _Atomic uint64_t turns;
    char pad[64 - sizeof(uint64_t)];
} turn_slot_t;

static struct {
    bool active;        /* NOTIFY_SOCKET is set */
    uint64_t period_us; /* between two looks at the counters; 0: no watchdog */
    unsigned nworkers;
    turn_slot_t *slots; /* NULL without a watchdog: notify_worker_turn is a no-op */
    uint64_t *seen;     /* watchdog thread only: the counters at its last look */
    bool thread_running;
    pthread_t thread;
    pthread_mutex_t lock; /* guards stop; the thread sleeps on cond */
    pthread_cond_t cond;
    bool stop;
} N = {.lock = PTHREAD_MUTEX_INITIALIZER};

static void send_state(const char *state, const char *what)
{
    /* sd_notify returns 0 when NOTIFY_SOCKET is unset, > 0 once sent. The
       datagram goes to the manager; a failure is worth one line, not more. */
    int r = sd_notify(0, state);
    if (r < 0) {
        log_warn("cannot tell the service manager %s: %s", what, strerror(-r));
    }
}

static struct timespec mono_after(uint64_t us)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t ns = (uint64_t)ts.tv_nsec + (us % 1000000) * 1000;
    ts.tv_sec += (time_t)(us / 1000000 + ns / 1000000000);
    ts.tv_nsec = (long)(ns % 1000000000);
    return ts;
}

/* Returns the first worker whose counter has not moved since the last look
   (or nworkers when all moved), and records the counters for the next one. */
static unsigned look_at_counters(void)
{
    unsigned stalled = N.nworkers;
    for (unsigned i = 0; i < N.nworkers; i++) {
        uint64_t now = atomic_load_explicit(&N.slots[i].turns, memory_order_relaxed);
        if (now == N.seen[i] && stalled == N.nworkers) {
            stalled = i;
        }
        N.seen[i] = now;
    }
    return stalled;
}

static void *watchdog_main(void *arg)
{
    (void)arg;
    bool withheld = false;
    uint64_t withheld_since = 0;
    pthread_mutex_lock(&N.lock);
    while (!N.stop) {
        /* Sleep a whole period even across spurious wake-ups: the counters
           must have had one period to move. */
        struct timespec until = mono_after(N.period_us);
        int rc = 0;
        while (!N.stop && rc != ETIMEDOUT) {
            rc = pthread_cond_timedwait(&N.cond, &N.lock, &until);
        }
        if (N.stop) {
            break;
        }
        unsigned stalled = look_at_counters();
        if (stalled == N.nworkers) {
            send_state("WATCHDOG=1", "the watchdog ping");
            if (withheld) {
                withheld = false;
                log_info("every worker loop is turning again after %llu ms: watchdog pings resume",
                         (unsigned long long)(clock_mono_ms() - withheld_since));
            }
        } else if (!withheld) {
            withheld = true;
            withheld_since = clock_mono_ms() - N.period_us / 1000;
            log_warn("worker %u's event loop has not turned for %llu ms: watchdog ping withheld", stalled,
                     (unsigned long long)(N.period_us / 1000));
        }
    }
    pthread_mutex_unlock(&N.lock);
    log_thread_detach();
    return NULL;
}

int notify_start(unsigned nworkers)
{
    const char *sock = getenv("NOTIFY_SOCKET");
    N.active = sock != NULL && sock[0] != '\0';
    N.period_us = 0;
    N.stop = false;
    if (!N.active) {
        return 0;
    }
    uint64_t usec = 0;
    int r = sd_watchdog_enabled(0, &usec);
    if (r < 0) {
        log_error("invalid WATCHDOG_USEC / WATCHDOG_PID from the service manager");
        return ERR_INVAL;
    }
    if (r == 0 || usec == 0) {
        return 0; /* readiness and stopping only */
    }
    /* sd_watchdog_enabled(3): ping at half the interval the manager waits. */
    N.period_us = usec / 2 > 1000 ? usec / 2 : 1000;
    N.nworkers = nworkers;
    N.slots = calloc(nworkers, sizeof(turn_slot_t));
    N.seen = calloc(nworkers, sizeof(uint64_t));
    if (N.slots == NULL || N.seen == NULL) {
        goto fail;
    }
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    r = pthread_cond_init(&N.cond, &attr);
    pthread_condattr_destroy(&attr);
    if (r != 0) {
        goto fail;
    }
    if (pthread_create(&N.thread, NULL, watchdog_main, NULL) != 0) {
        pthread_cond_destroy(&N.cond);
        free(N.slots);
        free(N.seen);
        N.slots = NULL;
        N.seen = NULL;
        N.period_us = 0;
        return ERR_IO;
    }
    N.thread_running = true;
    log_info("watchdog: pinging every %llu ms while all %u worker loops turn",
             (unsigned long long)(N.period_us / 1000), nworkers);
    return 0;

fail:
    free(N.slots);
    free(N.seen);
    N.slots = NULL;
    N.seen = NULL;
    N.period_us = 0;
    return ERR_NOMEM;
}

void notify_stop(void)
{
    if (N.thread_running) {
        pthread_mutex_lock(&N.lock);
        N.stop = true;
        pthread_cond_signal(&N.cond);
        pthread_mutex_unlock(&N.lock);
        pthread_join(N.thread, NULL);
        pthread_cond_destroy(&N.cond);
        N.thread_running = false;
    }
    free(N.slots);
    free(N.seen);
    N.slots = NULL;
    N.seen = NULL;
    N.period_us = 0;
    N.active = false;
}

void notify_ready(void)
{
    if (N.active) {
        send_state("READY=1\nSTATUS=serving", "readiness");
    }
}

void notify_stopping(void)
{
    if (N.active) {
        send_state("STOPPING=1\nSTATUS=draining", "stopping");
    }
}

void notify_worker_turn(unsigned id)
{
    if (N.slots != NULL) {
        atomic_fetch_add_explicit(&N.slots[id].turns, 1, memory_order_relaxed);
    }
}

int32_t notify_loop_wait_ms(int32_t max_ms)
{
    /* A quarter of the ping period: a healthy loop turns at least twice
       between two looks, even when the wait and the look drift apart. */
    if (N.period_us == 0) {
        return max_ms;
    }
    uint64_t quarter = N.period_us / 4000;
    if (quarter < 1) {
        quarter = 1;
    }
    return (uint64_t)max_ms < quarter ? max_ms : (int32_t)quarter;
}
