"""A real Prometheus (Debian's `prometheus`) scrapes a real server on
loopback: the exposition is ingested as is, a p99 comes out of the request
histogram, and every expression of the Grafana dashboard returns data."""

import math
import threading
import time

import pytest

from obs_support import Prometheus, dashboard_exprs
from redis_support import requires_redis, start_redis_server
from users_support import Client, random_uuid7

P99 = "histogram_quantile(0.99, sum by (le) (rate(http_server_request_duration_seconds_bucket[30s])))"


def load(srv, seconds):
    """Mixed traffic for a few seconds: writes, cached and uncached reads,
    lists, client errors."""
    end = time.monotonic() + seconds
    with Client(srv) as c:
        users = [c.create_user() for _ in range(3)]
        i = 0
        while time.monotonic() < end:
            c.get(f"/v1/users/{users[i % 3]['id']}")
            c.get("/v1/users?limit=2")
            if i % 5 == 0:
                c.get(f"/v1/users/{random_uuid7()}")
                c.get("/nope")
                c.patch(f"/v1/users/{users[0]['id']}", json_body={"name": f"n{i}"},
                        headers={"Idempotency-Key": f"k-{i}"})
            i += 1


@requires_redis
def test_prometheus_scrapes_and_the_dashboard_has_data(server):
    srv = start_redis_server(server)
    prom = Prometheus([f"{srv.host}:{srv.port}"], interval="1s")
    try:
        prom.start()
        t = threading.Thread(target=load, args=(srv, 4.0))
        t.start()
        t.join(30)
        prom.wait_scrapes(4)
        res = prom.query(P99)
        assert len(res) == 1, res
        p99 = float(res[0]["value"][1])
        assert math.isfinite(p99) and 0 < p99 < 10, res
        # what Prometheus ingested: the three labels, templates only
        routes = {r["metric"]["http_route"] for r in prom.query("count by (http_route) "
                                                               "(http_server_request_duration_seconds_count)")}
        assert {"/v1/users", "/v1/users/{id}", "unmatched"} <= routes, routes
        empty = []
        for title, ref, expr in dashboard_exprs():
            if not prom.query(expr):
                empty.append(f"{title} [{ref}]: {expr}")
        assert not empty, "panels without data:\n" + "\n".join(empty)
    finally:
        prom.stop()
