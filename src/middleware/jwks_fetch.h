/*
 * jwks_fetch: keeps a verifier's dynamic key set in step with JWT_JWKS_URL,
 * from a helper thread of its own (libcurl, blocking, never on a worker).
 *
 * The thread fetches right after start (the server serves meanwhile; tokens
 * that need the set get 401 until it has loaded), then again when the
 * response's Cache-Control max-age says (clamped to [min_refresh_s,
 * max_refresh_s]; 10 minutes without one), and early when a token names a
 * kid no set holds, at most once per kid_cooldown_s however many kids and
 * workers ask. Each fetch has a timeout and a size cap. A document that
 * parses becomes the new set in one atomic swap (jwt_verifier_set_keys); a
 * failed fetch or parse keeps the last good set, is logged and counted, and
 * is retried with exponential backoff (1 s doubling, at most 60 s or the
 * normal refresh interval, whichever is shorter).
 *
 * The scheduling rules are the pure jwks_sched_* functions below, so they
 * can be tested without clocks or sockets.
 */
#ifndef MIDDLEWARE_JWKS_FETCH_H
#define MIDDLEWARE_JWKS_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/str.h"
#include "middleware/jwt.h"

#define JWKS_DEFAULT_REFRESH_S 600
#define JWKS_MAX_BACKOFF_S     60

typedef struct {
    const char *url;
    int64_t timeout_ms;    /* whole fetch, connect included */
    size_t max_bytes;      /* body cap (at most JWKS_MAX_DOC) */
    int64_t min_refresh_s; /* bounds on max-age */
    int64_t max_refresh_s;
    int64_t kid_cooldown_s; /* at most one unknown-kid fetch per this */
} jwks_fetch_opts_t;

typedef struct {
    uint64_t fetches;  /* attempts, successful or not */
    uint64_t failures; /* attempts that kept the old set */
    uint64_t kid_fetches;
    uint64_t swaps; /* fetches that installed a different set */
} jwks_fetch_stats_t;

typedef struct jwks_fetcher jwks_fetcher_t;

/* Copies opts; starts nothing. NULL on no memory. */
jwks_fetcher_t *jwks_fetcher_new(const jwks_fetch_opts_t *opts);
/*
 * Starts the thread, which then feeds v (it must outlive jwks_fetcher_free).
 * Call with SIGTERM/SIGINT already blocked: the thread inherits the mask.
 * Returns 0 or ERR_IO.
 */
int jwks_fetcher_start(jwks_fetcher_t *f, jwt_verifier_t *v) __attribute__((warn_unused_result));
/* Stops the thread (an in-flight transfer is aborted) and frees f. NULL is fine. */
void jwks_fetcher_free(jwks_fetcher_t *f);

/* The verifier's on_unknown_kid hook (arg is the fetcher): one relaxed
   load when a fetch is already wanted, else one eventfd write. Never blocks. */
void jwks_fetcher_want_kid(void *arg);

void jwks_fetcher_stats(const jwks_fetcher_t *f, jwks_fetch_stats_t *out);

/* ---- scheduling, pure ---- */

/*
 * The max-age directive of a Cache-Control value (RFC 9111 section 5.2.2.1),
 * in seconds; no-store / no-cache count as 0; -1 when there is none or it
 * is malformed. Values too large saturate at INT32_MAX.
 */
int64_t jwks_max_age(str_t cache_control);

/* When to refresh after a good fetch: max_age (or the default when < 0),
   clamped to [min_s, max_s]. */
int64_t jwks_refresh_interval_s(int64_t max_age, int64_t min_s, int64_t max_s);

typedef struct {
    int64_t next_refresh_ms; /* monotonic */
    int64_t last_kid_fetch_ms;
    bool kid_fetched_ever;
    unsigned failures;  /* consecutive */
    int64_t interval_s; /* the last good interval */
} jwks_sched_t;

typedef enum { JWKS_WAIT, JWKS_FETCH_REFRESH, JWKS_FETCH_KID } jwks_action_t;

/* A schedule that fetches at now_ms. */
void jwks_sched_init(jwks_sched_t *s, int64_t now_ms, int64_t interval_s);
/* What to do at now_ms, given whether a token asked for an unknown kid;
 *wait_ms says how long to sleep when the answer is JWKS_WAIT. */
jwks_action_t jwks_sched_next(const jwks_sched_t *s, int64_t now_ms, bool kid_wanted, int64_t cooldown_s,
                              int64_t *wait_ms);
/* Records a fetch made at now_ms: ok with its refresh interval, or failed. */
void jwks_sched_done(jwks_sched_t *s, int64_t now_ms, jwks_action_t what, bool ok, int64_t interval_s);

#endif
