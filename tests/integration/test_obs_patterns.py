"""The pattern counters of /metrics move with the traffic that moves them.

docs/observability.md lists, beside the HTTP families, one counter per
pattern the server runs: the cache (hits, misses, coalesced reads), the
rate limiter without Redis (fail modes) and idempotency keys (replays,
conflicts, in-flight duplicates). Each test sends traffic whose outcome it
knows and checks the exact deltas between two scrapes.
"""

import socket
import uuid

import pytest

from harness import free_port
from obs_support import parse_exposition, sample_value, scrape
from redis_support import REDIS_URL, start_redis_server
from users_support import (Client, admin_connect, app_dbname, bearer, describe, make_token, random_uuid7,
                           start_users_server, unique_email)

COUNTERS = {
    "hits": ("api_cache_hits_total", {}),
    "misses": ("api_cache_misses_total", {}),
    "coalesced": ("api_cache_coalesced_total", {}),
    "rl_local": ("api_rate_limit_fail_mode_total", {"mode": "local"}),
    "rl_open": ("api_rate_limit_fail_mode_total", {"mode": "open"}),
    "replays": ("api_idempotency_replays_total", {}),
    "conflicts": ("api_idempotency_conflicts_total", {}),
    "in_flight": ("api_idempotency_in_flight_total", {}),
}


def counters(srv):
    fams = parse_exposition(scrape(srv))
    return {k: sample_value(fams, name, **labels) or 0 for k, (name, labels) in COUNTERS.items()}


def delta(before, after):
    return {k: after[k] - before[k] for k in before if after[k] != before[k]}


def test_cache_reads_count_hits_and_misses(server):
    if not REDIS_URL:
        pytest.skip("REDIS_URL is not set (scripts/test.sh exports it)")
    srv = start_redis_server(server, WORKERS="1")
    with Client(srv) as c:
        user = c.create_user(name="Cache counts")
        absent = random_uuid7()
        before = counters(srv)
        assert c.get(f"/v1/users/{user['id']}").status_code == 200  # miss: read and cached
        assert c.get(f"/v1/users/{user['id']}").status_code == 200  # hit
        assert c.get(f"/v1/users/{user['id']}").status_code == 200  # hit
        assert c.get(f"/v1/users/{absent}").status_code == 404  # miss: the absence is cached
        assert c.get(f"/v1/users/{absent}").status_code == 404  # hit
        after = counters(srv)
    assert delta(before, after) == {"misses": 2, "hits": 3}


def _h2_burst(port, paths, token):
    """Sends every GET as one HTTP/2 stream in a single write, so the
    worker reads them all in one go; returns {stream id: status}."""
    import h2.config
    import h2.connection
    import h2.events

    conn = h2.connection.H2Connection(config=h2.config.H2Configuration(client_side=True))
    conn.initiate_connection()
    sids = []
    for path in paths:
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "GET"), (":path", path), (":scheme", "http"),
                                (":authority", "127.0.0.1"), ("authorization", bearer(token))],
                          end_stream=True)
        sids.append(sid)
    statuses = {}
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(conn.data_to_send())
        while len([s for s in sids if s in statuses and statuses[s][1]]) < len(sids):
            data = sock.recv(65536)
            assert data, f"the server closed the connection with {statuses}"
            for ev in conn.receive_data(data):
                if isinstance(ev, h2.events.ResponseReceived):
                    statuses[ev.stream_id] = (int(dict(ev.headers)[b":status"]), False)
                elif isinstance(ev, h2.events.StreamEnded):
                    statuses[ev.stream_id] = (statuses[ev.stream_id][0], True)
                elif isinstance(ev, h2.events.DataReceived):
                    conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
            sock.sendall(conn.data_to_send())
    return {s: st for s, (st, _) in statuses.items()}


def test_reads_without_redis_coalesce_and_meter_locally(server):
    """Redis on a port where nothing listens: every read is a cache miss,
    the reads of one user that arrive together share one PostgreSQL query,
    and the rate limiter decides in process (fail mode "local")."""
    srv = start_redis_server(server, WORKERS="1", HTTP2="1", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
                             RATE_LIMIT_MAX="1000", RATE_LIMIT_FAIL_MODE="local")
    token = make_token()
    with Client(srv, token=token) as c:
        user = c.create_user(name="Coalesced")
    n = 16
    before = counters(srv)
    statuses = _h2_burst(srv.port, [f"/v1/users/{user['id']}"] * n, token)
    after = counters(srv)
    assert sorted(statuses.values()) == [200] * n, statuses
    # one of the reads asked PostgreSQL; the other n-1 waited for its answer
    assert delta(before, after) == {"misses": n, "coalesced": n - 1, "rl_local": n}


def test_fail_mode_open_is_counted(server):
    srv = start_redis_server(server, WORKERS="1", REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
                             RATE_LIMIT_FAIL_MODE="open")
    with Client(srv) as c:
        before = counters(srv)
        for _ in range(3):
            assert c.get("/v1/users?limit=1").status_code == 200
        after = counters(srv)
    assert delta(before, after) == {"rl_open": 3}


def test_idempotency_replays_conflicts_and_in_flight(server):
    srv = start_users_server(server)  # without Redis: the keys live in PostgreSQL only
    sub = f"obs-{uuid.uuid4()}"
    c = Client(srv, token=make_token(sub=sub))
    key = str(uuid.uuid4())
    body = {"email": unique_email("obs"), "name": "Counted"}
    before = counters(srv)
    assert c.post("/v1/users", json_body=body, headers={"Idempotency-Key": key}).status_code == 201
    for _ in range(2):
        r = c.post("/v1/users", json_body=body, headers={"Idempotency-Key": key})
        assert r.headers.get("Idempotent-Replayed") == "true", describe(r)
    r = c.post("/v1/users", json_body=dict(body, name="Other"), headers={"Idempotency-Key": key})
    assert r.status_code == 422, describe(r)
    # a duplicate of a request still running: its key's row is held, uncommitted
    held = str(uuid.uuid4())
    holder = admin_connect(dbname=app_dbname(), autocommit=False)
    try:
        holder.execute("INSERT INTO idempotency_keys (principal, key, fingerprint, status, body) "
                       "VALUES (%s, %s, %s, 201, '{}')", (sub, held, b"\0" * 32))
        r = c.post("/v1/users", json_body=body, headers={"Idempotency-Key": held})
        assert r.status_code == 409, describe(r)
    finally:
        holder.rollback()
        holder.close()
    after = counters(srv)
    c.close()
    # no Redis here: the five POSTs were metered in process too
    assert delta(before, after) == {"replays": 2, "conflicts": 1, "in_flight": 1, "rl_local": 5}
