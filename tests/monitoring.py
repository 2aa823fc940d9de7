"""The shipped monitoring files, their PromQL, and ``promtool``, for the tests that check them.

Metric names are read out of PromQL rather than listed by hand, so a panel or rule added later is
checked too: string literals, label matchers, ranges and ``by (...)``-style label lists are removed,
then every identifier that is not a function call, a keyword or a Grafana variable is a metric name.
``promtool check rules`` separately proves each expression parses, so the extraction never has to
guess at malformed input.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
ALERTS = ROOT / "docker" / "prometheus" / "alerts.yml"
ALERT_TESTS = ROOT / "docker" / "prometheus" / "alerts_test.yml"
DASHBOARD = ROOT / "docker" / "grafana" / "dashboards" / "connector.json"

# Names the rules or dashboard use that only the MongoDB source exports, once it has sampled the oplog
# (tests/unit/test_mongo_oplog.py checks the Prometheus adapter exports them). A file or simulated
# source must not export them at all: a resume margin of 0 would page someone for nothing.
MONGODB_ONLY: frozenset[str] = frozenset({"connector_resume_margin_seconds"})

_STRINGS = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGES = re.compile(r"\[[^\[\]]*\]")
_LABEL_LISTS = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^()]*\)")
_OFFSETS = re.compile(r"\b(?:offset)\s+-?[0-9a-z]+|@\s*[0-9.]+|@\s*(?:start|end)\s*\(\s*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:$])[A-Za-z_:][\w:]*")
_KEYWORDS = frozenset(
    (
        "and",
        "or",
        "unless",
        "bool",
        "by",
        "without",
        "on",
        "ignoring",
        "group_left",
        "group_right",
        "offset",
        "inf",
        "nan",
    )
)


def metric_names(expr: str) -> set[str]:
    """The metric names one PromQL expression selects (Grafana's ``$variables`` ignored)."""
    text = _STRINGS.sub(" ", expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGES.sub(" ", text)
    text = _LABEL_LISTS.sub(" ", text)
    text = _OFFSETS.sub(" ", text)
    names = set()
    for match in _IDENTIFIER.finditer(text):
        word = match.group()
        if word.lower() in _KEYWORDS or text[match.end() :].lstrip().startswith("("):
            continue  # a keyword, or a function / aggregation being called
        names.add(word)
    return names


_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*([A-Za-z_:][\w:]*)")


def alert_rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    return dict(json.loads(DASHBOARD.read_text()))


def _panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from _panels(panel.get("panels", []))  # rows nest panels


def dashboard_expressions() -> list[str]:
    """Every panel target's PromQL (variables as Grafana would leave them)."""
    return [t["expr"] for p in _panels(dashboard()["panels"]) for t in p.get("targets", []) if t.get("expr")]


def dashboard_variable_metrics() -> set[str]:
    """Metric names the template variables query (``label_values(metric, label)``)."""
    names = set()
    for variable in dashboard()["templating"]["list"]:
        query = variable.get("query")
        text = query.get("query", "") if isinstance(query, dict) else str(query or "")
        match = _LABEL_VALUES.match(text)
        assert match, f"dashboard variable {variable['name']}: expected label_values(metric, label), got {text!r}"
        names.add(match.group(1))
    return names


def as_promql(grafana_expr: str) -> str:
    """A dashboard expression with Grafana's variables replaced, so Prometheus can parse it."""
    text = grafana_expr.replace("$__rate_interval", "1m").replace("$__interval", "1m").replace("$__range", "1h")
    return re.sub(r"\$\{?\w+\}?", ".*", text)


def used_metric_names() -> dict[str, set[str]]:
    """Metric name -> where it is used (alert names, panel titles)."""
    used: dict[str, set[str]] = {}
    for rule in alert_rules():
        for name in metric_names(rule["expr"]):
            used.setdefault(name, set()).add(f"alert {rule['alert']}")
    for panel in _panels(dashboard()["panels"]):
        for target in panel.get("targets", []):
            for name in metric_names(target.get("expr", "")):
                used.setdefault(name, set()).add(f"panel {panel['title']!r}")
    for name in dashboard_variable_metrics():
        used.setdefault(name, set()).add("dashboard variable")
    return used


def prometheus_tool(name: str = "promtool") -> str:
    """``promtool`` or ``prometheus``, or a skip with the fix (CI sets CONNECTOR_TEST_REQUIRE_PROMTOOL:
    then a failure, so CI cannot pass by skipping)."""
    path = shutil.which(name)
    if path is None:
        message = f"{name} not installed (apt-get install prometheus)"
        if os.environ.get("CONNECTOR_TEST_REQUIRE_PROMTOOL"):
            pytest.fail(message)
        pytest.skip(message)
    return path


def run_promtool(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [prometheus_tool(), *args],
        input=None if stdin is None else stdin.decode(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=ROOT,
    )


_SUFFIXES = {
    "counter": ("_total", "_created"),
    "histogram": ("_bucket", "_sum", "_count", "_created"),
    "summary": ("", "_sum", "_count", "_created"),
    "info": ("_info",),
}


def exported_names(exposition: str) -> set[str]:
    """Every series name a /metrics text can carry, including families declared without samples yet
    (a labelled counter nothing has incremented still has its HELP and TYPE lines)."""
    from prometheus_client.parser import text_string_to_metric_families

    names = set()
    for family in text_string_to_metric_families(exposition):
        names.update(family.name + suffix for suffix in _SUFFIXES.get(family.type, ("",)))
        names.update(sample.name for sample in family.samples)
    return names
