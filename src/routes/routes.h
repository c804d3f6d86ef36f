/*
 * routes: the route table, and the handlers that translate HTTP to domain
 * calls and back. Handlers validate input, call services, render JSON and
 * map errors through http/problem; they never touch sockets or SQL.
 */
#ifndef ROUTES_ROUTES_H
#define ROUTES_ROUTES_H

#include <stdbool.h>
#include <stddef.h>

#include "http/server.h"

extern const http_route_t routes_table[];
extern const size_t routes_count;

void routes_health_live(http_ctx_t *ctx);
void routes_health_ready(http_ctx_t *ctx);
/* What /health/ready would answer now on ctx's worker (true: 200). */
bool routes_health_is_ready(const http_ctx_t *ctx);
void routes_metrics(http_ctx_t *ctx);
void routes_debug_sleep(http_ctx_t *ctx);
void routes_debug_block(http_ctx_t *ctx);
void routes_openapi(http_ctx_t *ctx);
void routes_docs(http_ctx_t *ctx);
void routes_docs_file(http_ctx_t *ctx);
void routes_users_get(http_ctx_t *ctx);
void routes_users_list(http_ctx_t *ctx);
void routes_users_create(http_ctx_t *ctx);
void routes_users_update(http_ctx_t *ctx);
void routes_users_delete(http_ctx_t *ctx);

#endif
