/*
 * auth: Bearer JWT (RFC 6750) authentication, in two pipeline steps.
 *
 * authn (every /v1 request, before rate limiting): verifies a token if one
 * is sent and records the caller, so the rate limiter can meter by `sub`;
 * it never answers. authz (API routes, after routing): answers
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
mw_result_t mw_authn_run(http_ctx_t *ctx);
mw_result_t mw_authz_run(http_ctx_t *ctx);

#endif
