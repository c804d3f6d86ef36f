"""Command line and configuration: --help, --version, the default
sub-command, and start-up validation of every environment variable."""

import re
import socket

import pytest

from harness import (LOG_LEVELS, REPO_ROOT, assert_healthy, free_port, run_cli,
                     sanitizer_findings)


def _clean(result):
    found = sanitizer_findings(result.stderr)
    assert not found, "sanitizer report:\n" + result.stderr


def test_help_prints_usage_and_exits_zero():
    r = run_cli(["--help"])
    _clean(r)
    assert r.returncode == 0, r
    assert r.stdout.strip(), "usage must go to stdout"
    out = r.stdout.lower()
    # A usage text names the sub-commands it accepts.
    assert "serve" in out and "migrate" in out, r.stdout


def test_every_variable_in_help_is_in_the_readme_table():
    names = re.findall(r"^  ([A-Z][A-Z0-9_]+) ", run_cli(["--help"]).stdout, re.M)
    assert "JWT_JWKS_URL" in names, names
    readme = (REPO_ROOT / "README.md").read_text()
    missing = [n for n in names if f"`{n}`" not in readme]
    assert not missing, f"documented in --help but not in README.md: {missing}"


def test_version_prints_version_and_exits_zero():
    r = run_cli(["--version"])
    _clean(r)
    assert r.returncode == 0, r
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    assert lines, "version must go to stdout"
    assert re.search(r"\d+\.\d+\.\d+", lines[0]), r.stdout
    version_file = REPO_ROOT / "VERSION"
    if version_file.is_file():
        assert version_file.read_text().strip() in r.stdout, r.stdout


@pytest.mark.parametrize("args", [["--no-such-flag"], ["no-such-command"]])
def test_unknown_argument_fails(args):
    r = run_cli(args)
    _clean(r)
    assert r.returncode != 0, r
    assert r.stderr.strip(), "the error must be reported on stderr"


BAD_CONFIG = [
    ("PORT", "abc"),
    ("PORT", "70000"),
    ("PORT", "-1"),
    ("PORT", "3000abc"),
    ("WORKERS", "0"),
    ("WORKERS", "two"),
    ("REQUEST_TIMEOUT_MS", "-5"),
    ("REQUEST_TIMEOUT_MS", "99999999999999999999999"),
    ("SHUTDOWN_GRACE_MS", "soon"),
    ("HEADER_TIMEOUT_MS", "abc"),
    ("LOG_LEVEL", "loud"),
    ("MAX_BODY_BYTES", "-1"),
    ("MAX_BODY_BYTES", "1MB"),
    ("HTTP2", "maybe"),
    ("API_DEBUG_ROUTES", "2"),
]


@pytest.mark.parametrize("name,value", BAD_CONFIG, ids=[f"{n}={v}" for n, v in BAD_CONFIG])
def test_bad_config_value_exits_nonzero_naming_the_variable(name, value):
    env = {"PORT": str(free_port()), name: value}
    r = run_cli(["serve"], env=env)
    _clean(r)
    assert r.returncode != 0, f"server accepted {name}={value!r}: {r}"
    lines = [line for line in r.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, f"expected one line on stderr, got: {r.stderr!r}"
    assert name in lines[0], f"the error must name {name}: {lines[0]!r}"


def test_no_subcommand_means_serve(server):
    srv = server(args=())
    assert_healthy(srv)
    assert srv.stop() == 0


@pytest.mark.parametrize("level", LOG_LEVELS)
def test_every_log_level_is_accepted(server, level):
    srv = server(env={"LOG_LEVEL": level})
    assert_healthy(srv)
    # Whatever the level, whatever is written to stdout is JSON lines.
    srv.log_lines()


def test_port_in_use_fails_at_start():
    # A plain (non-SO_REUSEPORT) listener holds the port: the server cannot
    # bind it and must say so and exit, not hang or serve nothing.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        s.listen(1)
        port = s.getsockname()[1]
        r = run_cli(["serve"], env={"PORT": str(port)})
    _clean(r)
    assert r.returncode != 0, r
