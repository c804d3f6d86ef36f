/*
 * config: the server's configuration, from the environment (12-factor) with
 * an optional command-line flag overriding each variable.
 *
 * Every variable has a type, bounds and a default for local development.
 * Loading validates everything up front: a bad value is one clear error
 * naming the variable, never a silent fallback. The config is read-only once
 * workers start; strings point into the environment or argv.
 */
#ifndef APP_CONFIG_H
#define APP_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "obs/log.h"

typedef struct {
    const char *host;
    int64_t port;
    int64_t workers;
    const char *database_url;
    const char *database_migration_url;
    int64_t db_pool_size;
    int64_t db_pipeline_depth;
    int64_t db_max_waiters;
    bool db_prepared;
    int64_t db_heartbeat_ms;
    int64_t db_stall_ms;
    int64_t db_instances;       /* processes that may share the database at once */
    int64_t db_max_connections; /* the connections they may open together; 0 = ask */
    int64_t breaker_failures;
    int64_t breaker_cooldown_ms;
    const char *redis_url;
    bool redis_required;
    const char *jwt_secret; /* NULL: no HS256 */
    const char *jwt_jwks_file;
    const char *jwt_jwks_url;
    const char *jwt_issuer;
    const char *jwt_audience;
    int64_t jwt_leeway_s;
    bool jwt_require_exp;
    int64_t jwt_jwks_timeout_ms;
    int64_t jwt_jwks_max_bytes;
    int64_t jwt_jwks_min_refresh_s;
    int64_t jwt_jwks_max_refresh_s;
    int64_t jwt_jwks_kid_cooldown_s;
    const char *cursor_secret;
    int64_t rate_limit_max;
    int64_t rate_limit_window_s;
    const char *rate_limit_fail_mode; /* local | open | closed */
    int64_t redis_timeout_ms;
    int64_t cache_ttl_s;
    int64_t idempotency_ttl_s;
    int64_t request_timeout_ms;
    int64_t shutdown_grace_ms;
    int64_t shutdown_delay_ms;
    int64_t header_timeout_ms;
    int64_t write_timeout_ms;
    int64_t max_body_bytes;
    int64_t max_header_bytes;
    int64_t max_connections;
    int64_t max_inflight;
    bool http2;
    bool debug_routes;
    log_level_t log_level;
    const char *otel_endpoint;     /* NULL: no trace export */
    const char *otel_service_name; /* service.name of exported spans */
    double otel_sampler_ratio;     /* 0..1: roots sampled */
    int64_t otel_queue_spans;      /* per worker */
    int64_t otel_schedule_delay_ms;
    int64_t otel_batch_spans;
    int64_t otel_timeout_ms;
    const char *trusted_proxies;
    /* true when a secret fell back to its development default */
    bool jwt_secret_is_default;
    bool cursor_secret_is_default;
} config_t;

typedef const char *(*config_getenv_fn)(const char *name);

/*
 * Fills c from defaults, then the environment (through getenv_fn), then
 * flags in argv[0..argc) ("--port 8080" or "--port=8080"; the flag is the
 * variable's name in lower case with '-' for '_'). Arguments that are not
 * flags are left alone and counted in *rest_argc / copied to rest_argv (sub-
 * commands); rest_argv must hold argc entries. Returns 0, or ERR_INVAL with a
 * one-line message naming the variable in err.
 */
int config_load(config_t *c, config_getenv_fn getenv_fn, int argc, char **argv, int *rest_argc,
                char **rest_argv, char *err, size_t errlen) __attribute__((warn_unused_result));

/*
 * What `api serve` needs beyond well-formed values: at least one JWT key
 * (JWT_SECRET, JWT_JWKS_FILE or JWT_JWKS_URL; the development secret counts
 * only where config_load granted it, on a loopback HOST without a JWKS).
 * Returns 0, or ERR_INVAL with one line in err.
 */
int config_check_serve(const config_t *c, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Whether host is a numeric loopback address: 127.0.0.0/8 or ::1. */
bool config_host_is_loopback(const char *host);

/* Writes the variables, their defaults and meaning, for --help. */
void config_print_help(void *file);

#endif
