/*
 * notify: the service manager's side of the process (sd_notify(3)):
 * readiness, stopping, and a watchdog that is fed only while every worker's
 * event loop is turning.
 *
 * Under systemd with Type=notify, NOTIFY_SOCKET names a datagram socket;
 * with WatchdogSec= set, WATCHDOG_USEC says how often the manager wants to
 * hear from us. Each worker counts its loop iterations (notify_worker_turn);
 * a helper thread wakes every WATCHDOG_USEC / 2 and sends WATCHDOG=1 only if
 * every counter moved since its last look. A worker stuck in a handler, a
 * livelock or a deadlock therefore stops the pings, and the manager restarts
 * the process. The thread never touches a loop and workers never wait on it.
 *
 * Without NOTIFY_SOCKET every function here is a no-op. The module does not
 * unset the variables (no child process inherits them: the server spawns
 * none) and does not do socket activation or reloading.
 */
#ifndef APP_NOTIFY_H
#define APP_NOTIFY_H

#include <stdint.h>

/*
 * Reads NOTIFY_SOCKET and WATCHDOG_USEC (and WATCHDOG_PID, through
 * sd_watchdog_enabled) and, when a watchdog is asked for, allocates one turn
 * counter per worker and starts the watchdog thread. Call once, from the main
 * thread, after the termination signals are blocked (the thread inherits the
 * mask) and before the workers start. Returns 0, or ERR_NOMEM / ERR_IO (the
 * thread could not start; then nothing is left running).
 */
int notify_start(unsigned nworkers) __attribute__((warn_unused_result));

/* Stops and joins the watchdog thread and frees the counters. Call after
   every worker has left its loop. Safe without notify_start. */
void notify_stop(void);

/* READY=1: every worker listens. Main thread. */
void notify_ready(void);

/* STOPPING=1: shutdown has begun (readiness is 503). Main thread. */
void notify_stopping(void);

/* Records one turn of worker id's loop: a relaxed increment of a counter on
   the worker's own cache line. Call once per loop iteration, from the worker
   itself; a no-op without a watchdog. */
void notify_worker_turn(unsigned id);

/* The longest a worker's loop may wait for events: max_ms, lowered so that a
   healthy loop turns at least twice per watchdog ping period. */
int32_t notify_loop_wait_ms(int32_t max_ms);

#endif
