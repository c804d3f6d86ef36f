"""Health endpoints of a server that has PostgreSQL: ready means ready."""

import pytest

from harness import rget
from users_support import (Client, assert_json_response, requires_db, start_users_server,
                           validate_schema, wait_ready_200)

pytestmark = requires_db


@pytest.fixture(scope="module")
def api(module_server):
    # No waiting for readiness here: that is what these tests look at.
    srv = start_users_server(module_server, wait_ready=False)
    c = Client(srv, token=None)
    yield c
    c.close()


def test_ready_is_200_when_the_database_is_up(api):
    # Start-up may take a moment (connecting the pool); then ready stays ready.
    wait_ready_200(api.srv)
    for _ in range(20):
        # A new connection each time: it may land on any worker.
        body = assert_json_response(rget(api.url + "/health/ready", timeout=5), 200)
        validate_schema("Readiness", body)
        assert body == {"status": "ready"}


def test_live_is_200(api):
    body = assert_json_response(api.get("/health/live"), 200)
    validate_schema("Liveness", body)
    assert body == {"status": "ok"}


def test_health_needs_no_token_and_ignores_a_bad_one(api):
    wait_ready_200(api.srv)
    r = api.get("/health/ready", headers={"Authorization": "Bearer garbage"})
    assert assert_json_response(r, 200) == {"status": "ready"}
