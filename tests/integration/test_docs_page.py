"""GET /docs: the API reference page, as a browser sees it.

The contract: an HTML page that renders the OpenAPI document, and neither it
nor any script or stylesheet it loads names another host. Checked twice:
statically, on every byte the page and its assets are served with, and in
headless Chromium, which loads the page with every host name but 127.0.0.1
unresolvable; its NetLog must show no connection or datagram to anywhere
else, and the DOM the page's script built must list every path and method
(with its parameters and response codes) of the /openapi.json the server
serves at test time.
"""

import re
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest

from chromium_support import run_chromium
from harness import LOOPBACK, get, media_type, rget

METHODS = ("get", "put", "post", "delete", "options", "head", "patch", "trace")

# An absolute or protocol-relative URL with a host: "https://cdn.x.org/a",
# "//fonts.example", "ws://...". Comments in the JS start with "// " (a
# space), which this does not match.
OTHER_HOST_RE = re.compile(r"(?i)(?:\b[a-z][a-z0-9+.-]*:)?//[a-z0-9_-]+(?:\.[a-z0-9_-]+)*(?::\d+)?")
LOOPBACK_URL_RE = re.compile(r"(?i)(?:https?:)?//127\.0\.0\.1(?::\d+)?")


@pytest.fixture(scope="module")
def docs_server(module_server):
    return module_server()


class _Refs(HTMLParser):
    """src= and href= of the scripts, stylesheets and icons a page loads."""

    def __init__(self):
        super().__init__()
        self.loads = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.loads.append(a["src"])
        if tag == "link" and a.get("href"):
            self.loads.append(a["href"])
        if tag in ("img", "iframe", "source", "audio", "video", "embed") and a.get("src"):
            self.loads.append(a["src"])


def _page_and_assets(srv):
    r = rget(srv.url + "/docs", timeout=5)
    assert r.status_code == 200, r.text[:300]
    refs = _Refs()
    refs.feed(r.text)
    assets = {}
    for ref in refs.loads:
        if ref.startswith("data:"):
            continue
        url = urljoin(srv.url + "/docs", ref)
        a = rget(url, timeout=5)
        assert a.status_code == 200, f"{ref} ({url}): {a.status_code}"
        assets[ref] = a
    return r, assets


def test_docs_is_html_with_a_restrictive_content_security_policy(docs_server):
    r = rget(docs_server.url + "/docs", timeout=5)
    assert r.status_code == 200
    assert media_type(r.headers.get("Content-Type")) == "text/html"
    assert r.headers.get("X-Content-Type-Options") == "nosniff"
    csp = r.headers.get("Content-Security-Policy", "")
    directives = {}
    for part in csp.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    assert directives.get("default-src") == ["'none'"], csp
    # Every source any directive allows is this origin, nothing, or data:.
    for name, sources in directives.items():
        for s in sources:
            assert s in ("'self'", "'none'", "data:"), f"{name} allows {s}: {csp}"
    # HEAD works like GET, without a body.
    h = get(docs_server.port, "/docs", method="HEAD")
    assert h.status == 200 and h.body == b"", h
    assert int(h.header("content-length")) == len(r.content), h


def test_docs_page_and_assets_name_no_other_host(docs_server):
    page, assets = _page_and_assets(docs_server)
    assert any(ref.endswith(".js") for ref in assets), f"no script loaded: {list(assets)}"
    assert any(ref.endswith(".css") for ref in assets), f"no stylesheet loaded: {list(assets)}"
    for ref in assets:
        # Relative references only: the page works behind any prefix.
        parts = urlsplit(ref)
        assert not parts.scheme and not parts.netloc and not ref.startswith("/"), ref
    for name, resp in [("/docs", page), *assets.items()]:
        text = resp.content.decode("utf-8")
        found = [m.group(0) for m in OTHER_HOST_RE.finditer(text)
                 if not LOOPBACK_URL_RE.fullmatch(m.group(0))]
        assert not found, f"{name} names other hosts: {found[:10]}"
        assert "@import" not in text and "url(http" not in text.replace(" ", ""), name


def test_unknown_docs_file_is_a_404_problem(docs_server):
    for path in ("/docs/nope.js", "/docs/index.html", "/docs/..%2fopenapi.json"):
        r = rget(docs_server.url + path, timeout=5)
        assert r.status_code == 404, f"{path}: {r.status_code}"
        assert media_type(r.headers.get("Content-Type")) == "application/problem+json"


class _RenderedOps(HTMLParser):
    """From the rendered DOM: each <section class="op"> with its data-method,
    data-path, the text of its heading, and the data-param / data-status of
    the elements inside it; and each component schema section."""

    def __init__(self):
        super().__init__()
        self.ops = []
        self.schemas = []
        self.state = None
        self._depth = 0
        self._in_head = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if tag == "section" and "component" in classes and a.get("data-schema"):
            self.schemas.append(a["data-schema"])
        if a.get("id") == "app":
            self.state = a.get("data-state")
        if self.ops and self._depth > 0:
            op = self.ops[-1]
            if tag == "section":
                self._depth += 1
            if "data-param" in a:
                op["params"].append(a["data-param"])
            if "data-status" in a:
                op["statuses"].append(a["data-status"])
            if tag == "h3" and "op-head" in classes:
                self._in_head = True
            return
        if tag == "section" and "op" in classes:
            self.ops.append({"method": a.get("data-method"), "path": a.get("data-path"),
                             "head": "", "params": [], "statuses": []})
            self._depth = 1

    def handle_endtag(self, tag):
        if self._depth > 0:
            if tag == "h3":
                self._in_head = False
            if tag == "section":
                self._depth -= 1

    def handle_data(self, data):
        if self._in_head and self.ops:
            self.ops[-1]["head"] += data


def _deref(doc, obj):
    while isinstance(obj, dict) and "$ref" in obj:
        node = doc
        for part in obj["$ref"].lstrip("#/").split("/"):
            node = node[part.replace("~1", "/").replace("~0", "~")]
        obj = node
    return obj


def test_chromium_renders_every_operation_and_contacts_only_loopback(docs_server, tmp_path):
    # The document as the server serves it now, not as the repository has it.
    doc = rget(docs_server.url + "/openapi.json", timeout=5).json()
    expected = {}
    for path, item in doc["paths"].items():
        for m in METHODS:
            if m in item:
                op = item[m]
                params = [_deref(doc, p)["name"] for p in item.get("parameters", []) + op.get("parameters", [])]
                expected[(m, path)] = (sorted(set(params)), sorted(op["responses"]))
    assert ("get", "/docs") in expected, "the OpenAPI document does not describe GET /docs"

    dom, netlog = run_chromium(docs_server.url + "/docs", tmp_path, extra_flags=("--dump-dom",))
    rendered = _RenderedOps()
    rendered.feed(dom)
    assert rendered.state == "ready", f"page did not finish rendering (state {rendered.state!r}):\n{dom[:2000]}"

    got = {}
    for op in rendered.ops:
        key = (op["method"], op["path"])
        assert key not in got, f"{key} rendered twice"
        # What a reader sees: "GET /v1/users/{id}" in the operation's heading.
        head = " ".join(op["head"].split())
        assert head.startswith(f"{op['method'].upper()} {op['path']}"), head
        got[key] = (sorted(set(op["params"])), sorted(set(op["statuses"])))
    assert set(got) == set(expected), (f"missing: {sorted(set(expected) - set(got))}, "
                                       f"extra: {sorted(set(got) - set(expected))}")
    for key, (params, statuses) in expected.items():
        assert got[key][0] == params, f"{key}: parameters {got[key][0]} != {params}"
        assert got[key][1] == statuses, f"{key}: responses {got[key][1]} != {statuses}"
    assert rendered.schemas == list(doc["components"]["schemas"]), rendered.schemas

    # What the browser fetched for the page, and that nothing left loopback.
    origin = f"http://{LOOPBACK}:{docs_server.port}"
    requests_ = netlog.url_requests()
    page_requests = [r for r in requests_ if LOOPBACK in r["isolation_key"]]
    page_urls = {r["url"] for r in page_requests}
    for path in ("/docs", "/docs/docs.js", "/docs/docs.css", "/openapi.json"):
        assert origin + path in page_urls, f"{path} not fetched: {sorted(page_urls)}"
    for r in page_requests:
        assert r["url"].startswith(origin + "/"), f"the page requested {r['url']}"
        assert r["error"] in (None, 0), f"{r['url']} failed: {r['error']}"
    for r in requests_:
        if urlsplit(r["url"]).hostname != LOOPBACK:
            # Chromium's own background requests: stopped at name resolution.
            assert r["error"] is not None and r["error"] < 0, f"{r['url']} was not stopped: {r}"
    hosts = netlog.remote_hosts()
    assert hosts == {LOOPBACK}, f"connections or datagrams to {sorted(hosts - {LOOPBACK})}"

    # The server's side of it: the page's own requests reached it.
    for path in ("/docs", "/docs/docs.js", "/docs/docs.css", "/openapi.json"):
        docs_server.wait_for_log(lambda o, p=path: o.get("msg") == "request" and o.get("path") == p
                                 and o.get("status") == 200)
