"""``connector run`` on MongoDB failures, as an operator sees them: one line, the right exit code, no
password, and prompt stops. The server is a scripted primary on the wire (or no server at all); Pub/Sub
and the token store are the in-memory backends, so no emulator is needed. Generous subprocess
timeouts bound each case; no test measures a duration."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import orjson

from adapters import gcp_emulators
from tests.mongo_wire import ScriptedPrimary

from .test_lease_takeover import probe
from .test_run_end_to_end import CONNECTOR

LIMIT_S = 60  # per process: far above what each case needs on a loaded machine


def config(tmp_path: Path, uri: str) -> Path:
    path = tmp_path / "config.yaml"
    path.write_text(
        f"source: mongodb\nmongodb: {{uri: '{uri}', database: warehouse}}\n"
        "streams: [{collection: inventory, topic: inventory-changes}]\n"
        "pubsub: {backend: memory}\ntoken_store: {backend: memory}\n"
    )
    return path


def run(tmp_path: Path, uri: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CONNECTOR, "run", "--config", str(config(tmp_path, uri))], capture_output=True, text=True,
                          timeout=LIMIT_S, env={**os.environ, "PORT": "0"}, check=False)  # fmt: skip


def test_an_old_server_is_one_line_and_exit_2(tmp_path: Path) -> None:
    server = ScriptedPrimary(wire_version=8)
    try:
        result = run(tmp_path, f"{server.server.uri}/?directConnection=true")
    finally:
        server.stop()
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: change stream failed: MongoDB 4.2 (wire version 8) is older than the supported floor, MongoDB 4.4; "
        "upgrade the server to MongoDB 4.4 or later (README: Requirements)"
    ]


def test_an_authentication_failure_never_shows_the_password(tmp_path: Path) -> None:
    server = ScriptedPrimary(wire_version=21)
    server.always("saslStart", ok=0, code=18, codeName="AuthenticationFailed", errmsg="Authentication failed.")
    try:
        uri = f"mongodb://connector:hunter2-secret@{server.server.address_string}/?directConnection=true"
        result = run(tmp_path, uri)
    finally:
        server.stop()
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert "authentication failed (code 18)" in line and "credentials" in line
    assert "hunter2-secret" not in result.stdout + result.stderr


class Running:
    """A ``connector run`` whose JSON log lines the test awaits one event at a time."""

    def __init__(self, tmp_path: Path, uri: str) -> None:
        self.port = gcp_emulators.free_port()
        self.process = subprocess.Popen([*CONNECTOR, "run", "--config", str(config(tmp_path, uri))],
                                        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                        env={**os.environ, "PORT": str(self.port)})  # fmt: skip
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self.seen: list[dict[str, Any]] = []
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            if line.startswith("{"):
                self.lines.put(orjson.loads(line))

    def await_event(self, event: str) -> dict[str, Any]:
        while True:
            entry = self.lines.get(timeout=LIMIT_S)
            self.seen.append(entry)
            if entry.get("event") == event:
                return entry

    def stop(self, *signals: signal.Signals) -> int:
        for sent in signals:
            self.process.send_signal(sent)
        code = self.process.wait(timeout=LIMIT_S)
        while not self.lines.empty():
            self.seen.append(self.lines.get())
        return code


def test_mongodb_down_warns_fails_readiness_and_stops_on_sigterm(tmp_path: Path) -> None:
    nothing_listens = f"mongodb://127.0.0.1:{gcp_emulators.free_port()}/?directConnection=true"
    connector = Running(tmp_path, nothing_listens)
    try:
        warning = connector.await_event("source_retry")
        assert warning["level"] == "WARNING" and "MongoDB unreachable" in warning["error"]
        status, body = probe(connector.port, "/readiness")
        assert status == 503 and "source" in body["problems"]
        assert connector.stop(signal.SIGTERM) == 0
        assert "pipeline_stopped" in [entry.get("event") for entry in connector.seen]
    finally:
        connector.process.kill()


def test_a_second_signal_exits_at_once_while_mongodb_does_not_answer(tmp_path: Path) -> None:
    server = ScriptedPrimary(wire_version=21)
    server.always("find", ok=0, code=13, codeName="Unauthorized", errmsg="not authorized on local")  # the oplog
    connector = Running(tmp_path, f"{server.server.uri}/?directConnection=true")
    try:
        connector.await_event("oplog_gauges_unavailable")  # said once; streaming goes on
        server.aggregate()  # never answered: the worker is blocked reading the reply
        connector.process.send_signal(signal.SIGTERM)
        connector.await_event("stop_requested")
        assert connector.stop(signal.SIGINT) == 0
        events = [entry.get("event") for entry in connector.seen]
        assert "stop_forced" in events and "pipeline_stopped" not in events
    finally:
        connector.process.kill()
        server.stop()


def test_check_names_the_floor_for_an_old_server_not_the_uri(tmp_path: Path) -> None:
    server = ScriptedPrimary(wire_version=7)
    try:
        path = config(tmp_path, f"{server.server.uri}/?directConnection=true")
        result = subprocess.run([*CONNECTOR, "check", "--config", str(path)],
                                capture_output=True, text=True, timeout=LIMIT_S, check=False)  # fmt: skip
    finally:
        server.stop()
    [line] = [line for line in result.stdout.splitlines() if line.startswith("mongodb")]
    assert "FAIL" in line and "MongoDB 4.0 (wire version 7) is older than the supported floor, MongoDB 4.4" in line
    assert "mongodb.uri" not in line
