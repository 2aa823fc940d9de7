"""``connector check``: a preflight table. Every row says what was checked and, when it fails, the fix.

The checks run side by side, each within its own deadline, so the whole table is there within
~10 s even when every dependency is down (CONTRACT §9: 15 s for ``check``). A short oplog window
is a warning, not a failure: a fresh replica set has hardly any oplog yet, and the compose stack
runs ``check --create-missing`` on exactly that.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import click

from adapters.schema_files import SchemaLoadError
from domain.redaction import redact
from entrypoints.cli import cli, handle_errors, load
from entrypoints.config import ConfigError, ConnectorConfig
from entrypoints.container import build_container, mongo_client
from entrypoints.errors import describe

MIN_OPLOG_HOURS = 24.0


class CheckFailed(Exception):
    """A failed check; the message is the table's detail column."""


class CheckWarning(Exception):
    """A check that passes with a caveat the operator should act on; the message says which."""


def _mongodb(config: ConnectorConfig) -> str:
    from pymongo.errors import PyMongoError

    try:
        client: Any = mongo_client(config.mongodb.uri, server_selection_ms=5000)
    except ConfigError as error:
        raise CheckFailed(str(error)) from None
    try:
        hello = client.admin.command("hello")
        if not hello.get("setName"):
            raise CheckFailed(
                "not a replica set: change streams need one (start mongod with --replSet and rs.initiate())"
            )
        oplog = client["local"]["oplog.rs"]
        first = oplog.find({}, {"ts": 1}).sort("$natural", 1).limit(1).next()["ts"]
        last = oplog.find({}, {"ts": 1}).sort("$natural", -1).limit(1).next()["ts"]
        hours = (last.time - first.time) / 3600
        if hours < MIN_OPLOG_HOURS:
            raise CheckWarning(
                f"replica set {hello['setName']}, but the oplog covers only {hours:.1f} h; a stopped connector must "
                f"restart within that window: raise it (replSetResizeOplog minRetentionHours: {MIN_OPLOG_HOURS:g})"
            )
        return f"replica set {hello['setName']}, oplog window {hours:.1f} h"
    except PyMongoError as error:
        from adapters.mongo_errors import classify

        refused = classify(error, stream_id=config.mongodb.database)
        if refused.usage:  # e.g. a server below the 4.4 floor: no URI fixes that
            raise CheckFailed(f"{refused}; {refused.recovery}") from None
        reason = redact(str(error)).split(", Timeout:")[0][:200]  # the rest is pymongo's topology dump
        raise CheckFailed(
            f"unreachable: {reason}; check mongodb.uri, that the server runs and network access"
        ) from None
    finally:
        client.close()


def _topics(config: ConnectorConfig, create: bool) -> str:
    from adapters.pubsub_admin import ensure_topics, missing_topics

    topics = [s.topic for s in config.streams] + (
        [config.pubsub.dead_letter_topic] if config.pubsub.dead_letter_topic else []
    )
    timeout_s = config.pubsub.admin_timeout_s
    missing = missing_topics(config.pubsub.project_id, topics, timeout_s=timeout_s)
    if missing and create:
        ensure_topics(config.pubsub.project_id, missing, timeout_s=timeout_s)
        return f"created {', '.join(missing)}"
    if missing:
        raise CheckFailed(f"missing topics {', '.join(missing)}; run connector check --create-missing")
    return f"{len(topics)} topic(s) exist in {config.pubsub.project_id}"


def _firestore(config: ConnectorConfig) -> str:
    store = build_container(config).token_store()
    checkpoint = store.load(config.mongodb.database)
    if checkpoint is None:
        return f"reachable; no checkpoint yet for stream {config.mongodb.database} (starts at mongodb.start_at)"
    return f"reachable; stream {config.mongodb.database} has a checkpoint"


def _schemas(config: ConnectorConfig) -> str:
    try:
        registry = build_container(config).registry()
    except (SchemaLoadError, ConfigError) as error:
        raise CheckFailed(str(error)) from None
    return ", ".join(f"{t} {'/'.join(registry.versions(t))}" for t in registry.types())


@cli.command("check")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), help="YAML config (else $CONNECTOR_CONFIG).")
@click.option("--create-missing", is_flag=True, help="Create the Pub/Sub topics that do not exist.")
@handle_errors
def check_command(config_path: str | None, create_missing: bool) -> None:
    """Preflight: config, MongoDB (a replica set with enough oplog), topics, Firestore, schemas.

    Exit 0 unless a check fails (WARN rows pass: e.g. an oplog window under 24 h).

    \b
    Example:
      connector check --config config.yaml --create-missing
    """
    try:
        config = load(config_path)
    except ConfigError as error:
        click.echo(f"{'config':<10} FAIL  {error}")
        sys.exit(2)
    checks: list[tuple[str, Callable[[], str]]] = [
        ("config", lambda: f"source {config.source}, {len(config.streams)} stream(s)")
    ]
    if config.source == "mongodb":
        checks.append(("mongodb", lambda: _mongodb(config)))
    if config.pubsub.backend == "pubsub":
        checks.append(("topics", lambda: _topics(config, create_missing)))
    if config.token_store.backend == "firestore":
        checks.append(("firestore", lambda: _firestore(config)))
    checks.append(("schemas", lambda: _schemas(config)))
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        rows = list(pool.map(_row, checks))
    for name, status, detail in rows:
        click.echo(f"{name:<10} {status:<5} {detail}")
    if any(status == "FAIL" for _, status, _ in rows):
        sys.exit(1)


def _row(check: tuple[str, Callable[[], str]]) -> tuple[str, str, str]:
    name, run = check
    try:
        return name, "ok", run()
    except CheckWarning as warning:
        return name, "WARN", str(warning)
    except CheckFailed as error:
        return name, "FAIL", str(error)
    except Exception as error:  # any dependency's own error (they name their server and fix), in one line
        return name, "FAIL", describe(error)[1]
