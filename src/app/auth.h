/*
 * auth (app): turns the JWT_* configuration into the token verifier the
 * auth middleware uses, and runs the JWKS fetch thread when JWT_JWKS_URL is
 * set. One call before the workers start, one after they have stopped.
 */
#ifndef APP_AUTH_H
#define APP_AUTH_H

#include <stddef.h>

#include "app/config.h"

/*
 * Reads JWT_JWKS_FILE (when set: a file that cannot be read or holds no
 * usable key is an error), builds the verifier, hands it to the auth
 * middleware and starts the JWKS fetcher, which loads JWT_JWKS_URL in the
 * background. Call from the main thread with SIGTERM/SIGINT blocked.
 * Returns 0, or an error with one line in err (nothing left running).
 */
int app_auth_start(const config_t *cfg, char *err, size_t errlen) __attribute__((warn_unused_result));

/* Stops the fetcher and frees the verifier; after the workers have exited. */
void app_auth_stop(void);

#endif
