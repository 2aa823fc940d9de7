"""Every CLI command as a user runs it (subprocesses), without external services."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CONNECTOR = [sys.executable, "-m", "entrypoints.launch"]
MEMORY = {"CONNECTOR_TOKEN_STORE__BACKEND": "memory", "CONNECTOR_PUBSUB__BACKEND": "memory"}


def connector(
    *args: str, env: dict[str, str] | None = None, stdin: bytes | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    import os

    return subprocess.run(
        [*CONNECTOR, *args],
        env={**os.environ, **(env or {})},
        cwd=cwd,
        input=None if stdin is None else stdin.decode(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


COMMANDS = [
    ["admin"],
    ["admin", "tokens"],
    ["admin", "schemas"],
    ["backfill"],
    ["run"],
    ["replay"],
    ["simulate"],
    ["check"],
    ["admin", "tokens", "list"],
    ["admin", "tokens", "get"],
    ["admin", "tokens", "set"],
    ["admin", "tokens", "reset"],
    ["admin", "schemas", "list"],
    ["admin", "schemas", "show"],
    ["admin", "schemas", "validate"],
    ["admin", "schemas", "migrate"],
    ["admin", "schemas", "path"],
]


@pytest.mark.parametrize("command", COMMANDS, ids=" ".join)
def test_help_shows_an_example(command: list[str]) -> None:
    result = connector(*command, "--help")
    assert result.returncode == 0
    assert "Example" in result.stdout and "connector " + command[0] in result.stdout


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [
        (0, "0s"),
        (59.6, "59s"),
        (725, "12m 5s"),
        (85_260, "23h 41m"),
        (273_600, "3d 4h"),
        (85_274_552, "986d"),
        (-3, "0s"),
    ],
)
def test_tokens_list_shows_ages_for_humans(seconds: float, shown: str) -> None:
    from entrypoints.commands.admin import human_age

    assert human_age(seconds) == shown


def test_schemas_list_show_path() -> None:
    assert "inventory: v1, v2  (migrations: v1->v2)" in connector("admin", "schemas", "list").stdout
    shown = json.loads(connector("admin", "schemas", "show", "inventory", "v1").stdout)
    assert shown["title"] == "Inventory level v1"
    assert connector("admin", "schemas", "path", "inventory", "v1", "v2").stdout.strip() == "v1 -> v2"
    missing = connector("admin", "schemas", "path", "inventory", "v2", "v1")
    assert missing.returncode == 1 and "no registered migration path" in missing.stderr


def test_schemas_validate_reports_every_error_and_exits_1(tmp_path: Path) -> None:
    good = {
        "_schema_version": "v1",
        "product_id": "p",
        "warehouse_id": "w",
        "quantity": 1,
        "last_updated": "2024-03-20T10:00:00Z",
    }
    bad = {**good, "quantity": -1, "last_updated": "yesterday"}
    file = tmp_path / "docs.jsonl"
    file.write_text(json.dumps(good) + "\n" + json.dumps(bad) + "\n")
    result = connector("admin", "schemas", "validate", "inventory", str(file))
    assert result.returncode == 1
    assert "#2 (v1) /last_updated: 'yesterday' is not a 'date-time'" in result.stdout
    assert "#2 (v1) /quantity: -1 is less than the minimum of 0" in result.stdout
    assert "1 valid, 1 invalid" in result.stderr
    single = tmp_path / "one.json"
    single.write_text(json.dumps(good, indent=2))  # one pretty-printed document
    assert connector("admin", "schemas", "validate", "inventory", str(single)).returncode == 0


def test_schemas_validate_reads_documents_as_replay_does(tmp_path: Path) -> None:
    unversioned = {"product_id": "p", "warehouse_id": "w", "quantity": 1, "last_updated": "2024-03-20T10:00:00Z"}
    file = tmp_path / "u.json"
    file.write_text(json.dumps(unversioned))
    validated = connector("admin", "schemas", "validate", "inventory", str(file))
    assert validated.returncode == 0, validated.stdout
    assert "1 valid, 0 invalid" in validated.stderr
    events = tmp_path / "e.jsonl"
    event = {"_id": {"_data": "82AA"}, "operationType": "insert", "ns": {"db": "warehouse", "coll": "inventory"},
             "documentKey": {"_id": 1}, "fullDocument": {"_id": 1, **unversioned}}  # fmt: skip
    events.write_text(json.dumps(event) + "\n")
    replayed = connector("replay", str(events))
    assert replayed.returncode == 0 and json.loads(replayed.stdout)["data"]["schema"]["source_version"] == "v1"


def test_schemas_validate_says_how_an_undetected_document_fails_each_version(tmp_path: Path) -> None:
    file = tmp_path / "p.json"
    file.write_text('{"product_id": 5}')
    result = connector("admin", "schemas", "validate", "inventory", str(file))
    assert result.returncode == 1
    assert "#1: no inventory version matches (schema_undetected)" in result.stdout
    assert "#1 (v2) /product_id: 5 is not of type 'string'" in result.stdout
    assert "#1 (v1) /product_id: 5 is not of type 'string'" in result.stdout
    assert "#1 (v2) (root): 'reserved_quantity' is a required property" in result.stdout


def test_schemas_migrate_extended_json(tmp_path: Path) -> None:
    file = tmp_path / "old.json"
    file.write_text(
        '{"_id": {"$oid": "65fab39ee1d2c3b4a5968701"}, "_schema_version": "v1", "quantity": {"$numberLong": "4"},'
        ' "product_id": "P", "warehouse_id": "W", "last_updated": {"$date": {"$numberLong": "1710928806855"}}}\n'
        '{"_schema_version": "v1", "quantity": -1}\n'
    )
    result = connector("admin", "schemas", "migrate", "inventory", str(file), "--to", "v2")
    assert result.returncode == 1  # the second document cannot be migrated: it is invalid
    assert json.loads(result.stdout) == {
        "_id": "65fab39ee1d2c3b4a5968701",
        "_schema_version": "v2",
        "quantity": 4,
        "product_id": "P",
        "warehouse_id": "W",
        "last_updated": "2024-03-20T10:00:06.855Z",
        "reserved_quantity": 0,
    }
    assert "#2: validation_failed: invalid inventory v1" in result.stderr and "/quantity" in result.stderr


def test_dot_env_in_the_working_directory_is_read_and_the_environment_wins(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# as cp .env.example .env leaves it, edited\n"
        "CONNECTOR_SOURCE=jsonl\nCONNECTOR_PUBSUB__BACKEND=memory\nCONNECTOR_TOKEN_STORE__BACKEND=memory\n"
        "CONNECTOR_STREAMS__0__COLLECTION=orders\nCONNECTOR_STREAMS__0__TOPIC=order-changes\n"
    )
    from_file = connector("check", cwd=tmp_path)
    assert from_file.returncode == 0, from_file.stdout + from_file.stderr
    assert "config     ok    source jsonl, 1 stream(s)" in from_file.stdout
    overridden = connector("check", cwd=tmp_path, env={"CONNECTOR_SOURCE": "simulated"})
    assert "config     ok    source simulated, 1 stream(s)" in overridden.stdout


def test_tokens_reset_needs_yes_and_unknown_stream_fails() -> None:
    refused = connector("admin", "tokens", "reset", "warehouse", env=MEMORY)
    assert refused.returncode == 2 and "--yes" in refused.stderr
    missing = connector("admin", "tokens", "get", "warehouse", env=MEMORY)
    assert missing.returncode == 1 and "no checkpoint stored" in missing.stderr
    both = connector("admin", "tokens", "set", "warehouse", env=MEMORY)
    assert both.returncode == 2 and "exactly one of --token or --at" in both.stderr
    bad_time = connector("admin", "tokens", "set", "warehouse", "--at", "yesterday", env=MEMORY)
    assert bad_time.returncode == 2 and "RFC 3339" in bad_time.stderr


def test_check_fails_without_mongodb_and_never_prints_the_password() -> None:
    env = {
        **MEMORY,
        "CONNECTOR_MONGODB__URI": "mongodb://admin:s3cret@127.0.0.1:1/?replicaSet=rs0&serverSelectionTimeoutMS=200",
    }
    result = connector("check", env=env)
    assert result.returncode == 1
    assert "mongodb    FAIL" in result.stdout and "schemas    ok" in result.stdout
    assert "s3cret" not in result.stdout + result.stderr


def test_bad_config_is_exit_2_with_the_key_for_every_command(tmp_path: Path) -> None:
    config = tmp_path / "c.yaml"
    config.write_text("pubsub: {ordering_buckets: many}\n")
    for command in (["run"], ["admin", "tokens", "list"], ["admin", "schemas", "list"]):
        result = connector(*command, "--config", str(config))
        assert result.returncode == 2, command
        assert "pubsub.ordering_buckets: expected an integer" in result.stderr
        assert "Traceback" not in result.stderr
    verbose = connector("--verbose", "run", "--config", str(config))
    assert "Traceback" in verbose.stderr


def test_run_logs_are_json_lines_with_the_required_fields(tmp_path: Path) -> None:
    events = tmp_path / "e.jsonl"
    events.write_text(connector("simulate", "--count", "300").stdout)
    env = {**MEMORY, "CONNECTOR_SOURCE": "jsonl", "CONNECTOR_JSONL__PATH": str(events), "PORT": "0"}
    result = connector("run", env=env)
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert lines, "no log lines"
    for line in lines:
        assert {"timestamp", "level", "severity", "event", "correlation_id"} <= set(line)
        assert line["level"] == line["severity"] in {"DEBUG", "INFO", "WARNING", "ERROR"}
        assert line["timestamp"].endswith("Z")
    rejected = [line for line in lines if line["event"] == "document_rejected"]
    assert rejected and all(line["reason"] and line["errors"] and line["document_id"] for line in rejected)
    assert {"connector_started", "pipeline_stopped", "connector_stopped"} <= {line["event"] for line in lines}


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"CONNECTOR_MONGODB__START_AT": "yesterday"},
            "mongodb.start_at: 'yesterday' is not resume, now or an RFC 3339",
        ),
        ({"CONNECTOR_STREAMS": "[{collection: c, topic: t, document_type: order}]"}, "names document_type 'order'"),
        ({"CONNECTOR_SCHEMAS__DIRECTORY": "/nonexistent/schemas"}, "does not exist; fix schemas.directory"),
    ],
)
def test_values_checked_when_wiring_still_exit_2(env: dict[str, str], message: str) -> None:
    result = connector("run", env={**MEMORY, "CONNECTOR_SOURCE": "simulated", "PORT": "0", **env})
    assert result.returncode == 2, result.stderr
    assert message in result.stderr and "Traceback" not in result.stderr
