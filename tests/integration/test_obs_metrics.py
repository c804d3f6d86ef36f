"""GET /metrics: the Prometheus exposition (CONTRACT.md, "Observability").

The families, names and labels are the contract's and docs/observability.md's;
`promtool check metrics` must find nothing, and the checks promtool does not
make (obs_support.exposition_problems) must pass too. Counts are checked as
exact deltas between two scrapes, against traffic the test sent itself.
"""

import threading
import time

import pytest

from harness import REPO_ROOT, RawConn, build_request, free_port, rget
from obs_support import (documented_families, exposition_problems, parse_exposition, promtool,
                         sample_value, scrape)
from redis_support import REDIS_URL, requires_redis, start_redis_server
from users_support import Client, make_token, random_uuid7, start_users_server, wait_until

HTTP = "http_server_request_duration_seconds"
ROUTES = {"/v1/users", "/v1/users/{id}", "/openapi.json", "/health/live", "/health/ready", "/metrics",
          "/debug/sleep", "/debug/block", "unmatched"}
VERSION = (REPO_ROOT / "VERSION").read_text().strip()

# Families the contract names, beside the project's own (all in the docs).
CONTRACT_FAMILIES = {
    HTTP, "http_server_active_requests", "process_cpu_seconds_total", "process_resident_memory_bytes",
    "process_open_fds", "process_max_fds", "process_start_time_seconds",
}


@pytest.fixture(scope="module")
def srv(module_server):
    if not REDIS_URL:
        pytest.skip("REDIS_URL is not set (scripts/test.sh exports it)")
    return start_redis_server(module_server, DATABASE_POOL_SIZE="4", WORKERS="2")


def count(fams, route, status, method="GET"):
    return sample_value(fams, HTTP, HTTP + "_count", http_route=route, http_response_status_code=status,
                        http_request_method=method) or 0


def traffic(srv):
    """One of each kind of answer, with paths a scanner would try."""
    with Client(srv) as c:
        user = c.create_user()
        assert c.get(f"/v1/users/{user['id']}").status_code == 200
        assert c.get(f"/v1/users/{user['id']}").status_code == 200  # from the cache
        assert c.get("/v1/users?limit=5").status_code == 200
        assert c.get(f"/v1/users/{random_uuid7()}").status_code == 404
        assert c.get("/v1/users/not-a-uuid").status_code == 400
        assert c.get("/v1/users", token=None).status_code == 401
        for path in ("/wp-admin/setup.php", "/v1/nope", "/v1/users/a/b/c", "/.env", "/metrics/x"):
            assert c.get(path).status_code == 404, path
        assert c.request("PUT", "/health/live").status_code == 405
        assert c.request("BREW", "/health/live").status_code in (400, 405, 501)


@requires_redis
def test_exposition_is_clean_and_complete(srv):
    traffic(srv)
    text = scrape(srv)
    r = promtool("check", "metrics", stdin=text)
    assert r.returncode == 0 and r.stdout.strip() == "" and r.stderr.strip() == "", \
        f"promtool check metrics: exit {r.returncode}\n{r.stdout}{r.stderr}"
    assert exposition_problems(text) == []
    fams = parse_exposition(text)

    # every family the docs list is exported, and every exported one is documented
    docs = documented_families()
    assert CONTRACT_FAMILIES <= docs
    assert set(fams) == docs, (f"exported, not documented: {sorted(set(fams) - docs)}; "
                               f"documented, not exported: {sorted(docs - set(fams))}")

    # all three labels on every request series; routes are templates or "unmatched"
    seen_routes = set()
    for name, labels, _ in fams[HTTP]["samples"]:
        keys = set(labels) - {"le"}
        assert keys == {"http_request_method", "http_route", "http_response_status_code"}, (name, labels)
        assert labels["http_response_status_code"].isdigit(), labels
        seen_routes.add(labels["http_route"])
    assert seen_routes <= ROUTES, seen_routes - ROUTES
    assert {"/v1/users", "/v1/users/{id}", "unmatched"} <= seen_routes
    assert "wp-admin" not in text and "/v1/nope" not in text and "/.env" not in text
    # every unmatched path (under /v1 or not), and a known path with a wrong method, share one value
    assert count(fams, "unmatched", "404") >= 5
    assert count(fams, "unmatched", "405", method="PUT") == 1
    assert count(fams, "/v1/users/{id}", "200") == 2
    assert count(fams, "/v1/users/{id}", "404") == 1
    assert count(fams, "/v1/users", "201", method="POST") == 1

    # dependencies: a statement series per statement used, Redis commands by name
    stmts = {ls["statement"] for n, ls, v in fams["api_db_batch_duration_seconds"]["samples"]
             if n.endswith("_count") and v > 0}
    assert stmts and all(s.replace("_", "").isalnum() for s in stmts), stmts
    assert sample_value(fams, "api_redis_command_duration_seconds", "api_redis_command_duration_seconds_count",
                        command="GET") > 0
    assert sample_value(fams, "api_db_pool_wait_duration_seconds", "api_db_pool_wait_duration_seconds_count") > 0

    # the pool: 4 connections over 2 workers, all ready, 64 batches each
    states = {ls["state"]: v for _, ls, v in fams["api_db_pool_connections"]["samples"]}
    assert set(states) == {"idle", "busy", "connecting", "down"}
    assert sum(states.values()) == 4 and states["idle"] + states["busy"] == 4, states
    assert sample_value(fams, "api_db_pool_capacity") == 4 * 64
    assert sample_value(fams, "api_db_pool_max_waiting") == 2 * 1024
    assert sample_value(fams, "api_db_pool_waiting") == 0
    for dep in ("postgresql", "redis"):
        assert sample_value(fams, "api_circuit_breaker_state", dependency=dep) == 0
    assert sample_value(fams, "api_ready") == 1
    assert sample_value(fams, "api_build_info", version=VERSION) == 1
    assert sample_value(fams, "http_server_active_requests") >= 1  # this scrape
    assert sample_value(fams, "process_resident_memory_bytes") > 1e6
    assert sample_value(fams, "process_open_fds") > 5
    assert abs(sample_value(fams, "process_start_time_seconds") - time.time()) < 3600
    assert sample_value(fams, "api_log_lines_dropped_total") == 0


@requires_redis
def test_counts_are_exact(srv):
    before = parse_exposition(scrape(srv))
    with Client(srv, token=None) as c:
        for _ in range(7):
            assert c.get("/health/live").status_code == 200
    after = parse_exposition(scrape(srv))
    assert count(after, "/health/live", "200") - count(before, "/health/live", "200") == 7
    s0 = sample_value(before, HTTP, HTTP + "_sum", http_route="/health/live", http_response_status_code="200",
                      http_request_method="GET") or 0
    s1 = sample_value(after, HTTP, HTTP + "_sum", http_route="/health/live", http_response_status_code="200",
                      http_request_method="GET")
    assert 0 < s1 - s0 < 7 * 1.0
    # the scrape itself is counted, under its own route
    assert count(after, "/metrics", "200") == count(before, "/metrics", "200") + 1


def test_timeouts_shedding_and_rate_limits(server):
    srv = server(env={"API_DEBUG_ROUTES": "1", "WORKERS": "1", "MAX_INFLIGHT": "2", "REQUEST_TIMEOUT_MS": "500",
                      "RATE_LIMIT_MAX": "1", "RATE_LIMIT_WINDOW_S": "60"})
    url = srv.url
    done = []
    a = threading.Thread(target=lambda: done.append(rget(url + "/debug/sleep?ms=280", timeout=5).status_code))
    a.start()
    assert wait_until(lambda: sample_value(parse_exposition(scrape(srv)), "http_server_active_requests") == 2,
                      timeout=0.25, interval=0.02), "active requests during one sleep + the scrape"
    a.join()
    bg = [threading.Thread(target=lambda: done.append(rget(url + "/debug/sleep?ms=250", timeout=5).status_code))
          for _ in range(2)]
    for t in bg:
        t.start()
    time.sleep(0.1)
    shed = rget(url + "/health/live", timeout=5)
    for t in bg:
        t.join()
    assert shed.status_code == 503 and shed.headers.get("Retry-After") == "1", shed.text
    assert rget(url + "/debug/sleep?ms=2000", timeout=5).status_code == 504
    # /v1 without a token: first 401, then over the budget of 1
    assert rget(url + "/v1/users", timeout=5).status_code == 401
    assert rget(url + "/v1/users", timeout=5).status_code == 429
    fams = parse_exposition(scrape(srv))
    assert sample_value(fams, "api_http_requests_shed_total", reason="overloaded") == 1
    assert sample_value(fams, "api_http_requests_shed_total", reason="shutting_down") == 0
    assert sample_value(fams, "api_http_requests_timed_out_total") == 1
    assert sample_value(fams, "api_http_requests_rate_limited_total") == 1
    assert count(fams, "/debug/sleep", "504") == 1
    assert count(fams, "unmatched", "503") == 1  # shed before routing
    assert count(fams, "/v1/users", "429") == 1
    assert sample_value(fams, "http_server_active_requests") == 1
    assert exposition_problems(scrape(srv)) == []


def test_breakers_and_readiness_with_dependencies_down(server):
    """PostgreSQL and Redis on ports where nothing listens: both breakers
    open, readiness is 0, the pool shows its connections down."""
    srv = server(env={"DATABASE_URL": f"host=127.0.0.1 port={free_port()} dbname=none user=none",
                      "REDIS_URL": f"redis://127.0.0.1:{free_port()}/0", "REDIS_REQUIRED": "1",
                      "BREAKER_FAILURES": "1", "BREAKER_COOLDOWN_MS": "100", "DATABASE_POOL_SIZE": "2"})

    def opened():
        f = parse_exposition(scrape(srv))
        ok = all(sample_value(f, "api_circuit_breaker_state", dependency=d) == 2 or
                 (sample_value(f, "api_circuit_breaker_transitions_total", dependency=d, state="open") or 0) >= 2
                 for d in ("postgresql", "redis"))
        return f if ok else None

    fams = wait_until(opened, timeout=5)
    assert fams, scrape(srv)
    for d in ("postgresql", "redis"):
        # one opening per worker: a dependency that never answered has no probe to go half-open
        assert sample_value(fams, "api_circuit_breaker_transitions_total", dependency=d, state="open") >= 2
        assert sample_value(fams, "api_circuit_breaker_transitions_total", dependency=d, state="closed") == 0
    assert sample_value(fams, "api_ready") == 0
    states = {ls["state"]: v for _, ls, v in fams["api_db_pool_connections"]["samples"]}
    assert states["idle"] + states["busy"] == 0 and states["down"] + states["connecting"] == 2, states
    assert rget(srv.url + "/health/ready", timeout=5).status_code == 503


def test_a_scrape_never_waits_for_a_blocked_worker(server):
    """One worker's loop is stuck; scrapes that land on the other answer at
    once, with every worker's shard in them."""
    srv = server(env={"API_DEBUG_ROUTES": "1", "WORKERS": "2"})
    families = len(parse_exposition(scrape(srv)))
    blocker = threading.Thread(target=lambda: rget(srv.url + "/debug/block?ms=1500", timeout=10))
    blocker.start()
    time.sleep(0.2)
    times = []

    def one():
        t0 = time.monotonic()
        with RawConn(srv.port, timeout=10) as c:
            c.send(build_request("GET", "/metrics"))
            r = c.read_response()
        assert r.status == 200
        times.append((time.monotonic() - t0, len(parse_exposition(r.body.decode()))))

    scrapers = [threading.Thread(target=one) for _ in range(8)]
    for t in scrapers:
        t.start()
    for t in scrapers:
        t.join(10)
    blocker.join(10)
    assert len(times) == 8, times
    fastest = min(times)
    assert fastest[0] < 0.5, f"every scrape waited for the blocked worker: {sorted(times)}"
    assert all(n == families for _, n in times)
