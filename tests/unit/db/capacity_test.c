/* capacity: instances x pool size against the budget, and the message. */
#include "base/err.h"
#include "db/capacity.h"
#include "test.h"

TEST(capacity_fits_up_to_the_budget)
{
    char err[256] = "";
    CHECK_INT_EQ(db_capacity_fits(3, 4, 12, "X", err, sizeof(err)), 0);
    CHECK_INT_EQ(db_capacity_fits(1, 1, 1, "X", err, sizeof(err)), 0);
    CHECK_INT_EQ(db_capacity_fits(10000, 1024, 10240000, "X", err, sizeof(err)), 0);
    CHECK(err[0] == '\0');
}

TEST(capacity_over_the_budget_names_the_variables)
{
    char err[256] = "";
    CHECK_INT_EQ(db_capacity_fits(3, 8, 20, "DATABASE_MAX_CONNECTIONS", err, sizeof(err)), ERR_RANGE);
    CHECK(strstr(err, "DATABASE_INSTANCES (3)") != NULL);
    CHECK(strstr(err, "DATABASE_POOL_SIZE (8)") != NULL);
    CHECK(strstr(err, "= 24 connections") != NULL);
    CHECK(strstr(err, "DATABASE_MAX_CONNECTIONS allows (20)") != NULL);
    CHECK_INT_EQ(db_capacity_fits(1, 2, 1, "X", err, sizeof(err)), ERR_RANGE);
    CHECK_INT_EQ(db_capacity_fits(1, 1, 0, "X", err, sizeof(err)), ERR_RANGE);
}

TEST(capacity_unreachable_database_is_a_bounded_error)
{
    char err[256] = "";
    db_capacity_server_t s;
    /* port 1 on loopback refuses at once */
    CHECK_INT_EQ(
        db_capacity_query("host=127.0.0.1 port=1 dbname=x connect_timeout=2", 1000, &s, err, sizeof(err)),
        ERR_IO);
    CHECK(err[0] != '\0');
    /* with a budget given there is nothing to ask */
    db_capacity_opts_t o = {.instances = 2, .pool_size = 4, .max_connections = 8, .timeout_ms = 1000};
    CHECK_INT_EQ(db_capacity_check("host=127.0.0.1 port=1", &o, err, sizeof(err)), 0);
    o.max_connections = 7;
    CHECK_INT_EQ(db_capacity_check("host=127.0.0.1 port=1", &o, err, sizeof(err)), ERR_RANGE);
}

TEST(capacity_judges_what_postgres_reports)
{
    char err[256] = "";
    bool tight = true;
    db_capacity_opts_t o = {.instances = 3, .pool_size = 4};
    db_capacity_server_t s = {.max_connections = 100, .reserved = 3, .in_use = 10};
    CHECK_INT_EQ(db_capacity_judge(&o, &s, &tight, err, sizeof(err)), 0);
    CHECK(!tight);
    /* fits the budget, but only 3 are free now */
    s.in_use = 94;
    CHECK_INT_EQ(db_capacity_judge(&o, &s, &tight, err, sizeof(err)), 0);
    CHECK(tight);
    /* 25 x 4 = 100 > 97 */
    o.instances = 25;
    CHECK_INT_EQ(db_capacity_judge(&o, &s, &tight, err, sizeof(err)), ERR_RANGE);
    CHECK(!tight);
    CHECK(strstr(err, "max_connections 100 - superuser_reserved_connections 3") != NULL);
    CHECK(strstr(err, "(97)") != NULL);
}
