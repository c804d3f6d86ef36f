/*
 * config: one table describes every variable (name, type, bounds, default,
 * help), and loading, flags and --help are all driven by it, so adding a
 * setting is one line.
 */
#include "app/config.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "base/err.h"
#include "base/str.h"
#include "http/forwarded.h"
#include "db/secret.h"
#include "obs/otlp.h"
#include "base/banned.h"

typedef enum { T_STR, T_INT, T_BOOL, T_LEVEL, T_RATIO } vtype_t;

typedef struct {
    const char *env;
    vtype_t type;
    size_t offset;
    int64_t min, max;
    const char *def; /* textual default; NULL = computed or unset */
    const char *help;
} var_t;

#define DEV_JWT_SECRET    "dev-only-jwt-secret-do-not-use-in-production"
#define DEV_CURSOR_SECRET "dev-only-cursor-secret-do-not-use-in-production"
#define OFF(f)            offsetof(config_t, f)

static const var_t vars[] = {
    {"HOST", T_STR, OFF(host), 0, 0, "127.0.0.1", "listen address (numeric IPv4/IPv6)"},
    {"PORT", T_INT, OFF(port), 1, 65535, "3000", "listen port"},
    {"WORKERS", T_INT, OFF(workers), 1, 256, NULL, "event-loop threads (default: number of CPUs)"},
    {"DATABASE_URL", T_STR, OFF(database_url), 0, 0, "dbname=api", "libpq connection string, app role"},
    {"DATABASE_MIGRATION_URL", T_STR, OFF(database_migration_url), 0, 0, NULL,
     "owner role for `api migrate` (default: DATABASE_URL)"},
    {"DATABASE_POOL_SIZE", T_INT, OFF(db_pool_size), 1, 1024, NULL,
     "PostgreSQL connections per process, split across workers (default: 2 x CPUs)"},
    {"DATABASE_PIPELINE_DEPTH", T_INT, OFF(db_pipeline_depth), 1, 4096, "64",
     "batches in flight per PostgreSQL connection"},
    {"DATABASE_MAX_WAITERS", T_INT, OFF(db_max_waiters), 0, 1000000, "1024",
     "batches waiting for a pipeline slot per worker; more get 503 at once"},
    {"DATABASE_PREPARED", T_BOOL, OFF(db_prepared), 0, 1, "1",
     "use named prepared statements; 0 sends unnamed ones (PgBouncer in transaction mode)"},
    {"DATABASE_HEARTBEAT_MS", T_INT, OFF(db_heartbeat_ms), 10, 60000, "250",
     "how often each worker checks that PostgreSQL answers (a trivial query on its own connection)"},
    {"DATABASE_STALL_MS", T_INT, OFF(db_stall_ms), 10, 60000, "1000",
     "a heartbeat not answered within this long means PostgreSQL is stalled (readiness 503, fail fast)"},
    {"DATABASE_INSTANCES", T_INT, OFF(db_instances), 1, 10000, "1",
     "server processes that may share the database at once (replicas + rolling-restart surge)"},
    {"DATABASE_MAX_CONNECTIONS", T_INT, OFF(db_max_connections), 0, 1000000, "0",
     "connections all instances may open together (behind PgBouncer: its default_pool_size); "
     "0 = ask PostgreSQL at start"},
    {"BREAKER_FAILURES", T_INT, OFF(breaker_failures), 1, 1000, "5",
     "consecutive PostgreSQL/Redis failures that open a circuit breaker"},
    {"BREAKER_COOLDOWN_MS", T_INT, OFF(breaker_cooldown_ms), 10, 600000, "1000",
     "how long an open breaker fails fast before a probe"},
    {"REDIS_URL", T_STR, OFF(redis_url), 0, 0, "redis://127.0.0.1:6379/0",
     "redis://host:port/db or unix:///path; empty = no Redis (degraded mode)"},
    {"REDIS_REQUIRED", T_BOOL, OFF(redis_required), 0, 1, "0", "readiness fails while Redis is down"},
    {"JWT_SECRET", T_STR, OFF(jwt_secret), 0, 0, NULL,
     "HS256 key, >= 32 bytes (default: a development key, only on a loopback HOST without a JWKS)"},
    {"JWT_JWKS_FILE", T_STR, OFF(jwt_jwks_file), 0, 0, NULL, "JWKS file with RS256/ES256 public keys"},
    {"JWT_JWKS_URL", T_STR, OFF(jwt_jwks_url), 0, 0, NULL,
     "JWKS URL of the identity provider (https://, or http:// to loopback), fetched in the background"},
    {"JWT_ISSUER", T_STR, OFF(jwt_issuer), 0, 0, NULL, "required `iss` claim"},
    {"JWT_AUDIENCE", T_STR, OFF(jwt_audience), 0, 0, NULL, "required `aud` claim (a string or in an array)"},
    {"JWT_LEEWAY_S", T_INT, OFF(jwt_leeway_s), 0, 300, "5", "allowed clock skew for `exp` / `nbf`, seconds"},
    {"JWT_REQUIRE_EXP", T_BOOL, OFF(jwt_require_exp), 0, 1, "1", "refuse tokens without `exp`"},
    {"JWT_JWKS_TIMEOUT_MS", T_INT, OFF(jwt_jwks_timeout_ms), 100, 60000, "5000",
     "deadline of one JWKS fetch, connect included"},
    {"JWT_JWKS_MAX_BYTES", T_INT, OFF(jwt_jwks_max_bytes), 1024, 4 * 1024 * 1024, "1048576",
     "largest JWKS document accepted"},
    {"JWT_JWKS_MIN_REFRESH_S", T_INT, OFF(jwt_jwks_min_refresh_s), 1, 86400, "60",
     "lower bound on the JWKS Cache-Control max-age"},
    {"JWT_JWKS_MAX_REFRESH_S", T_INT, OFF(jwt_jwks_max_refresh_s), 1, 86400, "3600",
     "upper bound on the JWKS Cache-Control max-age (600 s without one, within the bounds)"},
    {"JWT_JWKS_KID_COOLDOWN_S", T_INT, OFF(jwt_jwks_kid_cooldown_s), 1, 3600, "30",
     "at most one JWKS fetch for unknown `kid`s per this many seconds"},
    {"CURSOR_SECRET", T_STR, OFF(cursor_secret), 0, 0, NULL,
     "HMAC key for pagination cursors (default: a development key, logged as a warning)"},
    {"RATE_LIMIT_MAX", T_INT, OFF(rate_limit_max), 0, 1000000000, "600",
     "requests per identity per window; 0 turns rate limiting off"},
    {"RATE_LIMIT_WINDOW_S", T_INT, OFF(rate_limit_window_s), 1, 86400, "60", "rate-limit window, seconds"},
    {"RATE_LIMIT_FAIL_MODE", T_STR, OFF(rate_limit_fail_mode), 0, 0, "local",
     "without Redis: local (in-process limits), open (no limits) or closed (503)"},
    {"REDIS_TIMEOUT_MS", T_INT, OFF(redis_timeout_ms), 1, 60000, "250",
     "deadline of one Redis command (capped by the request's)"},
    {"CACHE_TTL_S", T_INT, OFF(cache_ttl_s), 0, 86400, "300",
     "user cache entry lifetime (+-10% jitter); 0 = no cache"},
    {"IDEMPOTENCY_TTL_S", T_INT, OFF(idempotency_ttl_s), 1, 30 * 86400, "86400",
     "how long idempotency keys are kept (the contract promises at least 86400)"},
    {"REQUEST_TIMEOUT_MS", T_INT, OFF(request_timeout_ms), 1, 600000, "10000", "whole-request deadline"},
    {"SHUTDOWN_GRACE_MS", T_INT, OFF(shutdown_grace_ms), 0, 600000, "10000",
     "how long in-flight requests may finish after SIGTERM"},
    {"SHUTDOWN_DELAY_MS", T_INT, OFF(shutdown_delay_ms), 0, 600000, "0",
     "after SIGTERM, keep accepting (readiness 503) this long so load balancers notice"},
    {"HEADER_TIMEOUT_MS", T_INT, OFF(header_timeout_ms), 100, 600000, "10000",
     "time to receive a request's headers and body, and keep-alive idle time"},
    {"WRITE_TIMEOUT_MS", T_INT, OFF(write_timeout_ms), 100, 600000, "10000",
     "time a client may take to read a response before its connection is closed"},
    {"MAX_BODY_BYTES", T_INT, OFF(max_body_bytes), 1, 64 * 1024 * 1024, "1048576",
     "request body limit (413 above)"},
    {"MAX_HEADER_BYTES", T_INT, OFF(max_header_bytes), 1024, 256 * 1024, "16384",
     "request line + headers limit (431 above)"},
    {"MAX_CONNECTIONS", T_INT, OFF(max_connections), 1, 1000000, "10000",
     "open connections per worker; more wait in the kernel backlog"},
    {"MAX_INFLIGHT", T_INT, OFF(max_inflight), 1, 1000000, "1024",
     "requests in progress per worker; more are shed with 503"},
    {"TRUSTED_PROXIES", T_STR, OFF(trusted_proxies), 0, 0, "",
     "comma-separated CIDRs whose X-Forwarded-For is believed (rate limits, access log); empty trusts none"},
    {"HTTP2", T_BOOL, OFF(http2), 0, 1, "0",
     "serve cleartext HTTP/2 (h2c); off: h2o 2.2.5 lacks the Rapid Reset fix"},
    {"API_DEBUG_ROUTES", T_BOOL, OFF(debug_routes), 0, 1, "0", "enable /debug/* routes (tests only)"},
    {"LOG_LEVEL", T_LEVEL, OFF(log_level), 0, 0, "info", "trace, debug, info, warn, error or fatal"},
    {"OTEL_EXPORTER_OTLP_ENDPOINT", T_STR, OFF(otel_endpoint), 0, 0, NULL,
     "OTLP/HTTP collector base URL; spans go to <endpoint>/v1/traces as OTLP JSON; unset = no trace export"},
    {"OTEL_SERVICE_NAME", T_STR, OFF(otel_service_name), 0, 0, "api", "service.name of exported spans"},
    {"OTEL_TRACES_SAMPLER_ARG", T_RATIO, OFF(otel_sampler_ratio), 0, 0, "1.0",
     "share of requests without a sampled parent that are traced, 0..1 (a sampled traceparent is followed)"},
    {"OTEL_BSP_MAX_QUEUE_SIZE", T_INT, OFF(otel_queue_spans), 1, 1048576, "2048",
     "finished spans queued per worker for export; more are dropped and counted"},
    {"OTEL_BSP_SCHEDULE_DELAY", T_INT, OFF(otel_schedule_delay_ms), 1, 600000, "1000",
     "longest wait of a span for its export batch, ms"},
    {"OTEL_BSP_MAX_EXPORT_BATCH_SIZE", T_INT, OFF(otel_batch_spans), 1, 65536, "512",
     "spans per export request"},
    {"OTEL_EXPORTER_OTLP_TIMEOUT", T_INT, OFF(otel_timeout_ms), 1, 600000, "10000",
     "deadline of one export request, ms"},
};

#define NVARS (sizeof(vars) / sizeof(vars[0]))

static bool is_empty(const char *s)
{
    return s == NULL || s[0] == '\0';
}

bool config_host_is_loopback(const char *host)
{
    struct in_addr a4;
    struct in6_addr a6;
    if (inet_pton(AF_INET, host, &a4) == 1) {
        return (ntohl(a4.s_addr) >> 24) == 127;
    }
    return inet_pton(AF_INET6, host, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/* https://, or http:// to a loopback host: keys fetched in the clear from
   anywhere else could be replaced on the way. */
static bool jwks_url_ok(const char *url)
{
    str_t u = str_from_cstr(url);
    if (u.len > 8 && str_eq_nocase(str_make(url, 8), STR("https://"))) {
        return true;
    }
    if (u.len <= 7 || !str_eq_nocase(str_make(url, 7), STR("http://"))) {
        return false;
    }
    const char *host = url + 7;
    size_t n = strcspn(host, "/?#");
    if (memchr(host, '@', n) != NULL) {
        return false; /* no userinfo: keep the check simple and unambiguous */
    }
    char h[64];
    if (n == 0 || n >= sizeof(h)) {
        return false;
    }
    memcpy(h, host, n);
    h[n] = '\0';
    char *port = NULL;
    if (h[0] == '[') {
        char *close = strchr(h, ']');
        if (close == NULL || (close[1] != '\0' && close[1] != ':')) {
            return false;
        }
        *close = '\0';
        return config_host_is_loopback(h + 1);
    }
    port = strchr(h, ':');
    if (port != NULL) {
        *port = '\0';
    }
    return strcmp(h, "localhost") == 0 || config_host_is_loopback(h);
}

static int set_value(config_t *c, const var_t *v, const char *value, const char *source, char *err,
                     size_t errlen)
{
    char *field = (char *)c + v->offset;
    str_t s = str_from_cstr(value);
    switch (v->type) {
    case T_STR:
        *(const char **)(void *)field = value;
        return 0;
    case T_INT: {
        int64_t n;
        if (str_to_i64(s, v->min, v->max, &n) != 0) {
            snprintf(err, errlen, "invalid %s %s=\"%.64s\": expected an integer in %lld..%lld", source,
                     v->env, value, (long long)v->min, (long long)v->max);
            return ERR_INVAL;
        }
        *(int64_t *)(void *)field = n;
        return 0;
    }
    case T_BOOL:
        if (str_eq(s, STR("1")) || str_eq_nocase(s, STR("true")) || str_eq_nocase(s, STR("yes"))) {
            *(bool *)(void *)field = true;
        } else if (str_eq(s, STR("0")) || str_eq_nocase(s, STR("false")) || str_eq_nocase(s, STR("no"))) {
            *(bool *)(void *)field = false;
        } else {
            snprintf(err, errlen, "invalid %s %s=\"%.64s\": expected 0 or 1", source, v->env, value);
            return ERR_INVAL;
        }
        return 0;
    case T_LEVEL: {
        log_level_t level;
        if (log_level_parse(s, &level) != 0) {
            snprintf(err, errlen,
                     "invalid %s %s=\"%.64s\": expected trace, debug, info, warn, error or fatal", source,
                     v->env, value);
            return ERR_INVAL;
        }
        *(log_level_t *)(void *)field = level;
        return 0;
    }
    case T_RATIO: {
        char *end;
        double r = strtod(value, &end);
        if (value[0] == '\0' || *end != '\0' || !(r >= 0.0 && r <= 1.0)) {
            snprintf(err, errlen, "invalid %s %s=\"%.64s\": expected a number in 0..1", source, v->env,
                     value);
            return ERR_INVAL;
        }
        *(double *)(void *)field = r;
        return 0;
    }
    }
    return ERR_INVAL;
}

/* "--database-url" <-> "DATABASE_URL" */
static bool flag_matches(str_t flag, const char *env)
{
    size_t n = strlen(env);
    if (flag.len != n) {
        return false;
    }
    for (size_t i = 0; i < n; i++) {
        char want = env[i] == '_' ? '-' : (char)(env[i] >= 'A' && env[i] <= 'Z' ? env[i] + 32 : env[i]);
        if (flag.ptr[i] != want) {
            return false;
        }
    }
    return true;
}

static const var_t *find_flag(str_t flag)
{
    for (size_t i = 0; i < NVARS; i++) {
        if (flag_matches(flag, vars[i].env)) {
            return &vars[i];
        }
    }
    return NULL;
}

int config_load(config_t *c, config_getenv_fn getenv_fn, int argc, char **argv, int *rest_argc,
                char **rest_argv, char *err, size_t errlen)
{
    *c = (config_t){0};
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    if (cpus < 1) {
        cpus = 1;
    }
    c->workers = cpus > 256 ? 256 : cpus;
    c->db_pool_size = 2 * cpus > 1024 ? 1024 : 2 * cpus;

    for (size_t i = 0; i < NVARS; i++) {
        if (vars[i].def != NULL && set_value(c, &vars[i], vars[i].def, "default", err, errlen) != 0) {
            return ERR_INVAL;
        }
    }
    for (size_t i = 0; i < NVARS; i++) {
        const char *value = getenv_fn(vars[i].env);
        if (value == NULL) {
            continue;
        }
        /* An empty value means "unset" except for REDIS_URL, where the
           contract gives empty its own meaning (no Redis). */
        if (value[0] == '\0' && vars[i].type != T_STR) {
            continue;
        }
        if (set_value(c, &vars[i], value, "environment variable", err, errlen) != 0) {
            return ERR_INVAL;
        }
    }

    *rest_argc = 0;
    for (int i = 0; i < argc; i++) {
        str_t arg = str_from_cstr(argv[i]);
        if (!str_starts_with(arg, STR("--")) || arg.len == 2) {
            rest_argv[(*rest_argc)++] = argv[i];
            continue;
        }
        str_t name = str_make(arg.ptr + 2, arg.len - 2);
        const char *value = NULL;
        const char *eq = memchr(name.ptr, '=', name.len);
        if (eq != NULL) {
            value = eq + 1;
            name.len = (size_t)(eq - name.ptr);
        }
        const var_t *v = find_flag(name);
        if (v == NULL) {
            rest_argv[(*rest_argc)++] = argv[i]; /* --help, --version: the caller's */
            continue;
        }
        if (value == NULL) {
            if (i + 1 >= argc) {
                snprintf(err, errlen, "flag --%.*s (%s) needs a value", (int)name.len, name.ptr, v->env);
                return ERR_INVAL;
            }
            value = argv[++i];
        }
        if (set_value(c, v, value, "flag for", err, errlen) != 0) {
            return ERR_INVAL;
        }
    }

    if (c->database_migration_url == NULL || c->database_migration_url[0] == '\0') {
        c->database_migration_url = c->database_url;
    }
    if (c->host[0] == '\0') {
        snprintf(err, errlen, "invalid environment variable HOST: empty");
        return ERR_INVAL;
    }
    http_cidrs_t proxies; /* checked here; app_serve parses it again for the server */
    if (http_cidrs_parse(c->trusted_proxies, &proxies, err, errlen) != 0) {
        return ERR_INVAL;
    }
    if (db_secret_check("DATABASE_URL", c->database_url, err, errlen) != 0 ||
        db_secret_check("DATABASE_MIGRATION_URL", c->database_migration_url, err, errlen) != 0) {
        return ERR_INVAL;
    }
    if (is_empty(c->jwt_jwks_file)) {
        c->jwt_jwks_file = NULL;
    }
    if (is_empty(c->jwt_jwks_url)) {
        c->jwt_jwks_url = NULL;
    } else if (!jwks_url_ok(c->jwt_jwks_url)) {
        snprintf(err, errlen,
                 "invalid environment variable JWT_JWKS_URL: expected https://..., or http:// to a loopback "
                 "address");
        return ERR_INVAL;
    }
    if (c->jwt_jwks_min_refresh_s > c->jwt_jwks_max_refresh_s) {
        snprintf(err, errlen,
                 "invalid environment variable JWT_JWKS_MIN_REFRESH_S: larger than "
                 "JWT_JWKS_MAX_REFRESH_S");
        return ERR_INVAL;
    }
    if (is_empty(c->otel_endpoint)) {
        c->otel_endpoint = NULL;
    } else {
        char url[1024];
        if (otlp_traces_url(c->otel_endpoint, url, sizeof(url)) != 0) {
            snprintf(
                err, errlen,
                "invalid environment variable OTEL_EXPORTER_OTLP_ENDPOINT: expected an http:// or https:// "
                "URL");
            return ERR_INVAL;
        }
    }
    if (is_empty(c->otel_service_name)) {
        c->otel_service_name = "api";
    }
    if (is_empty(c->jwt_issuer)) {
        c->jwt_issuer = NULL;
    }
    if (is_empty(c->jwt_audience)) {
        c->jwt_audience = NULL;
    }
    if (is_empty(c->jwt_secret)) {
        /* The development key is in the public source: it may sign tokens
           only for a server nobody else can reach, and never next to real
           identity-provider keys (CONTRACT.md, JWT_SECRET). */
        bool dev = config_host_is_loopback(c->host) && c->jwt_jwks_file == NULL && c->jwt_jwks_url == NULL;
        c->jwt_secret = dev ? DEV_JWT_SECRET : NULL;
        c->jwt_secret_is_default = dev;
    } else if (strlen(c->jwt_secret) < 32) {
        /* RFC 7518 section 3.2: an HS256 key must be at least 256 bits. */
        snprintf(err, errlen, "invalid environment variable JWT_SECRET: must be at least 32 bytes");
        return ERR_INVAL;
    }
    if (c->cursor_secret == NULL || c->cursor_secret[0] == '\0') {
        c->cursor_secret = DEV_CURSOR_SECRET;
        c->cursor_secret_is_default = true;
    } else if (strlen(c->cursor_secret) < 32) {
        snprintf(err, errlen, "invalid environment variable CURSOR_SECRET: must be at least 32 bytes");
        return ERR_INVAL;
    }
    if (strcmp(c->rate_limit_fail_mode, "local") != 0 && strcmp(c->rate_limit_fail_mode, "open") != 0 &&
        strcmp(c->rate_limit_fail_mode, "closed") != 0) {
        snprintf(
            err, errlen,
            "invalid environment variable RATE_LIMIT_FAIL_MODE=\"%.32s\": expected local, open or closed",
            c->rate_limit_fail_mode);
        return ERR_INVAL;
    }
    return 0;
}

int config_check_serve(const config_t *c, char *err, size_t errlen)
{
    if (c->jwt_secret == NULL && c->jwt_jwks_file == NULL && c->jwt_jwks_url == NULL) {
        snprintf(err, errlen,
                 "no JWT key: set JWT_JWKS_URL, JWT_JWKS_FILE or JWT_SECRET (the development key is only "
                 "used on a loopback HOST without a JWKS)");
        return ERR_INVAL;
    }
    return 0;
}

void config_print_help(void *file)
{
    FILE *f = file;
    fprintf(f, "Configuration (environment variable, or the flag --name-in-lower-case):\n");
    for (size_t i = 0; i < NVARS; i++) {
        fprintf(f, "  %-28s %s", vars[i].env, vars[i].help);
        if (vars[i].def != NULL && vars[i].def[0] != '\0') {
            fprintf(f, " [%s]", vars[i].def);
        }
        fputc('\n', f);
    }
}
