"""deploy/prometheus/alerts.yml: `promtool check rules` clean, and
`promtool test rules` cases that show every alert firing and not firing."""

import yaml

from obs_support import ALERT_TESTS, ALERTS, promtool

SLOW_TESTS = ALERT_TESTS.with_name("alerts_slow_burn_test.yml")
REQUIRED = {"ApiErrorBudgetBurn", "ApiErrorBudgetBurnSlow", "ApiLatencyBudgetBurn", "ApiLatencyBudgetBurnSlow",
            "ApiCircuitBreakerOpen", "ApiNotReady", "ApiDbPoolSaturated", "ApiTraceSpansDropping"}


def alert_rules():
    doc = yaml.safe_load(ALERTS.read_text())
    return [r for g in doc["groups"] for r in g["rules"] if "alert" in r]


def test_rules_are_clean():
    r = promtool("check", "rules", str(ALERTS))
    assert r.returncode == 0, r.stdout + r.stderr
    assert "SUCCESS" in r.stdout and "WARNING" not in r.stdout + r.stderr, r.stdout + r.stderr
    rules = alert_rules()
    assert {r["alert"] for r in rules} == REQUIRED
    for rule in rules:
        assert rule["labels"]["severity"] in ("page", "ticket", "warning"), rule
        assert rule["annotations"]["summary"] and rule["annotations"]["description"], rule
    # the SLO alerts are multiwindow: each burn rate is checked over a long and a short window
    by_name = {r["alert"]: r["expr"] for r in rules}
    for name, windows in (("ApiErrorBudgetBurn", ("rate1h", "rate5m", "rate6h", "rate30m")),
                          ("ApiLatencyBudgetBurn", ("rate1h", "rate5m", "rate6h", "rate30m")),
                          ("ApiErrorBudgetBurnSlow", ("rate3d", "rate6h")),
                          ("ApiLatencyBudgetBurnSlow", ("rate3d", "rate6h"))):
        for w in windows:
            assert f"ratio_{w}" in by_name[name], (name, w)


def test_every_alert_fires_and_stays_quiet_in_the_unit_tests():
    r = promtool("test", "rules", str(ALERT_TESTS), str(SLOW_TESTS), timeout=120)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.count("SUCCESS") == 2, r.stdout
    fires, quiet = set(), set()
    for f in (ALERT_TESTS, SLOW_TESTS):
        for t in yaml.safe_load(f.read_text())["tests"]:
            for case in t.get("alert_rule_test", []):
                (fires if case.get("exp_alerts") else quiet).add(case["alertname"])
    assert fires == REQUIRED, REQUIRED - fires
    assert quiet == REQUIRED, REQUIRED - quiet
