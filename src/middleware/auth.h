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

/*
 * The verification authn makes, through this thread's cache of verified
 * tokens: the cached claims (valid until this thread's next call) when the
 * token verified before and is still current, else the result of
 * jwt_verify() in *fresh (NULL with the reason in *err when it fails).
 * Exposed for the verify benchmark; any thread, each with its own cache.
 */
const jwt_claims_t *mw_auth_verify_cached(const jwt_verifier_t *v, str_t token, int64_t now,
                                          jwt_claims_t *fresh, jwt_error_t *err);
mw_result_t mw_authn_run(http_ctx_t *ctx);
mw_result_t mw_authz_run(http_ctx_t *ctx);

#endif
