"""``connector replay`` as a user runs it: a real subprocess, real files, exit codes and messages."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
from bson import json_util

from tests.builders import change, inventory_doc
from tests.corpus import corpus_file

CONNECTOR = [sys.executable, "-m", "entrypoints.launch"]


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*CONNECTOR, *args], input=stdin, capture_output=True, timeout=120, check=False)


def write_events(path: Path, *events: dict) -> Path:
    path.write_text("".join(json_util.dumps(e, json_options=json_util.CANONICAL_JSON_OPTIONS) + "\n" for e in events))
    return path


def test_replay_writes_one_line_per_message(tmp_path: Path) -> None:
    events = write_events(
        tmp_path / "in.jsonl",
        change("insert", document=inventory_doc()),
        change("insert", document=inventory_doc(quantity=-1)),
        change("endOfTransaction", coll=None),
    )
    result = run("replay", str(events), "--output", str(tmp_path / "out.jsonl"))
    assert result.returncode == 0, result.stderr
    lines = [orjson.loads(line) for line in (tmp_path / "out.jsonl").read_bytes().splitlines()]
    assert len(lines) == 1
    assert set(lines[0]) == {"topic", "ordering_key", "attributes", "data"}
    assert lines[0]["topic"] == "inventory-changes"
    assert lines[0]["data"]["schema"]["version"] == "v2"
    logs = [orjson.loads(line) for line in result.stderr.splitlines() if line.startswith(b"{")]
    rejected = [entry for entry in logs if entry["event"] == "document_rejected"]
    assert len(rejected) == 1 and rejected[0]["reason"] == "validation_failed"
    assert rejected[0]["level"] == "WARNING" and rejected[0]["correlation_id"]
    assert b"replayed 3 events: 1 published" in result.stderr


def test_replay_from_stdin_to_stdout(tmp_path: Path) -> None:
    events = write_events(tmp_path / "in.jsonl", change("insert", document=inventory_doc()))
    result = run("replay", "-", stdin=events.read_bytes())
    assert result.returncode == 0, result.stderr
    assert orjson.loads(result.stdout.splitlines()[0])["attributes"]["operation"] == "insert"


def test_malformed_line_fails_with_line_number_and_writes_nothing(tmp_path: Path) -> None:
    events = tmp_path / "in.jsonl"
    good = json_util.dumps(change("insert", document=inventory_doc()))
    events.write_text(f"{good}\n{{not json\n")
    output = tmp_path / "out.jsonl"
    result = run("replay", str(events), "--output", str(output))
    assert result.returncode == 1
    assert b"in.jsonl:2: not valid JSON" in result.stderr
    assert b"Traceback" not in result.stderr
    assert not output.exists()


def test_event_without_id_is_named(tmp_path: Path) -> None:
    raw = change("insert", document=inventory_doc())
    del raw["_id"]
    result = run("replay", str(write_events(tmp_path / "in.jsonl", raw)))
    assert result.returncode == 1
    assert b"in.jsonl:1: event has no _id" in result.stderr


def test_bad_config_exits_2_with_key_path(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("pubsub: {ordering: sideways}\n")
    events = write_events(tmp_path / "in.jsonl", change("insert", document=inventory_doc()))
    result = run("replay", str(events), "--config", str(config))
    assert result.returncode == 2
    assert b"pubsub.ordering: expected one of" in result.stderr


def test_on_invalid_fail_stops_with_exit_1(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("schemas: {on_invalid: fail}\n")
    events = write_events(tmp_path / "in.jsonl", change("insert", document=inventory_doc(quantity=-1)))
    result = run("replay", str(events), "--config", str(config), "--output", str(tmp_path / "o.jsonl"))
    assert result.returncode == 1
    assert b"validation_failed" in result.stderr and not (tmp_path / "o.jsonl").exists()


def test_replay_of_the_shared_domain_corpus(tmp_path: Path) -> None:
    source = corpus_file("domain_events.jsonl")
    result = run("replay", str(source), "--output", str(tmp_path / "out.jsonl"))
    assert result.returncode == 0, result.stderr
    lines = (tmp_path / "out.jsonl").read_bytes().splitlines()
    assert len(lines) == 41  # 34 publish + 7 no_document
    assert b"19 rejected" in result.stderr


def test_each_migration_is_logged_at_debug_and_only_then(tmp_path: Path) -> None:
    """CONTRACT §7: every migration applied logs event=document_migrated with both versions at DEBUG."""
    events = write_events(
        tmp_path / "in.jsonl",
        change("insert", document=inventory_doc()),
        change("insert", document=inventory_doc(_schema_version="v2", reserved_quantity=0)),
        change("update", document=inventory_doc()),
    )
    for level, expected in (("DEBUG", 2), ("INFO", 0)):
        config = tmp_path / f"{level}.yaml"
        config.write_text(f"logging: {{level: {level}}}\n")
        result = run("replay", str(events), "--config", str(config), "--output", str(tmp_path / "o.jsonl"))
        assert result.returncode == 0, result.stderr
        logs = [orjson.loads(line) for line in result.stderr.splitlines() if line.startswith(b"{")]
        migrated = [entry for entry in logs if entry["event"] == "document_migrated"]
        assert len(migrated) == expected
        assert all(e["from_version"] == "v1" and e["to_version"] == "v2" and e["level"] == "DEBUG" for e in migrated)
