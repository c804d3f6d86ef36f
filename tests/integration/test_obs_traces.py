"""Traces: W3C traceparent in, SERVER and CLIENT spans out as OTLP/HTTP JSON
(CONTRACT.md, "Observability"; docs/observability.md, "Traces").

A collector stand-in (obs_support.Collector, a small HTTP receiver on
loopback) records what the server exports; the tests check parentage,
attributes, sampling and batching there, and that a collector that answers
503 or is down costs requests nothing.
"""

import re
import threading
import time

import pytest

from obs_support import Collector, parse_exposition, sample_value, scrape, span_attrs
from redis_support import REDIS_URL, requires_redis, start_redis_server
from users_support import Client, make_token, start_users_server, wait_until

TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT = "00f067aa0ba902b7"
HEX32 = re.compile(r"^[0-9a-f]{32}$")
HEX16 = re.compile(r"^[0-9a-f]{16}$")


@pytest.fixture
def collector():
    c = Collector()
    yield c
    c.stop()


def access_line(srv, rid, timeout=5):
    return srv.wait_for_log(lambda o: o.get("msg") == "request" and o.get("request_id") == rid, timeout=timeout)


@requires_redis
def test_request_and_dependency_spans(server, collector):
    srv = start_redis_server(server, OTEL_EXPORTER_OTLP_ENDPOINT=collector.url + "/",
                             OTEL_SERVICE_NAME="users-under-test", OTEL_BSP_SCHEDULE_DELAY="200")
    token = make_token()
    with Client(srv) as c:
        user = c.create_user()
        tp = f"00-{TRACE}-{PARENT}-01"
        r = c.get(f"/v1/users/{user['id']}?x=secret-query", headers={"traceparent": tp, "tracestate": "vendor=abc",
                                                                     "X-Request-Id": "trace-get-1"})
        assert r.status_code == 200
        r = c.get("/v1/users?limit=3", headers={"traceparent": tp, "X-Request-Id": "trace-list-1"}, token=token)
        assert r.status_code == 200

    servers = collector.wait_spans(lambda s: s["traceId"] == TRACE and s["kind"] == 2, n=2)
    by_route = {span_attrs(s).get("http.route"): s for s in servers}
    get = by_route["/v1/users/{id}"]
    lst = by_route["/v1/users"]
    assert get["name"] == "GET /v1/users/{id}" and lst["name"] == "GET /v1/users"
    assert get["parentSpanId"] == PARENT and lst["parentSpanId"] == PARENT
    assert get["traceState"] == "vendor=abc" and "traceState" not in lst
    assert HEX16.match(get["spanId"]) and get["spanId"] != lst["spanId"]
    a = span_attrs(get)
    assert a["http.request.method"] == "GET"
    assert a["http.response.status_code"] == 200
    assert a["url.path"] == f"/v1/users/{user['id']}"
    assert a["url.scheme"] == "http" and a["network.protocol.version"] == "1.1"
    assert "code" not in get.get("status", {})
    assert int(get["endTimeUnixNano"]) >= int(get["startTimeUnixNano"]) > (time.time() - 60) * 1e9

    # children: CLIENT spans of the same trace, parented to their request's span
    def children(parent):
        return [s for s, _ in collector.spans() if s.get("parentSpanId") == parent["spanId"]]

    assert wait_until(lambda: children(get) and children(lst), timeout=5)
    kids = children(get) + children(lst)
    for k in kids:
        assert k["traceId"] == TRACE and k["kind"] == 3, k
        assert span_attrs(k)["db.system"] in ("redis", "postgresql"), k
        assert int(k["startTimeUnixNano"]) >= int(next(p for p in (get, lst) if p["spanId"] == k["parentSpanId"])
                                                  ["startTimeUnixNano"])
    redis = [k for k in children(get) if span_attrs(k)["db.system"] == "redis"]
    assert redis and redis[0]["name"] == "GET" and span_attrs(redis[0])["db.operation.name"] == "GET"
    pg = [k for k in children(lst) if span_attrs(k)["db.system"] == "postgresql"]
    assert pg, children(lst)
    pa = span_attrs(pg[0])
    assert pa["db.operation.name"] == "SELECT" and pa["db.statement.name"], pa
    assert pg[0]["name"] == f"SELECT {pa['db.statement.name'].split()[0]}"

    # the resource, and the access line: same ids as the exported span
    res = [r for s, r in collector.spans() if s["spanId"] == get["spanId"]][0]
    assert res["service.name"] == "users-under-test"
    line = access_line(srv, "trace-get-1")
    assert line["trace_id"] == TRACE and line["span_id"] == get["spanId"]
    assert line["remote"] == "127.0.0.1"
    # secrets and queries never leave: not in spans, not in the logs
    everything = repr(collector.bodies()) + srv.stdout_text()
    assert "secret-query" not in everything
    assert token not in everything


def test_invalid_traceparent_starts_a_new_trace(server, collector):
    srv = server(env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "100"})
    bad = [
        f"ff-{TRACE}-{PARENT}-01",            # version ff
        f"00-{TRACE.upper()}-{PARENT}-01",    # upper case
        f"00-{'0' * 32}-{PARENT}-01",         # zero trace id
        f"00-{TRACE}-{'0' * 16}-01",          # zero parent
        f"00-{TRACE}-{PARENT}-01-extra",      # version 00 has exactly four fields
        f"00-{TRACE}-{PARENT}",               # short
        "garbage",
    ]
    with Client(srv, token=None) as c:
        for i, tp in enumerate(bad):
            r = c.get("/health/live", headers={"traceparent": tp, "X-Request-Id": f"bad-tp-{i}"})
            assert r.status_code == 200  # never an error
        # two traceparent headers are as good as none
        import http.client
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=5)
        conn.putrequest("GET", "/health/live")
        conn.putheader("traceparent", f"00-{TRACE}-{PARENT}-01")
        conn.putheader("traceparent", f"00-{TRACE}-{PARENT}-01")
        conn.putheader("X-Request-Id", "bad-tp-dup")
        conn.endheaders()
        assert conn.getresponse().status == 200
        conn.close()
    spans = collector.wait_spans(lambda s: s["kind"] == 2, n=len(bad) + 1)
    for s in spans:
        assert s["traceId"] != TRACE and HEX32.match(s["traceId"]), s
        assert "parentSpanId" not in s, s
    for i in range(len(bad)):
        line = access_line(srv, f"bad-tp-{i}")
        assert line["trace_id"] != TRACE and HEX32.match(line["trace_id"])
        assert line["span_id"] in {s["spanId"] for s in spans}


def test_sampling_follows_the_parent_and_the_ratio(server, collector):
    srv = server(env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_TRACES_SAMPLER_ARG": "0",
                      "OTEL_BSP_SCHEDULE_DELAY": "100"})
    with Client(srv, token=None) as c:
        for i in range(20):
            assert c.get("/health/live", headers={"X-Request-Id": f"root-{i}"}).status_code == 200
        unsampled = f"00-{TRACE}-{PARENT}-00"
        assert c.get("/health/live", headers={"traceparent": unsampled, "X-Request-Id": "unsampled"}).ok
        sampled = f"00-{'1' * 32}-{PARENT}-01"
        assert c.get("/health/live", headers={"traceparent": sampled, "X-Request-Id": "sampled"}).ok
    got = collector.wait_spans(lambda s: s["traceId"] == "1" * 32)
    time.sleep(0.5)  # anything else would have come with it
    assert [s["traceId"] for s, _ in collector.spans()] == ["1" * 32], collector.spans()
    # not exported, and still in the log with ids of their own
    line = access_line(srv, "unsampled")
    assert line["trace_id"] == TRACE and HEX16.match(line["span_id"]) and line["span_id"] != PARENT
    assert HEX32.match(access_line(srv, "root-3")["trace_id"])
    assert access_line(srv, "sampled")["span_id"] == got[0]["spanId"]


def traced(i):
    """A sampled traceparent of a trace of the test's own (readiness probes
    of the harness make spans too, in traces of their own)."""
    return {"traceparent": f"00-{'ab' * 12}{i:08x}-{PARENT}-01"}


def ours(s):
    return s["traceId"].startswith("ab" * 12)


def batch_sizes(collector):
    return [sum(len(ss["spans"]) for rs in b["resourceSpans"] for ss in rs["scopeSpans"])
            for b in collector.bodies()]


def test_batches_are_bounded_and_timely(server, collector):
    srv = server(env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_MAX_EXPORT_BATCH_SIZE": "20",
                      "OTEL_BSP_SCHEDULE_DELAY": "1000", "WORKERS": "1"})
    with Client(srv, token=None) as c:
        collector.wait_spans(lambda s: True, n=1, timeout=5)  # the harness's readiness probe
        n0 = len(collector.requests)
        t0 = time.monotonic()
        assert c.get("/health/live", headers=traced(0)).ok
        collector.wait_spans(ours, n=1, timeout=5)
        took = collector.requests[n0][0] - t0
        assert 0.5 < took < 2.5, f"a lone span waited {took:.2f}s (OTEL_BSP_SCHEDULE_DELAY=1000)"
        for i in range(1, 76):
            assert c.get("/health/live", headers=traced(i)).ok
    got = collector.wait_spans(ours, n=76, timeout=10)
    assert len({s["spanId"] for s in got}) == 76
    sizes = batch_sizes(collector)
    assert max(sizes) <= 20, sizes
    assert sizes.count(20) >= 3, sizes  # full batches leave as soon as they are full
    fams = parse_exposition(scrape(srv))
    assert sample_value(fams, "api_trace_spans_exported_total") == sum(sizes)
    assert sample_value(fams, "api_trace_spans_dropped_total", reason="queue_full") == 0


def test_default_batch_is_at_most_512_spans(server, collector):
    srv = server(env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "WORKERS": "1"})
    with Client(srv, token=None) as c:
        for i in range(600):
            c.get("/health/live", headers=traced(i))
    collector.wait_spans(ours, n=600, timeout=10)
    sizes = batch_sizes(collector)
    assert max(sizes) == 512 and sum(sizes) >= 600, sizes


def test_5xx_sets_the_span_status_to_error(server, collector):
    srv = server(env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "100",
                      "API_DEBUG_ROUTES": "1", "REQUEST_TIMEOUT_MS": "100"})
    with Client(srv, token=None) as c:
        assert c.get("/debug/sleep?ms=1000", headers=traced(1)).status_code == 504
        assert c.get("/nope", headers=traced(2)).status_code == 404
    spans = collector.wait_spans(lambda s: ours(s) and s["kind"] == 2, n=2)
    by_status = {span_attrs(s)["http.response.status_code"]: s for s in spans}
    assert by_status[504]["status"] == {"code": 2}
    assert span_attrs(by_status[504])["error.type"] == "504"
    assert by_status[504]["name"] == "GET /debug/sleep"
    assert by_status[404].get("status", {}).get("code") is None  # a client error is not the server's
    assert by_status[404]["name"] == "GET" and "http.route" not in span_attrs(by_status[404])


def timed_requests(srv, n):
    times = []
    with Client(srv, token=None) as c:
        for _ in range(n):
            t0 = time.monotonic()
            assert c.get("/health/live").status_code == 200
            times.append(time.monotonic() - t0)
    return sorted(times)


def test_a_collector_answering_503_costs_requests_nothing(server):
    # 503 to the first two POSTs, then accepted: the same batch is retried
    collector = Collector(mode=lambda n: 503 if n <= 2 else 200)
    try:
        srv = server(env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "100"})
        times = timed_requests(srv, 30)
        assert times[len(times) // 2] < 0.05 and times[-1] < 0.5, times
        collector.wait_spans(lambda s: s["kind"] == 2, n=31, timeout=10)  # and the readiness probe
        refused = collector.bodies(accepted_only=False)[0]
        first_ids = {sp["spanId"] for rs in refused["resourceSpans"] for ss in rs["scopeSpans"]
                     for sp in ss["spans"]}
        accepted = {s["spanId"] for s, _ in collector.spans()}
        assert first_ids <= accepted  # retried, not lost
        assert [st for _, st, _ in collector.requests][:3] == [503, 503, 200]
        fams = parse_exposition(scrape(srv))
        assert sample_value(fams, "api_trace_spans_exported_total") >= 30
        assert sample_value(fams, "api_trace_spans_dropped_total", reason="export_failed") == 0
    finally:
        collector.stop()


def test_a_collector_that_is_down_costs_requests_nothing(server):
    collector = Collector()
    collector.stop()  # its port is closed: every export is refused
    srv = server(env={"OTEL_EXPORTER_OTLP_ENDPOINT": collector.url, "OTEL_BSP_SCHEDULE_DELAY": "50",
                      "OTEL_BSP_MAX_QUEUE_SIZE": "8", "WORKERS": "1"})
    times = timed_requests(srv, 60)
    assert times[len(times) // 2] < 0.05 and times[-1] < 0.5, times

    def dropped():
        f = parse_exposition(scrape(srv))
        return (sample_value(f, "api_trace_spans_dropped_total", reason="queue_full"),
                sample_value(f, "api_trace_spans_dropped_total", reason="export_failed"))

    # the queue (8) fills while the first batch is retried; after 5 attempts it is dropped
    assert wait_until(lambda: dropped()[0] > 0 and dropped()[1] > 0, timeout=8), dropped()
    assert srv.wait_for_log(lambda o: o.get("level") == "warn" and "OTLP export" in o.get("msg", ""))
    assert sample_value(parse_exposition(scrape(srv)), "api_trace_spans_exported_total") == 0
