/*
 * auth: the pipeline step that authenticates API routes (HTTP_ROUTE_API)
 * with a Bearer JWT (RFC 6750) and checks the route's scope.
 *
 *   no or non-Bearer credentials -> 401, WWW-Authenticate: Bearer realm="api"
 *   invalid token                -> 401, ... error="invalid_token"
 *   valid, scope missing         -> 403, ... error="insufficient_scope"
 *
 * The verifier is set once before workers start and only read afterwards.
 */
#ifndef MIDDLEWARE_AUTH_H
#define MIDDLEWARE_AUTH_H

#include "middleware/jwt.h"
#include "middleware/pipeline.h"

void mw_auth_init(const jwt_verifier_t *verifier);
mw_result_t mw_auth_run(http_ctx_t *ctx);

#endif
