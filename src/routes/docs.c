/*
 * docs: the API reference page (GET /docs) and its script and stylesheet
 * (GET /docs/{file}), compiled into the binary from openapi/ui/.
 *
 * The page renders the OpenAPI document in the browser: it fetches
 * `openapi.json` by a relative URL, so it works behind any path prefix.
 * Nothing it loads comes from another host, and the Content-Security-Policy
 * says so to the browser as well: scripts, styles and fetches from this
 * origin only, no frames, no forms, no plugins.
 */
#include <string.h>

#include "base/embedded.h"
#include "routes/routes.h"
#include "base/banned.h"

#define DOCS_INDEX "index.html"

/* 'self' only; img-src data: for inline SVG-free icons the stylesheet may use. */
#define DOCS_CSP                                                                                             \
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "                          \
    "img-src 'self' data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

static const embedded_file_t *find_asset(str_t name)
{
    for (size_t i = 0; i < embedded_assets_count; i++) {
        if (str_eq(name, str_from_cstr(embedded_assets[i].name))) {
            return &embedded_assets[i];
        }
    }
    return NULL;
}

static str_t content_type_of(str_t name)
{
    static const struct {
        str_t ext;
        str_t type;
    } types[] = {
        {STR(".html"), STR("text/html; charset=utf-8")},
        {STR(".js"), STR("text/javascript; charset=utf-8")},
        {STR(".css"), STR("text/css; charset=utf-8")},
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        str_t ext = types[i].ext;
        if (name.len > ext.len && memcmp(name.ptr + name.len - ext.len, ext.ptr, ext.len) == 0) {
            return types[i].type;
        }
    }
    return STR("application/octet-stream");
}

static void send_asset(http_ctx_t *ctx, const embedded_file_t *f)
{
    str_t name = str_from_cstr(f->name);
    http_header_add(ctx, STR("cache-control"), STR("public, max-age=300"));
    http_header_add(ctx, STR("content-security-policy"), STR(DOCS_CSP));
    http_header_add(ctx, STR("x-content-type-options"), STR("nosniff"));
    http_header_add(ctx, STR("referrer-policy"), STR("no-referrer"));
    http_respond(ctx, 200, content_type_of(name), str_make(f->data, f->len));
}

void routes_docs(http_ctx_t *ctx)
{
    const embedded_file_t *f = find_asset(STR(DOCS_INDEX));
    if (f == NULL) {
        /* a build without openapi/ui: a bug of the build, not of the client */
        http_respond_error(ctx, 500, "internal", "the documentation page is not in this build");
        return;
    }
    send_asset(ctx, f);
}

void routes_docs_file(http_ctx_t *ctx)
{
    str_t name = http_match_param(&ctx->match, STR("file"));
    const embedded_file_t *f = find_asset(name);
    /* The page itself lives at /docs only: one URL, one base for its
       relative links. */
    if (f == NULL || str_eq(name, STR(DOCS_INDEX))) {
        http_respond_error(ctx, 404, "not-found", "no such file of the documentation page");
        return;
    }
    send_asset(ctx, f);
}
