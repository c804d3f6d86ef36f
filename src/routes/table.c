/* table: every route of the API. The order matters only for readability:
   matching is exact per segment, so no two routes overlap. */
#include "routes/routes.h"
#include "base/banned.h"

#define API      (HTTP_ROUTE_API)
#define API_BODY (HTTP_ROUTE_API | HTTP_ROUTE_HAS_BODY | HTTP_ROUTE_IDEMPOTENT)

const http_route_t routes_table[] = {
    {HTTP_GET, "/v1/users", routes_users_list, "users:read", API, 0},
    {HTTP_POST, "/v1/users", routes_users_create, "users:write", API_BODY, 0},
    {HTTP_GET, "/v1/users/{id}", routes_users_get, "users:read", API, 0},
    {HTTP_PATCH, "/v1/users/{id}", routes_users_update, "users:write", API_BODY, 0},
    {HTTP_DELETE, "/v1/users/{id}", routes_users_delete, "users:write", API, 0},
    {HTTP_GET, "/openapi.json", routes_openapi, NULL, 0, 0},
    {HTTP_GET, "/docs", routes_docs, NULL, 0, 0},
    {HTTP_GET, "/docs/{file}", routes_docs_file, NULL, 0, 0},
    {HTTP_GET, "/health/live", routes_health_live, NULL, 0, 0},
    {HTTP_GET, "/health/ready", routes_health_ready, NULL, 0, 0},
    {HTTP_GET, "/metrics", routes_metrics, NULL, 0, 0},
    {HTTP_GET, "/debug/sleep", routes_debug_sleep, NULL, HTTP_ROUTE_DEBUG, 0},
    {HTTP_GET, "/debug/block", routes_debug_block, NULL, HTTP_ROUTE_DEBUG, 0},
};

const size_t routes_count = sizeof(routes_table) / sizeof(routes_table[0]);
