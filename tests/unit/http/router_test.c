/* router: matching, parameters, 404 vs 405 and the Allow set. */
#include "http/router.h"
#include "test.h"

static void h(struct http_ctx *ctx)
{
    (void)ctx;
}

static const http_route_t table[] = {
    {HTTP_GET | HTTP_POST, "/v1/users", h, NULL, 0, 0},
    {HTTP_GET | HTTP_PATCH | HTTP_DELETE, "/v1/users/{id}", h, NULL, 0, 0},
    {HTTP_GET, "/health/live", h, NULL, 0, 0},
    {HTTP_GET, "/debug/sleep", h, NULL, HTTP_ROUTE_DEBUG, 0},
};

TEST(router_matches_literal_and_param)
{
    http_router_t *r = http_router_new(table, 4, 0);
    http_match_t m;
    CHECK(r != NULL);
    CHECK_INT_EQ(http_router_match(r, HTTP_GET, STR("/v1/users"), &m), HTTP_ROUTE_FOUND);
    CHECK(m.route == &table[0]);
    CHECK_INT_EQ(http_router_match(r, HTTP_PATCH, STR("/v1/users/abc-1"), &m), HTTP_ROUTE_FOUND);
    CHECK(m.route == &table[1]);
    str_t id = http_match_param(&m, STR("id"));
    CHECK_MEM_EQ(id.ptr, id.len, "abc-1");
    CHECK(http_match_param(&m, STR("nope")).ptr == NULL);
    http_router_free(r);
}

TEST(router_head_follows_get)
{
    http_router_t *r = http_router_new(table, 4, 0);
    http_match_t m;
    CHECK_INT_EQ(http_router_match(r, HTTP_HEAD, STR("/health/live"), &m), HTTP_ROUTE_FOUND);
    http_router_free(r);
}

TEST(router_not_found_cases)
{
    http_router_t *r = http_router_new(table, 4, 0);
    http_match_t m;
    const char *paths[] = {"/",
                           "",
                           "/v1",
                           "/v1/users/",
                           "/v1/users/a/b",
                           "/v1//users",
                           "/V1/users",
                           "users",
                           "/v1/users/a/b/c/d/e/f/g/h/i/j",
                           "/debug/sleep"};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        if (http_router_match(r, HTTP_GET, str_from_cstr(paths[i]), &m) != HTTP_ROUTE_NOT_FOUND) {
            test_fail(__FILE__, __LINE__, "path \"%s\" should be 404", paths[i]);
        }
    }
    http_router_free(r);
}

TEST(router_debug_routes_only_when_enabled)
{
    http_router_t *r = http_router_new(table, 4, HTTP_ROUTE_DEBUG);
    http_match_t m;
    CHECK_INT_EQ(http_router_match(r, HTTP_GET, STR("/debug/sleep"), &m), HTTP_ROUTE_FOUND);
    http_router_free(r);
}

TEST(router_bad_method_reports_allow)
{
    http_router_t *r = http_router_new(table, 4, 0);
    http_match_t m;
    CHECK_INT_EQ(http_router_match(r, HTTP_PUT, STR("/v1/users/x"), &m), HTTP_ROUTE_BAD_METHOD);
    CHECK_INT_EQ(m.allow, HTTP_GET | HTTP_HEAD | HTTP_PATCH | HTTP_DELETE);
    char allow[64];
    size_t n = http_methods_format(m.allow, allow, sizeof(allow));
    CHECK_MEM_EQ(allow, n, "GET, HEAD, PATCH, DELETE");
    /* an unknown method (0) on a known path is a 405 too */
    CHECK_INT_EQ(http_router_match(r, 0, STR("/health/live"), &m), HTTP_ROUTE_BAD_METHOD);
    http_router_free(r);
}

TEST(router_method_parse)
{
    CHECK_INT_EQ(http_method_parse(STR("GET")), HTTP_GET);
    CHECK_INT_EQ(http_method_parse(STR("DELETE")), HTTP_DELETE);
    CHECK_INT_EQ(http_method_parse(STR("get")), 0); /* methods are case-sensitive (RFC 9110 9.1) */
    CHECK_INT_EQ(http_method_parse(STR("BREW")), 0);
}

TEST(router_rejects_bad_patterns)
{
    static const http_route_t bad[] = {{HTTP_GET, "no-slash", h, NULL, 0, 0}};
    CHECK(http_router_new(bad, 1, 0) == NULL);
    static const http_route_t many[] = {{HTTP_GET, "/{a}/{b}/{c}/{d}/{e}", h, NULL, 0, 0}};
    CHECK(http_router_new(many, 1, 0) == NULL);
}
