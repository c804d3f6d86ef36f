/*
 * app: the server process. Builds the HTTP server, starts WORKERS threads
 * (each with its own loop, listener and subsystems), and runs the shutdown
 * sequence when asked:
 *
 *   signal -> readiness 503 (+ SHUTDOWN_DELAY_MS, still accepting)
 *          -> listeners closed, keep-alive off, idle connections closed
 *          -> busy connections finish (up to SHUTDOWN_GRACE_MS): a request
 *             is in flight from its first byte
 *          -> what is left gets 503 -> pools and loops closed -> exit 0
 *
 * The main thread only waits for signals and drives these phases; workers
 * notice a phase change when their loop is woken.
 */
#ifndef APP_APP_H
#define APP_APP_H

#include <signal.h>

#include "app/config.h"

/* Blocks SIGTERM and SIGINT in the calling thread (and so in every thread
   created after it) and ignores SIGPIPE. Call first, before any thread
   starts (the log writer included). Returns 0 or ERR_IO. */
int app_block_signals(sigset_t *set) __attribute__((warn_unused_result));

/* Runs the server until a signal in `signals` ends it. Returns the process
   exit code. */
int app_serve(const config_t *cfg, const sigset_t *signals);

#endif
