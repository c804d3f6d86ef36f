/* openapi: serves the OpenAPI document compiled into the binary. */
#include "base/embedded.h"
#include "routes/routes.h"
#include "base/banned.h"

void routes_openapi(http_ctx_t *ctx)
{
    http_header_add(ctx, STR("cache-control"), STR("public, max-age=300"));
    http_respond(ctx, 200, STR("application/json"), str_make(embedded_openapi.data, embedded_openapi.len));
}
