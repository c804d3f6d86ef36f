/*
 * client: Redis for one worker - one hiredis 0.14 async connection on the
 * worker's h2o loop (commands pipeline on it naturally).
 *
 * hiredis 0.14 has no timeouts, so every command carries a deadline on the
 * worker's timer heap: at expiry the callback runs with ERR_TIMEOUT and the
 * reply, if it ever comes, is dropped. The connection reconnects with
 * jittered exponential backoff. A circuit breaker opens after consecutive
 * failures (timeouts, lost connections), or at once when a PING - sent on
 * every new connection and every HEARTBEAT_MS of idleness - is not answered
 * in time; then commands fail at once (callers degrade: cache bypass, local
 * rate limits) and the connection is dropped and re-made. Only a reply
 * within its deadline counts as health: a TCP connect proves nothing (a
 * frozen server's kernel still accepts) and a late reply says Redis is
 * slow. After the cool-down a PING is the half-open probe; requests never
 * are, so none of them waits on a Redis that is not answering. Becoming
 * unusable and usable again is logged once per transition.
 *
 * Contract: redis_cmd() either fails at once (callback never runs) or
 * returns 0 and the callback runs exactly once, later, from the loop -
 * unless redis_cmd_cancel() was called first. Not thread-safe.
 */
#ifndef REDIS_CLIENT_H
#define REDIS_CLIENT_H

#include <h2o.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "base/breaker.h"
#include "base/timer.h"

typedef struct redis_client redis_client_t;
typedef struct redis_cmd redis_cmd_t;

/* Where Redis is. host is numeric (resolved at start-up, never on a loop). */
typedef struct {
    char host[64];
    int port;
    char unix_path[108];
    int db;
    char password[128];
} redis_addr_t;

/*
 * Parses "redis://[:password@]host[:port][/db]" or "unix:///path[?db=N]".
 * A host name is resolved here (blocking: call at start-up only). Returns
 * 0, or ERR_INVAL with a message in err.
 */
int redis_addr_parse(const char *url, redis_addr_t *out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

typedef struct {
    redis_addr_t addr;
    int64_t command_timeout_ms; /* cap per command, below the request deadline */
    unsigned breaker_threshold;
    uint64_t breaker_cooldown_ms;
    unsigned worker_id;
    _Atomic int *down_counter; /* +1 while down, for readiness (NULL: not required) */
} redis_opts_t;

/*
 * err == 0: reply is Redis's answer (which may itself be an error reply:
 * check reply->type). err == ERR_TIMEOUT / ERR_UNAVAILABLE: reply is NULL.
 * The reply is freed by hiredis after the callback returns.
 */
typedef void (*redis_cb)(redis_cmd_t *cmd, int err, redisReply *reply);

redis_client_t *redis_client_new(h2o_loop_t *loop, timer_heap_t *timers, const redis_opts_t *opts);
void redis_client_free(redis_client_t *r);

/* argv-style command; arguments are binary-safe and copied by hiredis. */
int redis_cmd(redis_client_t *r, uint64_t deadline_ms, redis_cb cb, void *arg, redis_cmd_t **out, int argc,
              const char **argv, const size_t *argvlen) __attribute__((warn_unused_result));
void *redis_cmd_arg(const redis_cmd_t *cmd);
void redis_cmd_cancel(redis_cmd_t *cmd);

/* Work nobody waits for (cache fills, invalidations, lease releases): the
   command is sent with the command timeout and its reply dropped. Returns
   0 when it was sent, else ERR_UNAVAILABLE / ERR_NOMEM (nothing sent);
   callers that have no fallback may ignore it. */
int redis_fire(redis_client_t *r, int argc, const char **argv, const size_t *argvlen);

/*
 * A Lua script, sent by its SHA1 (EVALSHA). Define it with REDIS_SCRIPT and
 * call redis_script_init() once before workers start; it is read-only after.
 */
typedef struct {
    const char *body;
    size_t len;
    char sha[41];
} redis_script_t;
#define REDIS_SCRIPT(text)                                                                                   \
    {                                                                                                        \
        (text), sizeof(text) - 1, ""                                                                         \
    }
void redis_script_init(redis_script_t *s);

/*
 * Runs a script: EVALSHA, and once EVAL with the body if Redis does not
 * know it (NOSCRIPT: first use, a restart, SCRIPT FLUSH) - the callback
 * sees only the final reply. args are the KEYS (the first nkeys) then ARGV;
 * at most 16; copied. Same contract as redis_cmd (out may be NULL).
 */
int redis_eval(redis_client_t *r, const redis_script_t *s, uint64_t deadline_ms, redis_cb cb, void *arg,
               redis_cmd_t **out, int nkeys, int nargs, const char **args, const size_t *lens)
    __attribute__((warn_unused_result));
/* A script nobody waits for (see redis_fire). */
int redis_fire_eval(redis_client_t *r, const redis_script_t *s, int nkeys, int nargs, const char **args,
                    const size_t *lens);

/* Whether commands can be sent now (connected and breaker not open). */
bool redis_client_usable(redis_client_t *r);

#endif
