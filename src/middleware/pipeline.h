/*
 * pipeline: the ordered steps every request goes through, in one place.
 *
 *   route check (404/405) -> auth (401/403) -> route handler
 *
 * Later steps (rate limit, idempotency) slot into the table in pipeline.c. A step returns MW_NEXT (go on),
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
