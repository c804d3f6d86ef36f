"""The local cluster (deploy/cluster.sh) the way users run it: three server
processes behind HAProxy, PgBouncer in front of one PostgreSQL, one Redis,
all real and on loopback. Through the HAProxy port:

- the users API works end to end, and HAProxy spreads requests over all
  three instances (their access logs say which one answered);
- the rate limit is global: one budget whichever instance answers;
- an idempotency key holds across processes;
- a write through one instance is seen at once by the others (the shared
  Redis cache is invalidated, not left stale);
- HAProxy's Prometheus exporter answers;
- an instance that dies is taken out without a failed read, and a
  PostgreSQL outage behind PgBouncer takes the fleet out and back in.

Last, a rolling restart under a mixed read/write load (wrk): each instance
in turn gets SIGTERM, answers readiness 503 for SHUTDOWN_DELAY_MS while
HAProxy marks it DOWN, drains, and a new process takes its port. Not one
response may be other than 2xx, and no socket error is allowed.
"""

import json
import math
import os
import signal
import subprocess
import time
import types
import uuid

import pytest

from cluster_support import RATE_LIMIT_MAX, RATE_LIMIT_WINDOW_S, require_tools, start_cluster
from harness import REPO_ROOT, rget
from users_support import (Client, assert_created, assert_etag, assert_page, assert_problem_response,
                           assert_user, make_token, random_uuid7, unique_email)

WRK_LUA = REPO_ROOT / "tests" / "integration" / "wrk" / "mixed.lua"


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = start_cluster(tmp_path_factory)
    try:
        yield c
    finally:
        c.down()


def client(cluster, url=None, sub=None):
    token = make_token(sub=sub or f"cluster-{uuid.uuid4()}", secret=cluster.env["JWT_SECRET"])
    return Client(types.SimpleNamespace(url=url or cluster.url), token=token)


def wait_for_request_ids(cluster, ids, timeout=5.0):
    """{request id: instance number} for every id, read from the instances'
    access logs (written off the event loop, so they may lag a little)."""
    deadline = time.monotonic() + timeout
    while True:
        found = {}
        for i in (1, 2, 3):
            for line in cluster.instance_log(i):
                if line.get("msg") == "request" and line.get("request_id") in ids:
                    found[line["request_id"]] = i
        if len(found) == len(ids) or time.monotonic() > deadline:
            return found
        time.sleep(0.1)


def test_pgbouncer_is_in_the_path(cluster):
    env_text = (cluster.dir / "instance.env").read_text()
    assert f":{cluster.pgbouncer_port}/" in env_text, "instances do not connect through PgBouncer"
    log = (cluster.dir / "pgbouncer" / "log").read_text(errors="replace")
    assert "db=api user=api_app" in log, log[-2000:]
    # Transaction pooling, so unnamed statements and per-batch settings.
    assert "export DATABASE_PREPARED=${DATABASE_PREPARED:-0}" in env_text, env_text
    ini = (cluster.dir / "pgbouncer" / "pgbouncer.ini").read_text()
    assert "pool_mode = transaction" in ini, ini


def test_users_api_end_to_end_through_haproxy(cluster):
    c = client(cluster)
    try:
        user = c.create_user(name="Through HAProxy")
        r = c.get(f"/v1/users/{user['id']}")
        got = assert_user(r)
        etag = assert_etag(r)
        assert got["name"] == "Through HAProxy"
        r = c.get(f"/v1/users/{user['id']}", headers={"If-None-Match": etag})
        assert r.status_code == 304, r.status_code
        r = c.patch(f"/v1/users/{user['id']}", json_body={"name": "Renamed"})
        assert assert_user(r)["name"] == "Renamed"
        page = assert_page(c.get("/v1/users", params={"limit": 100}))
        assert page["meta"]["pageSize"] == 100
        r = c.delete(f"/v1/users/{user['id']}")
        assert r.status_code == 204, r.status_code
        assert_problem_response(c.get(f"/v1/users/{user['id']}"), 404)
    finally:
        c.close()


def test_haproxy_spreads_requests_over_all_instances(cluster):
    c = client(cluster)
    ids = [f"spread-{uuid.uuid4().hex}" for _ in range(12)]
    try:
        for rid in ids:
            r = c.get(f"/v1/users/{random_uuid7()}", headers={"X-Request-Id": rid})
            assert r.status_code == 404, r.status_code
            assert r.headers.get("X-Request-Id") == rid
    finally:
        c.close()
    found = wait_for_request_ids(cluster, set(ids))
    assert set(found) == set(ids), f"not logged by any instance: {set(ids) - set(found)}"
    assert set(found.values()) == {1, 2, 3}, f"answered by instances {sorted(set(found.values()))} only"


# Far from the limit, each process meters in-process and reports to Redis in
# batches of this many (src/middleware/ratelimit.c, docs/redis.md).
SYNC_BATCH = 8


def test_rate_limit_is_one_budget_across_instances(cluster):
    sub = f"rl-{uuid.uuid4()}"
    c = client(cluster, sub=sub)
    ids, codes = [], []
    t0 = time.monotonic()
    try:
        for _ in range(RATE_LIMIT_MAX + 3 * SYNC_BATCH + 20):
            rid = f"rl-{uuid.uuid4().hex}"
            ids.append(rid)
            r = c.get(f"/v1/users/{random_uuid7()}", headers={"X-Request-Id": rid})
            codes.append(r.status_code)
            if r.status_code == 429:
                assert int(r.headers["Retry-After"]) >= 1
        elapsed = time.monotonic() - t0
        assert set(codes) <= {404, 429}, sorted(set(codes))
        admitted = codes.count(404)
        refill = math.ceil(elapsed * RATE_LIMIT_MAX / RATE_LIMIT_WINDOW_S) + 1
        # One budget (give or take one batch per other instance and what
        # refills meanwhile), never one per instance.
        assert RATE_LIMIT_MAX <= admitted <= RATE_LIMIT_MAX + 2 * SYNC_BATCH + refill, \
            f"admitted {admitted} in {elapsed:.1f}s (budget {RATE_LIMIT_MAX}, refill {refill})"
        assert codes[-1] == 429
        # Every instance, asked directly, soon refuses too.
        for url in cluster.api_urls:
            d = client(cluster, url=url, sub=sub)
            try:
                got = [d.get(f"/v1/users/{random_uuid7()}").status_code for _ in range(SYNC_BATCH + refill)]
            finally:
                d.close()
            assert 429 in got, f"{url} still admits: {got}"
    finally:
        c.close()
    # The budget was spent on all three: no instance had one of its own.
    found = wait_for_request_ids(cluster, set(ids))
    assert set(found.values()) == {1, 2, 3}, sorted(set(found.values()))


def cluster_db(cluster):
    import psycopg
    return psycopg.connect(cluster.env["DATABASE_ADMIN_URL"], dbname="api", autocommit=True,
                           connect_timeout=5)


def test_idempotency_key_holds_across_processes(cluster):
    sub = f"idem-{uuid.uuid4()}"
    email = unique_email("idem-cluster")
    key = f"k-{uuid.uuid4()}"
    body = {"email": email, "name": "Once"}
    a, b, c3, lb = (client(cluster, url=u, sub=sub) for u in (*cluster.api_urls, cluster.url))
    try:
        first = a.post("/v1/users", json_body=body, headers={"Idempotency-Key": key})
        created = assert_created(a, first)
        for other in (b, lb):
            r = other.post("/v1/users", json_body=body, headers={"Idempotency-Key": key})
            assert r.status_code == 201, r.status_code
            assert r.headers.get("Idempotent-Replayed") == "true", dict(r.headers)
            assert r.content == first.content
        r = c3.post("/v1/users", json_body={"email": email, "name": "Other body"},
                    headers={"Idempotency-Key": key})
        assert_problem_response(r, 422, slug="idempotency-key-reused", need_errors=False)
    finally:
        for x in (a, b, c3, lb):
            x.close()
    with cluster_db(cluster) as db:
        n = db.execute("SELECT count(*) FROM users WHERE email = %s", (email,)).fetchone()[0]
    assert n == 1, f"{n} users with {email}: the write happened {n} times"
    assert created["email"] == email


def test_a_write_on_one_instance_is_seen_by_the_others(cluster):
    sub = f"cache-{uuid.uuid4()}"
    one, two, three = (client(cluster, url=u, sub=sub) for u in cluster.api_urls)
    try:
        user = one.create_user(name="Before")
        path = f"/v1/users/{user['id']}"
        for _ in range(2):  # the second read is a cache hit
            assert assert_user(one.get(path))["name"] == "Before"
        old_etag = assert_etag(one.get(path))
        assert assert_user(two.patch(path, json_body={"name": "After"}))["name"] == "After"
        for c in (one, three):
            r = c.get(path)
            assert assert_user(r)["name"] == "After", "a stale cached copy was served"
            assert assert_etag(r) != old_etag
        r = three.delete(path)
        assert r.status_code == 204, r.status_code
        for c in (one, two):
            assert_problem_response(c.get(path), 404)
    finally:
        for c in (one, two, three):
            c.close()


def test_haproxy_prometheus_exporter(cluster):
    r = rget(cluster.metrics_url + "/metrics", timeout=5)
    assert r.status_code == 200, r.status_code
    for i in (1, 2, 3):
        assert f'haproxy_server_status{{proxy="api",server="api{i}"' in r.text, f"no status of api{i}"
    assert cluster.haproxy_states() == {"api1": "UP", "api2": "UP", "api3": "UP"}


def test_an_instance_that_dies_is_taken_out_without_failed_reads(cluster):
    """SIGKILL, no drain. Until its checks mark the dead instance DOWN,
    HAProxy retries on another instance the connects it refuses and the
    GETs it closes unanswered (deploy/haproxy/haproxy.cfg: retry-on,
    redispatch), so reads sent one after another all succeed. `up` starts
    it again."""
    c = client(cluster)
    victim = cluster.pid("api2")
    try:
        user = c.create_user(name="Survivor")
        os.kill(victim, signal.SIGKILL)
        deadline = time.monotonic() + 10
        statuses = []
        while time.monotonic() < deadline:
            statuses.append(c.get(f"/v1/users/{user['id']}").status_code)
            time.sleep(0.02)  # well under the rate limit of one sub
            if cluster.haproxy_states().get("api2") == "DOWN" and len(statuses) >= 30:
                break
        assert cluster.haproxy_states().get("api2") == "DOWN"
        assert set(statuses) == {200}, statuses
    finally:
        c.close()
        cluster.run("up", timeout=120)
    assert cluster.wait_all_up() == {"api1": "UP", "api2": "UP", "api3": "UP"}
    assert cluster.pid("api2") != victim


def services_sh(cluster, cmd):
    r = subprocess.run([str(REPO_ROOT / "scripts" / "services.sh"), cmd, str(cluster.dir / "services")],
                       capture_output=True, text=True, timeout=90)
    assert r.returncode == 0, r.stderr


def test_postgres_outage_behind_pgbouncer_takes_the_fleet_out_and_back(cluster):
    """PostgreSQL stops behind PgBouncer: every instance's readiness turns
    503, HAProxy marks them all DOWN and answers 503 itself. Once PostgreSQL
    is back, the instances are ready within the contract's 10 s (PgBouncer
    retries its logins every second: server_login_retry in pooling.ini; its
    default, 15 s, took 20 s here) and HAProxy's rise (2 x 0.5 s) later UP."""
    c = client(cluster)
    try:
        services_sh(cluster, "pg-stop")
        try:
            deadline = time.monotonic() + 15
            while time.monotonic() < deadline:
                if set(cluster.haproxy_states().values()) == {"DOWN"}:
                    break
                time.sleep(0.2)
            assert set(cluster.haproxy_states().values()) == {"DOWN"}, cluster.haproxy_states()
            for url in cluster.api_urls:
                assert rget(url + "/health/ready", timeout=5).status_code == 503
            r = c.get(f"/v1/users/{random_uuid7()}")
            assert r.status_code == 503, r.status_code
        finally:
            services_sh(cluster, "pg-start")
        assert cluster.wait_all_up(timeout=12) == {"api1": "UP", "api2": "UP", "api3": "UP"}
        c.create_user(name="After the outage")
    finally:
        c.close()


# ---- rolling restart under load ----------------------------------------------------

def run_wrk(cluster, workdir, name, duration_s, tokens, ids):
    result = workdir / f"{name}.json"
    env = {"PATH": "/usr/bin:/bin", "TOKENS_FILE": str(tokens), "IDS_FILE": str(ids),
           "WRK_DELAY_MS": "2", "RESULT_FILE": str(result)}
    # Four connections, each pausing 2 ms between requests: a steady
    # ~1,000 requests/s that a shared 2-core machine carries without strain.
    p = subprocess.Popen(["wrk", "-t1", "-c4", f"-d{duration_s}s", "--timeout", "10s", "-s", str(WRK_LUA),
                          cluster.url], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return p, result


def finish_wrk(p, result, interrupt=False):
    if interrupt and p.poll() is None:
        p.send_signal(signal.SIGINT)  # wrk stops, then reports
    try:
        out, _ = p.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        p.kill()
        p.communicate()
        raise AssertionError("wrk did not stop") from None
    assert p.returncode == 0, out.decode(errors="replace")
    assert result.is_file(), f"wrk wrote no result\n{out.decode(errors='replace')}"
    return json.loads(result.read_text())


def assert_clean(name, res):
    non_2xx = {s: n for s, n in res["statuses"].items() if not s.startswith("2")}
    assert not non_2xx, f"{name}: non-2xx responses {non_2xx}: {res}"
    assert all(v == 0 for v in res["errors"].values()), f"{name}: socket errors {res['errors']}"
    assert sum(res["statuses"].values()) == res["requests"], res


def test_rolling_restart_under_load_answers_every_request(cluster, tmp_path):
    require_tools("wrk")
    secret = cluster.env["JWT_SECRET"]
    tokens = tmp_path / "tokens"
    tokens.write_text("".join(make_token(sub=f"roll-{i}-{uuid.uuid4().hex[:8]}", secret=secret, exp_in=600)
                              + "\n" for i in range(1000)))
    seeder = client(cluster)
    try:
        ids = [seeder.create_user(name=f"Seed {i}")["id"] for i in range(20)]
    finally:
        seeder.close()
    ids_file = tmp_path / "ids"
    ids_file.write_text("\n".join(ids) + "\n")
    pids_before = [cluster.pid(f"api{i}") for i in (1, 2, 3)]
    haproxy_log = cluster.dir / "haproxy" / "log"
    log_offset = haproxy_log.stat().st_size

    p, res_file = run_wrk(cluster, tmp_path, "before", 3, tokens, ids_file)
    before = finish_wrk(p, res_file)
    assert_clean("before the restart", before)

    p, res_file = run_wrk(cluster, tmp_path, "during", 60, tokens, ids_file)
    try:
        time.sleep(1)
        t0 = time.monotonic()
        cluster.run("rolling-restart", timeout=90)
        restart_s = time.monotonic() - t0
        time.sleep(0.5)
    finally:
        during = finish_wrk(p, res_file, interrupt=True)

    figures = {"before": before, "during": during, "restart_seconds": round(restart_s, 1)}
    (tmp_path / "figures.json").write_text(json.dumps(figures, indent=2))
    print(f"\nrolling restart figures: {json.dumps(figures)}")

    assert during["requests"] >= 1000, f"too little load to prove anything: {during}"
    assert_clean("during the rolling restart", during)

    # Three new processes, and each old one drained and exited on its own.
    pids_after = [cluster.pid(f"api{i}") for i in (1, 2, 3)]
    assert all(a != b for a, b in zip(pids_before, pids_after)), (pids_before, pids_after)
    for i in (1, 2, 3):
        lines = cluster.instance_log(i)
        assert sum(1 for x in lines if x.get("msg") == "shutdown complete") >= 1, f"api{i}"
        assert not [x for x in lines if x.get("level") in ("error", "fatal")], \
            [x for x in lines if x.get("level") in ("error", "fatal")][:5]
    # HAProxy took each one out because readiness said 503 (a layer 7
    # check), not because its port stopped answering.
    with open(haproxy_log, "rb") as f:
        f.seek(log_offset)
        hlog = f.read().decode(errors="replace")
    for i in (1, 2, 3):
        assert f"Server api/api{i} is DOWN, reason: Layer7 wrong status, code: 503" in hlog, hlog[-3000:]
    assert "Layer4" not in hlog, "HAProxy saw an instance's port refuse connections"
    assert cluster.wait_all_up() == {"api1": "UP", "api2": "UP", "api3": "UP"}
