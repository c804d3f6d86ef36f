/*
 * app: the server process. Builds the HTTP server, starts WORKERS threads
 * (each with its own loop, listener and subsystems), and runs the shutdown
 * sequence when asked:
 *
 *   signal -> readiness 503 (+ SHUTDOWN_DELAY_MS, still accepting)
 *          -> listeners closed, keep-alive off, idle connections closed
 *          -> in-flight requests finish (up to SHUTDOWN_GRACE_MS)
 *          -> what is left gets 503 -> pools and loops closed -> exit 0
 *
 * The main thread only waits for signals and drives these phases; workers
 * notice a phase change when their loop is woken.
 */
#ifndef APP_APP_H
#define APP_APP_H

#include "app/config.h"

/* Runs the server until a signal ends it. Returns the process exit code. */
int app_serve(const config_t *cfg);

#endif
