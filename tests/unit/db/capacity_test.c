/* capacity: connections per instance, the budget, and the messages. */
#include "base/err.h"
#include "db/capacity.h"
#include "test.h"

TEST(capacity_per_instance_counts_shares_and_heartbeats)
{
    /* 2 workers x (4 / 2 data + 1 heartbeat) */
    CHECK_INT_EQ(db_capacity_per_instance(4, 2), 6);
    /* a worker always has one data connection, even with a smaller pool */
    CHECK_INT_EQ(db_capacity_per_instance(1, 4), 8);
    /* the share rounds down, as app.c splits it */
    CHECK_INT_EQ(db_capacity_per_instance(5, 2), 6);
    CHECK_INT_EQ(db_capacity_per_instance(1024, 256), 256 * 5);
}

TEST(capacity_fits_up_to_the_budget)
{
    char err[256] = "";
    db_capacity_opts_t o = {.instances = 3, .pool_size = 4, .workers = 2};
    CHECK_INT_EQ(db_capacity_fits(&o, 18, "X", err, sizeof(err)), 0);
    o = (db_capacity_opts_t){.instances = 10000, .pool_size = 1024, .workers = 256};
    CHECK_INT_EQ(db_capacity_fits(&o, 10000 * 256 * 5, "X", err, sizeof(err)), 0);
    CHECK(err[0] == '\0');
}

TEST(capacity_over_the_budget_names_the_variables)
{
    char err[256] = "";
    db_capacity_opts_t o = {.instances = 3, .pool_size = 8, .workers = 2};
    CHECK_INT_EQ(db_capacity_fits(&o, 20, "DATABASE_MAX_CONNECTIONS", err, sizeof(err)), ERR_RANGE);
    CHECK(strstr(err, "DATABASE_INSTANCES (3) x 10 connections per instance") != NULL);
    CHECK(strstr(err, "DATABASE_POOL_SIZE 8 over WORKERS 2") != NULL);
    CHECK(strstr(err, "= 30,") != NULL);
    CHECK(strstr(err, "DATABASE_MAX_CONNECTIONS allows (20)") != NULL);
    o = (db_capacity_opts_t){.instances = 3, .pool_size = 4, .workers = 2};
    CHECK_INT_EQ(db_capacity_fits(&o, 17, "X", err, sizeof(err)), ERR_RANGE);
}

TEST(capacity_unreachable_database_is_a_bounded_error)
{
    char err[256] = "";
    db_capacity_server_t s;
    /* port 1 on loopback refuses at once */
    CHECK_INT_EQ(db_capacity_query("host=127.0.0.1 port=1 dbname=x", 1000, &s, err, sizeof(err)), ERR_IO);
    CHECK(err[0] != '\0');
    /* with a budget given there is nothing to ask */
    db_capacity_opts_t o = {
        .instances = 2, .pool_size = 4, .workers = 2, .max_connections = 12, .timeout_ms = 1000};
    CHECK_INT_EQ(db_capacity_check("host=127.0.0.1 port=1", &o, err, sizeof(err)), 0);
    o.max_connections = 11;
    CHECK_INT_EQ(db_capacity_check("host=127.0.0.1 port=1", &o, err, sizeof(err)), ERR_RANGE);
}

TEST(capacity_judges_what_postgres_reports)
{
    char err[256] = "";
    bool tight = true;
    db_capacity_opts_t o = {.instances = 3, .pool_size = 4, .workers = 2};
    db_capacity_server_t s = {.max_connections = 100, .reserved = 3, .in_use = 10};
    CHECK_INT_EQ(db_capacity_judge(&o, &s, &tight, err, sizeof(err)), 0);
    CHECK(!tight);
    /* fits the budget, but only 5 of the 6 it needs are free now */
    s.in_use = 92;
    CHECK_INT_EQ(db_capacity_judge(&o, &s, &tight, err, sizeof(err)), 0);
    CHECK(tight);
    /* 17 x 6 = 102 > 97 */
    o.instances = 17;
    CHECK_INT_EQ(db_capacity_judge(&o, &s, &tight, err, sizeof(err)), ERR_RANGE);
    CHECK(!tight);
    CHECK(strstr(err, "max_connections 100 - superuser_reserved_connections 3") != NULL);
    CHECK(strstr(err, "(97)") != NULL);
}
