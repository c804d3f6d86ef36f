"""The local cluster (deploy/cluster.sh) for black-box tests.

`Cluster.up(workdir)` runs `deploy/cluster.sh up` on free loopback ports in a
directory of its own: three server processes (the release build, build/api,
unless $CLUSTER_API_BIN says otherwise) behind HAProxy, PgBouncer in front of
a PostgreSQL of its own, one Redis. PgBouncer pools in transaction mode and
the instances send unnamed statements (DATABASE_PREPARED=0), as in
production. `down()` stops every process by PID and deletes the directory.
Every wait is bounded.
"""

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from harness import LOOPBACK, REPO_ROOT, free_port, rget

CLUSTER_SH = REPO_ROOT / "deploy" / "cluster.sh"
RATE_LIMIT_MAX = 200
RATE_LIMIT_WINDOW_S = 60
SHUTDOWN_DELAY_MS = 2500


def cluster_api_bin():
    p = Path(os.environ.get("CLUSTER_API_BIN") or REPO_ROOT / "build" / "api")
    if not p.is_absolute():
        p = REPO_ROOT / p
    return p


def require_tools(*names):
    missing = [n for n in names if shutil.which(n) is None]
    if missing:
        raise AssertionError(f"not installed: {', '.join(missing)} (scripts/deps.sh installs them)")


def _read_env(path):
    """The `export K='v'` lines of a cluster env file, as a dict."""
    out = {}
    cmd = f"set -a; source {json.dumps(str(path))}; env -0"
    raw = subprocess.run(["bash", "-c", cmd], capture_output=True, timeout=10, env={"PATH": os.environ["PATH"]}).stdout
    for item in raw.split(b"\0"):
        if b"=" in item:
            k, v = item.split(b"=", 1)
            out[k.decode()] = v.decode()
    return out


class Cluster:
    def __init__(self, workdir, pool_mode):
        self.dir = Path(workdir) / "cluster"
        self.pool_mode = pool_mode
        self.binary = cluster_api_bin()
        ports = [free_port() for _ in range(6)]
        assert len(set(ports)) == 6, ports
        self.port, self.metrics_port, self.pgbouncer_port = ports[:3]
        self.api_ports = ports[3:]
        self.url = f"http://{LOOPBACK}:{self.port}"
        self.metrics_url = f"http://{LOOPBACK}:{self.metrics_port}"
        self.api_urls = [f"http://{LOOPBACK}:{p}" for p in self.api_ports]
        self.env = {}

    def run(self, *args, timeout=120, check=True):
        env = {k: v for k, v in os.environ.items()
               if not re.match(r"^(PG[A-Z]*|REDIS_PORT|SERVICES_DIR|DATABASE_[A-Z_]+|REDIS_[A-Z_]+|"
                               r"RATE_LIMIT_[A-Z_]+|SHUTDOWN_[A-Z_]+|JWT_[A-Z_]+|CURSOR_SECRET|LOG_LEVEL|"
                               r"WORKERS|CLUSTER_[A-Z_]+)$", k)}
        env.update({
            "API_BIN": str(self.binary),
            "CLUSTER_PORT": str(self.port),
            "CLUSTER_METRICS_PORT": str(self.metrics_port),
            "CLUSTER_PGBOUNCER_PORT": str(self.pgbouncer_port),
            "CLUSTER_API_PORTS": " ".join(map(str, self.api_ports)),
            "PGBOUNCER_POOL_MODE": self.pool_mode,
            "RATE_LIMIT_MAX": str(RATE_LIMIT_MAX),
            "RATE_LIMIT_WINDOW_S": str(RATE_LIMIT_WINDOW_S),
            "SHUTDOWN_DELAY_MS": str(SHUTDOWN_DELAY_MS),
            "WORKERS": "2",
        })
        try:
            p = subprocess.run(["bash", str(CLUSTER_SH), *args, str(self.dir)], env=env, cwd=REPO_ROOT,
                               capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL)
        except subprocess.TimeoutExpired as e:
            raise AssertionError(f"cluster.sh {' '.join(args)} did not finish within {timeout}s\n"
                                 f"{e.stderr}") from None
        if check and p.returncode != 0:
            raise AssertionError(f"cluster.sh {' '.join(args)} exited {p.returncode}\n"
                                 f"stdout: {p.stdout}\nstderr: {p.stderr}\n{self.logs_tail()}")
        return p

    def up(self):
        self.run("up", timeout=120)
        self.env = _read_env(self.dir / "env")
        return self

    def down(self):
        if self.dir.exists():
            self.run("down", timeout=90)
        assert not self.dir.exists(), f"cluster.sh down left {self.dir}"

    def pid(self, name):
        text = (self.dir / f"{name}.pid").read_text().split()
        return int(text[0])

    def instance_log(self, i):
        """Parsed JSON lines of instance i (1-based), all its processes."""
        out = []
        for line in (self.dir / f"api{i}" / "log").read_text(errors="replace").splitlines():
            line = line.strip()
            if line.startswith("{"):
                try:
                    out.append(json.loads(line))
                except ValueError:
                    pass
        return out

    def logs_tail(self, n=20):
        parts = []
        for name in ("api1", "api2", "api3", "pgbouncer", "haproxy"):
            p = self.dir / name / "log"
            if p.exists():
                lines = p.read_text(errors="replace").splitlines()
                parts.append(f"--- {name} (tail) ---\n" + "\n".join(lines[-n:]))
        return "\n".join(parts)

    def haproxy_states(self):
        """HAProxy's state of each server: {"api1": "UP", ...}."""
        r = rget(self.metrics_url + "/stats;csv", timeout=5)
        assert r.status_code == 200, r.status_code
        states = {}
        for line in r.text.splitlines():
            f = line.split(",")
            if len(f) > 17 and f[0] == "api" and f[1].startswith("api"):
                states[f[1]] = f[17]
        return states

    def wait_all_up(self, timeout=20):
        deadline = time.monotonic() + timeout
        while True:
            states = self.haproxy_states()
            if states and all(s == "UP" for s in states.values()):
                return states
            if time.monotonic() > deadline:
                raise AssertionError(f"HAProxy servers not all UP within {timeout}s: {states}")
            time.sleep(0.1)


def start_cluster(tmp_path_factory):
    require_tools("haproxy", "pgbouncer", "curl")
    binary = cluster_api_bin()
    if not (binary.is_file() and os.access(binary, os.X_OK)):
        raise AssertionError(f"{binary} not found: the cluster tests run the release build (make)")
    c = Cluster(tmp_path_factory.mktemp("cluster"), "transaction")
    try:
        c.up()
    except BaseException:
        c.run("down", check=False, timeout=90)
        raise
    return c

