"""The per-event log line (README "Operations"): at DEBUG, or at INFO with ``logging.events: info``,
each event sent to the publisher logs what an operator searches by. ``connector run`` on a simulated file, no
external services."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.unit.test_cli_commands import MEMORY, connector

COUNT = 60


@pytest.fixture(scope="module")
def events(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("events") / "events.jsonl"
    path.write_text(connector("simulate", "--count", str(COUNT), "--seed", "3").stdout)
    return path


def event_lines(file: Path, **logging: str) -> list[dict]:
    env = {**MEMORY, "CONNECTOR_SOURCE": "jsonl", "CONNECTOR_JSONL__PATH": str(file), "PORT": "0"}
    env.update({f"CONNECTOR_LOGGING__{key.upper()}": value for key, value in logging.items()})
    result = connector("run", env=env)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    return [line for line in lines if line["event"] == "event_processed"]


def test_info_with_events_info_logs_each_event_with_its_context(events: Path) -> None:
    lines = event_lines(events, level="INFO", events="info")
    assert 0 < len(lines) <= COUNT and {line["level"] for line in lines} == {"INFO"}
    for line in lines:
        assert line["collection"] in ("inventory", "transactions")
        assert line["operation"] and line["document_id"] and line["correlation_id"]
        assert line["schema_version"] in ("v1", "v2") or line["operation"] == "delete"
    with_document = [line for line in lines if line["operation"] != "delete"]
    assert with_document and all(line["warehouse_id"].startswith("WH-") for line in with_document)


def test_the_line_is_debug_by_default(events: Path) -> None:
    assert event_lines(events, level="INFO") == []
    lines = event_lines(events, level="DEBUG")
    assert lines and {line["level"] for line in lines} == {"DEBUG"}
