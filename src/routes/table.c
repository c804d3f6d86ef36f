/* table: every route of the API. The order matters only for readability:
   matching is exact per segment, so no two routes overlap. */
#include "routes/routes.h"
#include "base/banned.h"

const http_route_t routes_table[] = {
    {HTTP_GET, "/health/live", routes_health_live, NULL, 0, 0},
    {HTTP_GET, "/health/ready", routes_health_ready, NULL, 0, 0},
    {HTTP_GET, "/debug/sleep", routes_debug_sleep, NULL, HTTP_ROUTE_DEBUG, 0},
};

const size_t routes_count = sizeof(routes_table) / sizeof(routes_table[0]);
