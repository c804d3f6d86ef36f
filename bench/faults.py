#!/usr/bin/python3
"""Fault timings, measured on the release build (the figures docs/operations.md
and the fault tests are about):

- SIGSTOP of every PostgreSQL process -> readiness 503, idle and under load
  (wrk on an uncached list page), and SIGCONT -> readiness 200;
- Redis SIGSTOPped under a cached-read load: read p99 from 2 s into the freeze.

    bench/faults.py            (after make; starts its own PostgreSQL and Redis)

Everything runs on loopback; every process started is stopped by PID.
"""

import os
import re
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SERVICES = ROOT / "scripts" / "services.sh"
API = ROOT / "build" / "api"
SECRET = "bench-secret-bench-secret-bench-secret-0"


def sh(*args, **kw):
    return subprocess.run(args, check=True, capture_output=True, text=True, **kw).stdout


def ready(port):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/health/ready", timeout=2) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code
    except OSError:
        return None


def first(pred, timeout, step=0.02):
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        if pred():
            return time.monotonic() - t0
        time.sleep(step)
    return None


def children(pid):
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def main():
    svc = tempfile.mkdtemp(prefix="api-faults-")
    procs = []
    try:
        sh(str(SERVICES), "start", svc)
        env = dict(os.environ)
        for line in Path(svc, "env").read_text().splitlines():
            k, v = line.replace("export ", "", 1).split("=", 1)
            env[k] = v.strip("'")
        sh(str(API), "migrate", env=env)
        env.update(JWT_SECRET=SECRET, CURSOR_SECRET=SECRET, WORKERS="2", PORT="3941", LOG_LEVEL="warn",
                   RATE_LIMIT_MAX="0")
        srv = subprocess.Popen([str(API)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        procs.append(srv)
        assert first(lambda: ready(3941) == 200, 10) is not None
        token = sh("python3", str(ROOT / "scripts" / "dev-token.py"), "users:read", "users:write",
                   env={**env, "JWT_SECRET": SECRET}).strip()
        data = Path(svc, "pg").resolve() / "data" / "postmaster.pid"
        pm = int(data.read_text().split()[0])
        wenv = {**env, "BENCH_TOKEN": token, "WRK_PATH": "/v1/users?limit=5"}

        for load in (False, True):
            wrk = None
            if load:
                wrk = subprocess.Popen(["wrk", "-t2", "-c16", "-d30s", "-s", str(ROOT / "bench/wrk/get-path.lua"),
                                        "http://127.0.0.1:3941"], env=wenv, stdout=subprocess.DEVNULL,
                                       stderr=subprocess.DEVNULL)
                time.sleep(2)
            pids = [pm, *children(pm)]
            for p in pids:
                os.kill(p, signal.SIGSTOP)
            t_down = first(lambda: ready(3941) == 503, 10)
            time.sleep(3)
            for p in pids:
                os.kill(p, signal.SIGCONT)
            t_up = first(lambda: ready(3941) == 200, 20, step=0.05)
            if wrk:
                wrk.terminate()
                wrk.wait()
            print(f"PostgreSQL SIGSTOP {'under load' if load else 'idle'}: readiness 503 after "
                  f"{t_down:.2f} s; SIGCONT (after 3 s): readiness 200 after {t_up:.2f} s")
            time.sleep(1)

        # Redis frozen under a cached-read load
        c = urllib.request.Request("http://127.0.0.1:3941/v1/users", method="POST",
                                   data=b'{"email":"frozen@bench.example","name":"Frozen"}',
                                   headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
        uid = re.search(rb'"id":"([0-9a-f-]+)"', urllib.request.urlopen(c).read()).group(1).decode()
        renv = {**wenv, "WRK_PATH": f"/v1/users/{uid}"}
        redis_pid = int(Path(svc, "redis", "redis.pid").read_text())
        base = sh("wrk", "-t2", "-c16", "-d5s", "--latency", "-s", str(ROOT / "bench/wrk/get-path.lua"),
                  "http://127.0.0.1:3941", env=renv)
        os.kill(redis_pid, signal.SIGSTOP)
        try:
            time.sleep(2.0)
            frozen = sh("wrk", "-t2", "-c16", "-d5s", "--latency", "-s", str(ROOT / "bench/wrk/get-path.lua"),
                        "http://127.0.0.1:3941", env=renv)
        finally:
            os.kill(redis_pid, signal.SIGCONT)

        def p99(out):
            return re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1), re.search(r"Requests/sec:\s+(\S+)", out).group(1)

        print(f"cached read, Redis up: p99 {p99(base)[0]}, {p99(base)[1]} req/s; Redis frozen (from 2 s into the "
              f"freeze, 5 s): p99 {p99(frozen)[0]}, {p99(frozen)[1]} req/s")
    finally:
        for p in procs:
            p.send_signal(signal.SIGTERM)
            p.wait(30)
        subprocess.run([str(SERVICES), "destroy", svc], capture_output=True)


if __name__ == "__main__":
    sys.exit(main())
