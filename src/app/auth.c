/* auth (app): verifier and JWKS fetcher set-up and teardown. */
#include "app/auth.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "middleware/auth.h"
#include "middleware/jwks.h"
#include "middleware/jwks_fetch.h"
#include "middleware/jwt.h"
#include "obs/log.h"
#include "base/banned.h"

static jwt_verifier_t *verifier;
static jwks_fetcher_t *fetcher;

/* Reads the whole of path (at most max bytes) into a heap buffer. */
static int read_file(const char *path, size_t max, char **out, size_t *len, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        snprintf(err, errlen, "cannot read JWT_JWKS_FILE %s: %s", path, strerror(errno));
        return ERR_IO;
    }
    char *buf = malloc(max + 1);
    size_t n = buf ? fread(buf, 1, max + 1, f) : 0;
    int rc = 0;
    if (buf == NULL) {
        snprintf(err, errlen, "out of memory");
        rc = ERR_NOMEM;
    } else if (ferror(f)) {
        snprintf(err, errlen, "cannot read JWT_JWKS_FILE %s: %s", path, strerror(errno));
        rc = ERR_IO;
    } else if (n > max) {
        snprintf(err, errlen, "JWT_JWKS_FILE %s is larger than JWT_JWKS_MAX_BYTES (%zu)", path, max);
        rc = ERR_RANGE;
    }
    fclose(f);
    if (rc != 0) {
        free(buf);
        return rc;
    }
    *out = buf;
    *len = n;
    return 0;
}

static int load_file(const config_t *cfg, jwks_t **out, char *err, size_t errlen)
{
    char *doc = NULL;
    size_t len = 0;
    int rc = read_file(cfg->jwt_jwks_file, (size_t)cfg->jwt_jwks_max_bytes, &doc, &len, err, errlen);
    if (rc != 0) {
        return rc;
    }
    char why[200];
    jwks_report_t rep;
    rc = jwks_parse(doc, len, out, &rep, why, sizeof(why));
    free(doc);
    if (rc != 0) {
        snprintf(err, errlen, "invalid JWT_JWKS_FILE %s: %s", cfg->jwt_jwks_file, why);
        return rc;
    }
    if (rep.used == 0) {
        snprintf(err, errlen, "JWT_JWKS_FILE %s holds no usable RS256/ES256 key (%s)", cfg->jwt_jwks_file,
                 rep.skipped ? rep.why : "it is empty");
        jwks_unref(*out);
        *out = NULL;
        return ERR_INVAL;
    }
    if (rep.skipped > 0) {
        log_warn("JWT_JWKS_FILE: %zu keys skipped (%s)", rep.skipped, rep.why);
    }
    log_info("JWT_JWKS_FILE: %zu keys loaded", rep.used);
    return 0;
}

int app_auth_start(const config_t *cfg, char *err, size_t errlen)
{
    jwks_t *file_keys = NULL;
    if (cfg->jwt_jwks_file != NULL && load_file(cfg, &file_keys, err, errlen) != 0) {
        return ERR_INVAL;
    }
    if (cfg->jwt_jwks_url != NULL) {
        jwks_fetch_opts_t fo = {
            .url = cfg->jwt_jwks_url,
            .timeout_ms = cfg->jwt_jwks_timeout_ms,
            .max_bytes = (size_t)cfg->jwt_jwks_max_bytes,
            .min_refresh_s = cfg->jwt_jwks_min_refresh_s,
            .max_refresh_s = cfg->jwt_jwks_max_refresh_s,
            .kid_cooldown_s = cfg->jwt_jwks_kid_cooldown_s,
        };
        fetcher = jwks_fetcher_new(&fo);
        if (fetcher == NULL) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
    }
    jwt_verifier_opts_t jo = {
        .hs256_secret = cfg->jwt_secret,
        .hs256_secret_len = cfg->jwt_secret ? strlen(cfg->jwt_secret) : 0,
        .issuer = cfg->jwt_issuer,
        .audience = cfg->jwt_audience,
        .leeway_s = cfg->jwt_leeway_s,
        .require_exp = cfg->jwt_require_exp,
        .static_keys = file_keys,
        .dynamic_keys = fetcher != NULL,
        .on_unknown_kid = fetcher ? jwks_fetcher_want_kid : NULL,
        .on_unknown_kid_arg = fetcher,
    };
    verifier = jwt_verifier_new(&jo);
    jwks_unref(file_keys); /* the verifier holds its own reference */
    file_keys = NULL;
    if (verifier == NULL) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (fetcher != NULL && jwks_fetcher_start(fetcher, verifier) != 0) {
        snprintf(err, errlen, "cannot start the JWKS fetch thread");
        goto fail;
    }
    mw_auth_init(verifier);
    return 0;
fail:
    jwks_unref(file_keys);
    jwks_fetcher_free(fetcher);
    fetcher = NULL;
    jwt_verifier_free(verifier);
    verifier = NULL;
    return ERR_INVAL;
}

void app_auth_stop(void)
{
    mw_auth_init(NULL);
    jwks_fetcher_free(fetcher); /* first: its thread feeds the verifier */
    fetcher = NULL;
    jwt_verifier_free(verifier);
    verifier = NULL;
}
