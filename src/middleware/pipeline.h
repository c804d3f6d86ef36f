/*
 * pipeline: the ordered steps every request goes through, in one place.
 *
 *   authn -> rate limit (429) -> route check (404/405) -> authz (401/403)
 *         -> idempotency (replay / 409 / 422) -> route handler
 *
 * Rate limiting comes before routing and authorization because the contract
 * puts its headers on every /v1 answer, 401, 404 and 405 included. A step returns MW_NEXT (go on),
 * MW_DONE (it answered) or MW_SUSPEND (it started async work and will call mw_resume exactly once, or answer
 * itself). The handler step always owns the response.
 */
#ifndef MIDDLEWARE_PIPELINE_H
#define MIDDLEWARE_PIPELINE_H

#include "http/server.h"

typedef enum { MW_NEXT, MW_DONE, MW_SUSPEND } mw_result_t;

/* The http_dispatch_fn: runs ctx from its current step. */
void mw_run(http_ctx_t *ctx);
/* Continues after a suspended step, with the step after it. */
void mw_resume(http_ctx_t *ctx);

#endif
