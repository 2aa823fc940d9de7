"""The shipped alert rules, their promtool tests, the Grafana dashboard and the compose monitoring profile.

The promtool checks skip locally without ``promtool`` (CI installs it and makes a skip a failure).
Which metric names exist is checked against a live ``/metrics`` in
tests/integration/test_metrics_exposition.py; here, that the files are well-formed and complete.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from tests.monitoring import (
    ALERT_TESTS,
    ALERTS,
    ROOT,
    alert_rules,
    as_promql,
    dashboard,
    dashboard_expressions,
    metric_names,
    run_promtool,
    used_metric_names,
)


def test_alert_rules_pass_promtool_check() -> None:
    result = run_promtool("check", "rules", str(ALERTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_alert_unit_tests_pass_promtool() -> None:
    result = run_promtool("test", "rules", str(ALERT_TESTS))
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_alert_has_a_unit_test_that_expects_it_to_fire() -> None:
    tests = yaml.safe_load(ALERT_TESTS.read_text())["tests"]
    fired = {case["alertname"] for test in tests for case in test.get("alert_rule_test", []) if case["exp_alerts"]}
    missing = {rule["alert"] for rule in alert_rules()} - fired
    assert not missing, f"alerts without a firing case in {ALERT_TESTS.name}: {sorted(missing)}"


def _slug(heading: str) -> str:
    """GitHub's heading anchor: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _troubleshooting_anchors() -> set[str]:
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Troubleshooting\n", 1)[1].split("\n## ", 1)[0]
    return {_slug(line.lstrip("#")) for line in section.splitlines() if line.startswith("###")}


def test_every_alert_has_a_runbook_pointing_at_its_readme_troubleshooting_entry() -> None:
    anchors = _troubleshooting_anchors()
    for rule in alert_rules():
        runbook = rule.get("annotations", {}).get("runbook", "")
        assert runbook.startswith("README.md#"), f"{rule['alert']}: runbook {runbook!r} is not README.md#anchor"
        assert runbook.split("#", 1)[1] in anchors, f"{rule['alert']}: no Troubleshooting heading for {runbook}"
        assert rule.get("labels", {}).get("severity") in ("warning", "critical"), rule["alert"]


def test_every_dashboard_expression_parses_as_promql(tmp_path: Path) -> None:
    expressions = dashboard_expressions()
    rules = [{"record": f"dashboard:target_{n}", "expr": as_promql(e)} for n, e in enumerate(expressions)]
    path = tmp_path / "dashboard_rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = run_promtool("check", "rules", str(path))
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_dashboard_shows_what_the_issue_asks_operators_to_watch() -> None:
    shown = set().union(*(metric_names(e) for e in dashboard_expressions()))
    wanted = {
        "connector_events_published_total",  # events/s by operation
        "connector_events_rejected_total",  # rejected by reason
        "connector_lag_seconds",
        "connector_checkpoint_age_seconds",
        "connector_in_flight_messages",
        "connector_retries_total",
        "connector_lease_owned",
        "connector_lease_generation",
        "process_resident_memory_bytes",
        "process_cpu_seconds_total",
    }
    assert wanted <= shown, f"no panel for {sorted(wanted - shown)}"


@pytest.mark.parametrize(
    ("expr", "names"),
    [
        ("connector_lag_seconds > 60", {"connector_lag_seconds"}),
        (
            'histogram_quantile(0.99, sum by (le) (rate(connector_publish_latency_seconds_bucket{job=~"$job"}'
            "[$__rate_interval])))",
            {"connector_publish_latency_seconds_bucket"},
        ),
        (
            "connector_ready == 0\n  and on (job, instance) max by (job, instance) (connector_lease_owned) == 1",
            {"connector_ready", "connector_lease_owned"},
        ),
        (
            'sum without (instance) (rate(a_total{reason="by (x)",kind!~"or|and"}[5m] offset 1h)) / ignoring(k) b',
            {"a_total", "b"},
        ),
        ("absent(connector_ready)", {"connector_ready"}),
        ("x * on(a) group_left(b) y unless z > bool 1e3", {"x", "y", "z"}),
        ("sum(rate(c_total[5m])) by (kind) > 0 or vector(0)", {"c_total"}),
        ("connector_checkpoint_age_seconds > 12 * 3600", {"connector_checkpoint_age_seconds"}),
    ],
)
def test_metric_names_are_read_out_of_promql(expr: str, names: set[str]) -> None:
    assert metric_names(expr) == names


def test_rules_and_dashboard_use_connector_and_process_metrics_only() -> None:
    """Guards the extraction against silently yielding nothing (or a label name) for every file."""
    used = used_metric_names()
    assert "connector_lag_seconds" in used
    strays = {name for name in used if not name.startswith(("connector_", "process_"))}
    assert not strays, f"not metric names, or metrics of something else: {strays}"


def test_the_compose_monitoring_profile_provisions_rules_and_dashboard() -> None:
    docker = ROOT / "docker"
    services = yaml.safe_load((docker / "compose.yaml").read_text())["services"]
    for name in ("prometheus", "grafana"):
        assert services[name].get("profiles") == ["monitoring"], name
        for volume in services[name]["volumes"]:
            source = volume.split(":")[0]
            assert (docker / source).exists(), f"{name} mounts {source}, which does not exist"
    mounts = {v.split(":")[1]: v.split(":")[0] for v in services["prometheus"]["volumes"]}
    assert (docker / mounts["/etc/prometheus/alerts.yml"]).resolve() == ALERTS
    config = yaml.safe_load((docker / mounts["/etc/prometheus/prometheus.yml"]).read_text())
    assert config["rule_files"] == ["alerts.yml"]
    targets = config["scrape_configs"][0]["static_configs"][0]["targets"]
    assert targets == ["connector:8080"] and "8080:8080" in services["connector"]["ports"]
    grafana = {v.split(":")[1]: (docker / v.split(":")[0]) for v in services["grafana"]["volumes"]}
    assert (grafana["/var/lib/grafana/dashboards"] / "connector.json").exists()
    provider = yaml.safe_load((grafana["/etc/grafana/provisioning"] / "dashboards" / "connector.yml").read_text())
    assert provider["providers"][0]["options"]["path"] == "/var/lib/grafana/dashboards"
    sources = yaml.safe_load((grafana["/etc/grafana/provisioning"] / "datasources" / "prometheus.yml").read_text())
    assert {panel["datasource"]["uid"] for panel in dashboard()["panels"]} == {sources["datasources"][0]["uid"]}


def test_the_compose_prometheus_config_passes_promtool() -> None:
    result = run_promtool("check", "config", str(ROOT / "docker" / "prometheus" / "prometheus.yml"))
    assert result.returncode == 0, result.stdout + result.stderr
