/*
 * main: the `api` command line.
 *
 *   api [serve]     run the server (the default)
 *   api migrate     apply pending database migrations and exit
 *   api --help | --version
 *
 * --version prints the VERSION file's version and, when built from a git
 * checkout, the commit (API_COMMIT, passed by the Makefile).
 *
 * Configuration is read and validated before anything starts; a bad value
 * exits with status 2 and one line naming the variable.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "app/app.h"
#include "app/config.h"
#include "db/capacity.h"
#include "db/migrate.h"
#include "obs/log.h"
#include "base/banned.h"

static void usage(FILE *f)
{
    fprintf(f, "usage: api [serve|migrate] [--name value ...]\n"
               "       api --help | --version\n\n"
               "  serve     run the HTTP API server (default)\n"
               "  migrate   apply pending database migrations (DATABASE_MIGRATION_URL) and exit\n\n");
    config_print_help(f);
}

static const char *env_lookup(const char *name)
{
    return getenv(name);
}

int main(int argc, char **argv)
{
    char **rest = calloc((size_t)argc + 1, sizeof(char *));
    if (rest == NULL) {
        return 1;
    }
    int nrest = 0;
    int rc = 2;
    config_t cfg;
    char err[256];

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(stdout);
            rc = 0;
            goto out;
        }
        if (strcmp(argv[i], "--version") == 0 || strcmp(argv[i], "-V") == 0) {
#ifdef API_COMMIT
            printf("api %s (commit %s)\n", API_VERSION, API_COMMIT);
#else
            printf("api %s\n", API_VERSION);
#endif
            rc = 0;
            goto out;
        }
    }
    if (config_load(&cfg, env_lookup, argc - 1, argv + 1, &nrest, rest, err, sizeof(err)) != 0) {
        fprintf(stderr, "api: %s\n", err);
        goto out;
    }
    const char *cmd = nrest > 0 ? rest[0] : "serve";
    if (nrest > 1 || (strcmp(cmd, "serve") != 0 && strcmp(cmd, "migrate") != 0)) {
        fprintf(stderr, "api: unknown argument \"%s\" (try --help)\n", nrest > 1 ? rest[1] : cmd);
        goto out;
    }
    log_set_level(cfg.log_level);

    if (strcmp(cmd, "migrate") == 0) {
        if (db_migrate(cfg.database_migration_url, cfg.database_url, err, sizeof(err)) != 0) {
            log_error("migrate failed: %s", err);
            rc = 1;
        } else {
            rc = 0;
        }
        goto out;
    }

    if (config_check_serve(&cfg, err, sizeof(err)) != 0) {
        fprintf(stderr, "api: %s\n", err);
        goto out;
    }
    /* serve: from here a SIGTERM is taken by app_serve's sigwait, however
       early it comes (see app_block_signals) */
    sigset_t signals;
    if (app_block_signals(&signals) != 0) {
        fprintf(stderr, "api: cannot block the termination signals\n");
        rc = 1;
        goto out;
    }
    if (cfg.jwt_secret_is_default) {
        log_warn("JWT_SECRET is not set: accepting HS256 tokens signed with the public development key, "
                 "because HOST is loopback and no JWKS is configured");
    }
    if (cfg.cursor_secret_is_default) {
        log_warn("CURSOR_SECRET is not set: using the development key; never do this in production");
    }
    /* Before any pool connects: a pool that cannot fit stops the start
       (a SIGTERM meanwhile stays pending for app_serve). */
    db_capacity_opts_t cap = {.instances = cfg.db_instances,
                              .pool_size = cfg.db_pool_size,
                              .workers = cfg.workers,
                              .max_connections = cfg.db_max_connections,
                              .timeout_ms = 2000};
    if (db_capacity_check(cfg.database_url, &cap, err, sizeof(err)) != 0) {
        fprintf(stderr, "api: %s\n", err);
        goto out;
    }
    if (log_start() != 0) {
        fprintf(stderr, "api: cannot start the log writer thread\n");
        rc = 1;
        goto out;
    }
    rc = app_serve(&cfg, &signals);
    log_stop();
out:
    free(rest);
    return rc;
}
