/* metrics: registry shape, histograms, shards merged on scrape, process_*. */
#include <pthread.h>
#include <stdlib.h>

#include "base/err.h"
#include "obs/metrics.h"
#include "test.h"

static const char *const test_routes[] = {"/v1/users", "/v1/users/{id}", "/odd\"\\route"};
static const char *const test_stmts[] = {"users_get", "users_list"};

static void setup(void)
{
    metrics_opts_t o = {.routes = test_routes,
                        .nroutes = 3,
                        .statements = test_stmts,
                        .nstatements = 2,
                        .version = "1.2.3",
                        .commit = "abc"};
    CHECK_INT_EQ(metrics_init(&o), 0);
    CHECK_INT_EQ(metrics_thread_attach(), 0);
}

static char *render(void)
{
    buf_t b;
    buf_init(&b, 1 << 22);
    metrics_scrape_t x = {.ready = true, .log_dropped = 7};
    metrics_render(&b, &x);
    CHECK(!buf_failed(&b));
    buf_putc(&b, '\0');
    return b.ptr; /* the caller frees */
}

/* The value of the sample line that starts with `series ` (-1: absent). */
static double sample(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; (p = strstr(p, series)) != NULL; p += n) {
        if ((p == text || p[-1] == '\n') && p[n] == ' ') {
            return strtod(p + n + 1, NULL);
        }
    }
    return -1;
}

static int count_lines(const char *text, const char *prefix)
{
    int n = 0;
    size_t len = strlen(prefix);
    for (const char *p = text; p != NULL && *p != '\0';) {
        if (strncmp(p, prefix, len) == 0) {
            n++;
        }
        p = strchr(p, '\n');
        p = p ? p + 1 : NULL;
    }
    return n;
}

TEST(metrics_families_are_contiguous_and_typed_once)
{
    setup();
    char *t = render();
    /* every "# TYPE name" appears once, and no family's samples come after
       another family has started */
    const char *p = t;
    char seen[200][96];
    int nseen = 0;
    while ((p = strstr(p, "# TYPE ")) != NULL) {
        p += 7;
        size_t n = strcspn(p, " ");
        CHECK(n < 96);
        for (int i = 0; i < nseen; i++) {
            CHECK(!(strlen(seen[i]) == n && strncmp(seen[i], p, n) == 0));
        }
        if (nseen < 200 && n < 96) {
            memcpy(seen[nseen], p, n);
            seen[nseen++][n] = '\0';
        }
    }
    CHECK(nseen >= 35);
    CHECK(t[strlen(t) - 1] == '\n');
    free(t);
    metrics_deinit();
}

TEST(metrics_scalars_counters_and_gauges)
{
    setup();
    metrics_inc(M_CACHE_HITS);
    metrics_add(M_CACHE_HITS, 4);
    metrics_set(M_DB_WAITING, 3);
    metrics_set(M_BREAKER_PG, 2);
    char *t = render();
    CHECK(sample(t, "api_cache_hits_total") == 5);
    CHECK(sample(t, "api_cache_misses_total") == 0);
    CHECK(sample(t, "api_db_pool_waiting") == 3);
    CHECK(sample(t, "api_circuit_breaker_state{dependency=\"postgresql\"}") == 2);
    CHECK(sample(t, "api_circuit_breaker_state{dependency=\"redis\"}") == 0);
    CHECK(sample(t, "api_ready") == 1);
    CHECK(sample(t, "api_log_lines_dropped_total") == 7);
    CHECK(sample(t, "api_build_info{version=\"1.2.3\",commit=\"abc\"}") == 1);
    CHECK(strstr(t, "# TYPE api_cache_hits_total counter\n") != NULL);
    CHECK(strstr(t, "# TYPE api_db_pool_waiting gauge\n") != NULL);
    free(t);
    metrics_deinit();
}

TEST(metrics_http_histogram_is_cumulative)
{
    setup();
    metrics_http_observe(MM_GET, 2, 200, 100);      /* 0.1 ms: first bucket */
    metrics_http_observe(MM_GET, 2, 200, 500);      /* exactly 0.5 ms: still le="0.0005" */
    metrics_http_observe(MM_GET, 2, 200, 501);      /* just above */
    metrics_http_observe(MM_GET, 2, 200, 3000000);  /* 3 s */
    metrics_http_observe(MM_GET, 2, 200, 99000000); /* 99 s: +Inf only */
    metrics_http_observe(MM_POST, 0, 404, 10);
    metrics_http_observe(MM_OTHER, 9, 405, 10); /* an unknown route index: unmatched */
    char *t = render();
    const char *s = "http_server_request_duration_seconds_bucket{http_request_method=\"GET\","
                    "http_response_status_code=\"200\",http_route=\"/v1/users/{id}\",";
    char line[512];
    snprintf(line, sizeof(line), "%sle=\"0.0005\"}", s);
    CHECK(sample(t, line) == 2);
    snprintf(line, sizeof(line), "%sle=\"0.001\"}", s);
    CHECK(sample(t, line) == 3);
    snprintf(line, sizeof(line), "%sle=\"2.5\"}", s);
    CHECK(sample(t, line) == 3);
    snprintf(line, sizeof(line), "%sle=\"5\"}", s);
    CHECK(sample(t, line) == 4);
    snprintf(line, sizeof(line), "%sle=\"10\"}", s);
    CHECK(sample(t, line) == 4);
    snprintf(line, sizeof(line), "%sle=\"+Inf\"}", s);
    CHECK(sample(t, line) == 5);
    CHECK(sample(t, "http_server_request_duration_seconds_count{http_request_method=\"GET\","
                    "http_response_status_code=\"200\",http_route=\"/v1/users/{id}\"}") == 5);
    CHECK(strstr(t, "http_server_request_duration_seconds_sum{http_request_method=\"GET\","
                    "http_response_status_code=\"200\",http_route=\"/v1/users/{id}\"} 102.001101\n") != NULL);
    CHECK(sample(t, "http_server_request_duration_seconds_count{http_request_method=\"POST\","
                    "http_response_status_code=\"404\",http_route=\"unmatched\"}") == 1);
    CHECK(sample(t, "http_server_request_duration_seconds_count{http_request_method=\"_OTHER\","
                    "http_response_status_code=\"405\",http_route=\"unmatched\"}") == 1);
    /* 18 buckets (17 bounds and +Inf) per series */
    CHECK_INT_EQ(count_lines(t, "http_server_request_duration_seconds_bucket{"), 3 * 18);
    free(t);
    metrics_deinit();
}

TEST(metrics_label_values_are_escaped)
{
    setup();
    metrics_http_observe(MM_GET, 3, 200, 1);
    char *t = render();
    CHECK(strstr(t, "http_route=\"/odd\\\"\\\\route\"") != NULL);
    free(t);
    metrics_deinit();
}

static void *record_on_another_shard(void *arg)
{
    (void)arg;
    if (metrics_thread_attach() != 0) {
        return NULL;
    }
    metrics_add(M_CACHE_HITS, 10);
    metrics_set(M_DB_WAITING, 5);
    metrics_set(M_BREAKER_PG, 1);
    metrics_http_observe(MM_GET, 1, 200, 2000);
    metrics_observe(MH_DB_BATCH, 1, 300);
    metrics_observe(MH_DB_BATCH, 77, 300); /* not a statement: "other" */
    metrics_observe(MH_REDIS_COMMAND, MR_GET, 120);
    metrics_thread_detach();
    return NULL;
}

TEST(metrics_shards_merge_on_scrape)
{
    setup();
    metrics_add(M_CACHE_HITS, 1);
    metrics_set(M_DB_WAITING, 2);
    metrics_set(M_BREAKER_PG, 2);
    metrics_http_observe(MM_GET, 1, 200, 100);
    metrics_observe(MH_DB_BATCH, 1, 100);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, record_on_another_shard, NULL) == 0);
    pthread_join(th, NULL);
    char *t = render();
    CHECK(sample(t, "api_cache_hits_total") == 11);                                /* summed */
    CHECK(sample(t, "api_db_pool_waiting") == 7);                                  /* summed */
    CHECK(sample(t, "api_circuit_breaker_state{dependency=\"postgresql\"}") == 2); /* the worst */
    CHECK(sample(t, "http_server_request_duration_seconds_count{http_request_method=\"GET\","
                    "http_response_status_code=\"200\",http_route=\"/v1/users\"}") == 2);
    CHECK(sample(t, "http_server_request_duration_seconds_bucket{http_request_method=\"GET\","
                    "http_response_status_code=\"200\",http_route=\"/v1/users\",le=\"0.0005\"}") == 1);
    /* one series, not one per shard */
    CHECK_INT_EQ(count_lines(t, "http_server_request_duration_seconds_count{"), 1);
    CHECK(sample(t, "api_db_batch_duration_seconds_count{statement=\"users_list\"}") == 2);
    CHECK(sample(t, "api_db_batch_duration_seconds_count{statement=\"other\"}") == 1);
    CHECK(sample(t, "api_db_batch_duration_seconds_count{statement=\"users_get\"}") == -1); /* never used */
    CHECK(sample(t, "api_redis_command_duration_seconds_bucket{command=\"GET\",le=\"0.00025\"}") == 1);
    CHECK(sample(t, "api_db_pool_wait_duration_seconds_count") == 0);
    free(t);
    metrics_deinit();
}

TEST(metrics_http_series_are_bounded)
{
    setup();
    /* 8 methods x 500 statuses: more keys than a shard holds */
    for (unsigned st = 100; st < 600; st++) {
        for (int m = 0; m < MM__COUNT; m++) {
            metrics_http_observe((metric_method_t)m, 0, st, 1);
        }
    }
    char *t = render();
    CHECK_INT_EQ(count_lines(t, "http_server_request_duration_seconds_count{"), METRICS_HTTP_SERIES_MAX);
    CHECK(sample(t, "api_metrics_series_overflow_total") == 8 * 500 - METRICS_HTTP_SERIES_MAX);
    free(t);
    metrics_deinit();
}

TEST(metrics_without_a_shard_records_nowhere)
{
    setup();
    metrics_thread_detach();
    metrics_add(M_CACHE_HITS, 3);
    metrics_http_observe(MM_GET, 1, 200, 1);
    char *t = render();
    CHECK(sample(t, "api_cache_hits_total") == 0);
    CHECK_INT_EQ(count_lines(t, "http_server_request_duration_seconds_count{"), 0);
    free(t);
    metrics_deinit();
}

TEST(metrics_redis_command_labels)
{
    CHECK(metrics_redis_command("GET", 3) == MR_GET);
    CHECK(metrics_redis_command("evalsha", 7) == MR_EVALSHA);
    CHECK(metrics_redis_command("EVAL", 4) == MR_EVAL);
    CHECK(metrics_redis_command("EVALX", 5) == MR_OTHER);
    CHECK(metrics_redis_command("GE", 2) == MR_OTHER);
    CHECK(metrics_redis_command("", 0) == MR_OTHER);
}

TEST(metrics_proc_stat_parse)
{
    /* comm with spaces and a parenthesis, as proc(5) allows */
    static const char stat[] =
        "4242 (a) b) c) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 75 0 0 20 0 5 0 "
        "123456 987654321 2048 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0\n";
    metrics_proc_stat_t st;
    CHECK_INT_EQ(metrics_parse_proc_stat(stat, sizeof(stat) - 1, &st), 0);
    CHECK_INT_EQ(st.utime_ticks, 250);
    CHECK_INT_EQ(st.stime_ticks, 75);
    CHECK_INT_EQ(st.starttime_ticks, 123456);
    CHECK_INT_EQ(st.vsize_bytes, 987654321);
    CHECK_INT_EQ(st.rss_pages, 2048);
    CHECK(metrics_parse_proc_stat("no parens", 9, &st) == ERR_INVAL);
    CHECK(metrics_parse_proc_stat("1 (x) S 1 2", 11, &st) == ERR_INVAL);
}

TEST(metrics_process_families)
{
    setup();
    char *t = render();
    CHECK(sample(t, "process_resident_memory_bytes") > 0);
    CHECK(sample(t, "process_open_fds") > 0);
    CHECK(sample(t, "process_max_fds") > 0);
    CHECK(sample(t, "process_start_time_seconds") > 1.6e9);
    CHECK(sample(t, "process_cpu_seconds_total") >= 0);
    free(t);
    metrics_deinit();
}
