"""``connector check`` against a MongoDB speaking the real wire protocol (mockupdb): the oplog window
row warns below 24 h and passes the check, because the compose stack runs ``check --create-missing``
on a fresh replica set whose oplog is minutes old."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from bson import Timestamp
from mockupdb import MockupDB, OpMsg

CONNECTOR = [sys.executable, "-m", "entrypoints.launch"]
MEMORY = {"CONNECTOR_TOKEN_STORE__BACKEND": "memory", "CONNECTOR_PUBSUB__BACKEND": "memory"}
NOW = 1_735_689_600


def _replica_set(oplog_hours: float, set_name: str | None = "rs0") -> MockupDB:
    hello: dict[str, Any] = {"ismaster": True, "isWritablePrimary": True, "minWireVersion": 0, "maxWireVersion": 21}
    if set_name:
        hello["setName"] = set_name
    server = MockupDB(auto_ismaster=hello)
    server.autoresponds("hello", hello)
    server.autoresponds("endSessions")

    def oplog(request: OpMsg) -> bool:
        if request.command_name != "find" or request.doc.get("find") != "oplog.rs":
            return False
        newest_first = request.doc.get("sort", {}).get("$natural") == -1
        seconds = NOW if newest_first else NOW - int(oplog_hours * 3600)
        batch = [{"ts": Timestamp(seconds, 1)}]
        return bool(request.replies(cursor={"id": 0, "ns": "local.oplog.rs", "firstBatch": batch}))

    server.autoresponds(oplog)
    server.run()
    return server


@pytest.fixture
def mongo() -> Iterator[list[MockupDB]]:
    servers: list[MockupDB] = []
    yield servers
    for server in servers:
        server.stop()


def check(server: MockupDB) -> subprocess.CompletedProcess[str]:
    uri = f"mongodb://{server.address_string}/?directConnection=true"
    env = {**os.environ, **MEMORY, "CONNECTOR_MONGODB__URI": uri}
    return subprocess.run([*CONNECTOR, "check"], env=env, capture_output=True, text=True, timeout=120, check=False)


def test_short_oplog_window_warns_and_passes(mongo: list[MockupDB]) -> None:
    mongo.append(_replica_set(oplog_hours=0.5))
    result = check(mongo[0])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mongodb    WARN  replica set rs0, but the oplog covers only 0.5 h" in result.stdout
    assert "minRetentionHours: 24" in result.stdout


def test_a_full_day_of_oplog_is_ok(mongo: list[MockupDB]) -> None:
    mongo.append(_replica_set(oplog_hours=30))
    result = check(mongo[0])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "mongodb    ok    replica set rs0, oplog window 30.0 h" in result.stdout


def test_a_standalone_server_still_fails(mongo: list[MockupDB]) -> None:
    mongo.append(_replica_set(oplog_hours=30, set_name=None))
    result = check(mongo[0])
    assert result.returncode == 1
    assert "mongodb    FAIL  not a replica set" in result.stdout
