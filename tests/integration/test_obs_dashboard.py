"""deploy/grafana/api.json: a dashboard a user imports as it is (Grafana's
export format), whose every expression is valid PromQL over metrics the
server exports. test_obs_prometheus.py evaluates the expressions against a
real Prometheus scraping a real server."""

import re

import yaml

from obs_support import all_panels, dashboard, dashboard_exprs, documented_families, promtool

NEEDED = {  # what each part of the dashboard must show
    "RED": ["http_server_request_duration_seconds_count", "http_server_request_duration_seconds_bucket",
            'http_response_status_code=~"5.."', "histogram_quantile(0.5", "histogram_quantile(0.95",
            "histogram_quantile(0.99"],
    "saturation": ["http_server_active_requests", "api_db_pool_in_use", "api_db_pool_waiting",
                   "api_db_pool_wait_duration_seconds_bucket"],
    "dependencies": ["api_db_batch_duration_seconds_bucket", "api_redis_command_duration_seconds_bucket",
                     "api_circuit_breaker_state"],
    "patterns": ["api_cache_hits_total", "api_cache_misses_total", "api_http_requests_rate_limited_total",
                 "api_http_requests_shed_total", "api_http_requests_timed_out_total",
                 "api_idempotency_replays_total"],
}


def test_dashboard_is_importable():
    d = dashboard()
    inputs = d["__inputs"]
    assert any(i["type"] == "datasource" and i["pluginId"] == "prometheus" for i in inputs), inputs
    ds = "${" + inputs[0]["name"] + "}"
    assert isinstance(d["schemaVersion"], int) and d["schemaVersion"] >= 30
    assert d["title"] and d["uid"]
    panels = all_panels(d)
    ids = [p["id"] for p in panels]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    for p in panels:
        if p["type"] == "row":
            continue
        assert p["datasource"]["uid"] == ds, p["title"]
        assert p["targets"], p["title"]
        assert all(t["datasource"]["uid"] == ds for t in p["targets"]), p["title"]
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
    variables = {v["name"]: v for v in d["templating"]["list"]}
    for name in ("instance", "route"):
        v = variables[name]
        assert v["type"] == "query" and v["datasource"]["uid"] == ds and v["includeAll"], v
    assert "http_route" in variables["route"]["query"]["query"]
    # every panel follows the variables
    for p in panels:
        for t in p.get("targets", []):
            assert "$instance" in t["expr"], (p["title"], t["expr"])
            if "http_server_request_duration_seconds" in t["expr"]:
                assert "$route" in t["expr"], (p["title"], t["expr"])


def test_dashboard_shows_what_operators_need():
    text = " ".join(e for _, _, e in dashboard_exprs())
    for part, needles in NEEDED.items():
        for n in needles:
            assert n in text, f"{part}: no panel uses {n}"
    # only metrics the server exports (and documents)
    docs = documented_families()
    names = set(re.findall(r"\b((?:api|http|process)_[a-z_]+)\{", text))
    assert len(names) >= 20, names
    for name in names:
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        assert name in docs or base in docs, name


def test_every_expression_is_valid_promql(tmp_path):
    exprs = dashboard_exprs()
    assert len(exprs) >= 25
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:panel_{i}", "expr": e} for i, (_, _, e) in enumerate(exprs)]}]}
    f = tmp_path / "dashboard_rules.yml"
    f.write_text(yaml.safe_dump(rules))
    r = promtool("check", "rules", str(f))
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"SUCCESS: {len(exprs)} rules found" in r.stdout, r.stdout
