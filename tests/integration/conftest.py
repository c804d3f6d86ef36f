"""Fixtures for the black-box integration tests.

`server` (one test) and `module_server` (one test module) are factories:

    def test_x(server):
        srv = server(env={"API_DEBUG_ROUTES": "1"})
        requests.get(srv.url + "/health/live")

Each call picks a free port, starts the binary ($API_BIN, default
build/asan/api) with WORKERS=2, LOG_LEVEL=info, REDIS_URL='' and the given
overrides, and waits (at most 10 s) until GET /health/live answers. The
returned object has .url, .port, .proc, .log_lines(), .wait_for_log(),
.stop() (SIGTERM, wait, exit code) and .send_signal().

On teardown every server still running is stopped with SIGTERM and must exit
with code 0 (unless the test set srv.expected_exit = None), and its stderr
must hold no sanitizer report; either failure fails the test.
"""

import pytest

from harness import start_server


class _Factory:
    def __init__(self, make_dir):
        self._make_dir = make_dir
        self.servers = []

    def __call__(self, env=None, args=("serve",), wait=True, prefix=()):
        workdir = self._make_dir(len(self.servers))
        srv = start_server(workdir, env=env, args=args, wait=wait, prefix=prefix)
        self.servers.append(srv)
        return srv

    def finish(self):
        problems = []
        for srv in self.servers:
            problems.extend(srv.finish())
        return problems


@pytest.fixture
def server(tmp_path):
    factory = _Factory(lambda i: tmp_path / f"server{i}")
    yield factory
    problems = factory.finish()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def module_server(tmp_path_factory, request):
    base = tmp_path_factory.mktemp(request.module.__name__.rsplit(".", 1)[-1])
    factory = _Factory(lambda i: base / f"server{i}")
    yield factory
    problems = factory.finish()
    if problems:
        pytest.fail("\n".join(problems), pytrace=False)


@pytest.fixture(scope="module")
def api(module_server):
    """A users-API client on one server shared by a test file (started like a
    load balancer would use it: traffic only once /health/ready is 200)."""
    from users_support import Client, start_users_server

    srv = start_users_server(module_server)
    c = Client(srv)
    yield c
    c.close()
