"""Helpers for the observability tests (tests/integration/test_obs_*.py).

What lives here:

- `parse_exposition` / `exposition_problems`: a strict reader of the
  Prometheus text format and the checks `promtool check metrics` does not
  make (cumulative buckets, `+Inf` equal to `_count`, no duplicate series,
  one TYPE per family, samples only under their own family);
- `promtool(...)`: Debian's promtool, with its exit code and output;
- `documented_families`: the metric names docs/observability.md lists;
- `Collector`: an OTLP/HTTP stand-in (Python's http.server on loopback)
  that records every POST to /v1/traces, and can answer 503 or be stopped;
- `Prometheus`: a real Prometheus server (Debian's `prometheus`) on a free
  loopback port with a temporary storage directory, stopped by PID;
- `dashboard_exprs`: every PromQL expression of the Grafana dashboard, with
  its template variables filled in.

Nothing here knows the server's internals: metrics are read over HTTP, spans
as the collector receives them.
"""

import json
import math
import re
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import requests

from harness import LOOPBACK, REPO_ROOT, free_port, rget

PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
DOC = REPO_ROOT / "docs" / "observability.md"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "api.json"
ALERTS = REPO_ROOT / "deploy" / "prometheus" / "alerts.yml"
ALERT_TESTS = REPO_ROOT / "tests" / "prometheus" / "alerts_test.yml"

# ---- the exposition format -----------------------------------------------------

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_SAMPLE_RE = re.compile(rf"^({_NAME})(\{{(.*)\}})? (\S+)$")
_LABEL_RE = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"(,|$)')
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "counter": ("",), "gauge": ("",)}


def parse_labels(text):
    """{name: value} from the inside of {...}; raises ValueError on junk."""
    labels = {}
    pos = 0
    while pos < len(text):
        m = _LABEL_RE.match(text, pos)
        if not m:
            raise ValueError(f"bad labels: {text!r}")
        name, value = m.group(1), m.group(2)
        if name in labels:
            raise ValueError(f"label {name} twice in {text!r}")
        labels[name] = re.sub(r"\\(.)", lambda x: "\n" if x.group(1) == "n" else x.group(1), value)
        pos = m.end()
    return labels


def parse_exposition(text):
    """{family: {"type", "help", "samples": [(name, labels, value)]}}, in
    order. Raises AssertionError on what the format forbids."""
    families = {}
    current = None
    assert text.endswith("\n"), "the exposition must end with a newline"
    for line in text.split("\n")[:-1]:
        if line.startswith("# HELP "):
            name = line[7:].split(" ", 1)[0]
            families.setdefault(name, {"type": None, "help": None, "samples": []})
            assert families[name]["help"] is None, f"second HELP for {name}"
            families[name]["help"] = line[7 + len(name) + 1:]
            current = name
        elif line.startswith("# TYPE "):
            name, typ = line[7:].split(" ")
            families.setdefault(name, {"type": None, "help": None, "samples": []})
            assert families[name]["type"] is None, f"second TYPE for {name}"
            assert not families[name]["samples"], f"TYPE after samples for {name}"
            families[name]["type"] = typ
            current = name
        elif line.startswith("#") or not line:
            continue
        else:
            m = _SAMPLE_RE.match(line)
            assert m, f"bad sample line: {line!r}"
            name, labels, value = m.group(1), parse_labels(m.group(3) or ""), float(m.group(4))
            assert current is not None, f"sample before any family: {line!r}"
            typ = families[current]["type"]
            assert any(name == current + s for s in _SUFFIXES.get(typ, ("",))), \
                f"sample {name} under family {current} ({typ})"
            families[current]["samples"].append((name, labels, value))
    return families


def exposition_problems(text):
    """What promtool does not check. Returns a list of problems (empty: ok)."""
    problems = []
    try:
        fams = parse_exposition(text)
    except (AssertionError, ValueError) as e:
        return [str(e)]
    seen = set()
    for fam, f in fams.items():
        if f["type"] is None:
            problems.append(f"{fam}: no TYPE")
        for name, labels, value in f["samples"]:
            key = (name, tuple(sorted(labels.items())))
            if key in seen:
                problems.append(f"duplicate series {name}{labels}")
            seen.add(key)
            if math.isnan(value) or value < 0 and f["type"] != "gauge":
                problems.append(f"{name}{labels} = {value}")
        if f["type"] != "histogram":
            continue
        series = {}
        for name, labels, value in f["samples"]:
            base = tuple(sorted((k, v) for k, v in labels.items() if k != "le"))
            s = series.setdefault(base, {"buckets": [], "sum": None, "count": None})
            if name.endswith("_bucket"):
                s["buckets"].append((labels["le"], value))
            elif name.endswith("_sum"):
                s["sum"] = value
            else:
                s["count"] = value
        for base, s in series.items():
            les = [le for le, _ in s["buckets"]]
            if not les or les[-1] != "+Inf":
                problems.append(f"{fam}{dict(base)}: last bucket is not +Inf ({les[-1:]})")
                continue
            bounds = [float(le) for le in les[:-1]]
            if bounds != sorted(bounds) or len(set(bounds)) != len(bounds):
                problems.append(f"{fam}{dict(base)}: bucket bounds not increasing: {les}")
            values = [v for _, v in s["buckets"]]
            if any(b < a for a, b in zip(values, values[1:])):
                problems.append(f"{fam}{dict(base)}: buckets not cumulative: {values}")
            if s["count"] is None or s["sum"] is None:
                problems.append(f"{fam}{dict(base)}: no _sum or _count")
            elif values[-1] != s["count"]:
                problems.append(f"{fam}{dict(base)}: +Inf {values[-1]} != _count {s['count']}")
    return problems


def promtool(*args, stdin=None, timeout=60):
    return subprocess.run([PROMTOOL, *args], input=stdin, capture_output=True, text=True,
                          timeout=timeout, cwd=REPO_ROOT)


def sample_value(fams, family, name=None, **labels):
    """The value of one sample (None: absent)."""
    for n, ls, v in fams.get(family, {"samples": []})["samples"]:
        if n == (name or family) and all(ls.get(k) == str(val) for k, val in labels.items()):
            return v
    return None


def scrape(srv):
    r = rget(srv.url + "/metrics", timeout=5)
    assert r.status_code == 200, r.text[:300]
    return r.text


def documented_families():
    """Metric names in docs/observability.md's tables (first column, in backticks)."""
    names = set()
    for line in DOC.read_text().splitlines():
        m = re.match(r"^\|\s*`([a-z_:][a-z0-9_:]*)`\s*\|", line)
        if m:
            names.add(m.group(1))
    return names


# ---- an OTLP/HTTP collector stand-in -------------------------------------------

class Collector:
    """Records POST /v1/traces bodies (parsed JSON) with their arrival time.

    mode: "ok" (200), "503" (503 with Retry-After: 0), or a callable
    (number of the request, from 1) -> status. stop() closes the port, so
    exports then fail to connect."""

    def __init__(self, mode="ok"):
        self.mode = mode
        self.requests = []  # (monotonic time, status answered, parsed body)
        self.lock = threading.Lock()
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                raw = self.rfile.read(n)
                with outer.lock:
                    number = len(outer.requests) + 1
                    mode = outer.mode
                    status = mode(number) if callable(mode) else (503 if mode == "503" else 200)
                    if self.path != "/v1/traces" or \
                            self.headers.get("Content-Type") != "application/json":
                        status = 400
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        body, status = None, 400
                    outer.requests.append((time.monotonic(), status, body))
                self.send_response(status)
                if status == 503:
                    self.send_header("Retry-After", "0")
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

        self.httpd = ThreadingHTTPServer((LOOPBACK, self.port), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
            self.httpd = None

    def bodies(self, accepted_only=True):
        with self.lock:
            return [b for _, st, b in self.requests if b is not None and (st == 200 or not accepted_only)]

    def spans(self, accepted_only=True):
        """Every span received: (span, resource attributes {key: value})."""
        out = []
        for body in self.bodies(accepted_only):
            for rs in body.get("resourceSpans", []):
                res = {a["key"]: _attr_value(a["value"]) for a in rs["resource"]["attributes"]}
                for ss in rs.get("scopeSpans", []):
                    for sp in ss.get("spans", []):
                        out.append((sp, res))
        return out

    def wait_spans(self, pred, n=1, timeout=10.0):
        """At least n accepted spans matching pred(span); returns them all."""
        deadline = time.monotonic() + timeout
        while True:
            got = [s for s, _ in self.spans() if pred(s)]
            if len(got) >= n:
                return got
            if time.monotonic() > deadline:
                raise AssertionError(f"{len(got)} of {n} matching spans within {timeout}s; "
                                     f"{len(self.requests)} export requests received")
            time.sleep(0.05)


def _attr_value(v):
    if "stringValue" in v:
        return v["stringValue"]
    if "intValue" in v:
        return int(v["intValue"])
    if "boolValue" in v:
        return v["boolValue"]
    if "doubleValue" in v:
        return v["doubleValue"]
    return v


def span_attrs(span):
    return {a["key"]: _attr_value(a["value"]) for a in span.get("attributes", [])}


# ---- a real Prometheus ---------------------------------------------------------

class Prometheus:
    """Debian's prometheus on a free loopback port, scraping `targets`
    every `interval`; its storage lives in a temporary directory that stop()
    removes. Started with start(); stop() sends SIGTERM to its PID."""

    def __init__(self, targets, interval="1s"):
        self.dir = Path(tempfile.mkdtemp(prefix="api-prom-"))
        self.port = free_port()
        self.url = f"http://{LOOPBACK}:{self.port}"
        cfg = self.dir / "prometheus.yml"
        cfg.write_text(
            "global:\n"
            f"  scrape_interval: {interval}\n"
            f"  scrape_timeout: {interval}\n"
            "scrape_configs:\n"
            "  - job_name: api\n"
            "    static_configs:\n"
            f"      - targets: [{', '.join(repr(t) for t in targets)}]\n")
        self.cmd = [PROMETHEUS, f"--config.file={cfg}", f"--storage.tsdb.path={self.dir / 'data'}",
                    f"--web.listen-address={LOOPBACK}:{self.port}", "--log.level=warn",
                    "--storage.tsdb.retention.time=1h"]
        self.proc = None
        self.log = self.dir / "prometheus.log"

    def start(self, timeout=20.0):
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(self.cmd, stdout=out, stderr=subprocess.STDOUT,
                                         stdin=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError("prometheus exited:\n" + self.log.read_text()[-2000:])
            try:
                if rget(self.url + "/-/ready", timeout=1).status_code == 200:
                    return self
            except requests.RequestException:
                pass
            time.sleep(0.1)
        raise AssertionError("prometheus not ready in time:\n" + self.log.read_text()[-2000:])

    def query(self, expr):
        r = rget(self.url + "/api/v1/query", params={"query": expr}, timeout=10)
        body = r.json()
        assert body.get("status") == "success", f"{expr}: {body}"
        return body["data"]["result"]

    def wait_scrapes(self, n, timeout=30.0):
        """Until every target has been scraped successfully at least n times."""
        deadline = time.monotonic() + timeout
        while True:
            res = self.query("min(count_over_time(up[5m])) and min(up) == 1")
            if res and float(res[0]["value"][1]) >= n:
                return
            if time.monotonic() > deadline:
                raise AssertionError(f"fewer than {n} successful scrapes: {res}\n"
                                     + self.log.read_text()[-2000:])
            time.sleep(0.2)

    def stop(self):
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        shutil.rmtree(self.dir, ignore_errors=True)


# ---- the dashboard -------------------------------------------------------------

def dashboard():
    return json.loads(DASHBOARD.read_text())


def all_panels(dash):
    out = []
    for p in dash.get("panels", []):
        out.append(p)
        out.extend(p.get("panels", []))  # collapsed rows keep theirs inside
    return out


def fill_template(expr, instance=".*", route=".*"):
    """The expression as Grafana would send it, for every instance and route."""
    return (expr.replace("$__rate_interval", "1m").replace("$__interval", "15s")
            .replace("${instance:regex}", instance).replace("$instance", instance)
            .replace("${route:regex}", route).replace("$route", route))


def dashboard_exprs():
    """[(panel title, refId, expression with variables filled)]."""
    out = []
    for p in all_panels(dashboard()):
        for t in p.get("targets", []):
            if t.get("expr"):
                out.append((p.get("title"), t.get("refId"), fill_template(t["expr"])))
    return out
