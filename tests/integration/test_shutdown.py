"""Stopping ``connector run`` while Firestore is frozen (SIGSTOP: every call hangs, as in a network
partition): the final checkpoint and the lease release cannot finish, yet SIGTERM still exits 0 within
Cloud Run's 10 s grace with one warning line, a second signal exits at once, and a worker that dies
says so on /health while it is still trying to shut down."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path

import orjson
import pytest

from adapters import gcp_emulators

from .test_lease_takeover import probe, published, wait_for
from .test_outage import own_firestore
from .test_run_end_to_end import CONNECTOR, Deployment, connector

__all__ = ["own_firestore"]  # the fixture, imported for the tests below

GRACE_S = 30  # the promise is 10 s (the deadline fires at 9 s, its line proves it); make chaos measures it


Running = tuple[Deployment, subprocess.Popen[bytes], int, Path]


@pytest.fixture
def start(
    tmp_path: Path, unique: str, pubsub_emulator: gcp_emulators.Emulator, own_firestore: gcp_emulators.Emulator
) -> Iterator[Callable[..., Running]]:
    """Starts ``connector run`` following a file of ``lines`` and returns once it publishes; its log goes
    to a file."""
    processes: list[subprocess.Popen[bytes]] = []

    def run(lines: list[bytes], extra_config: str = "") -> Running:
        deployment = Deployment(tmp_path, unique, pubsub_emulator, own_firestore)
        deployment.events.write_bytes(b"".join(lines))
        config = deployment.config.read_text().replace("jsonl: {path:", "jsonl: {follow: true, path:")
        deployment.config.write_text(config.replace("level: WARNING", "level: INFO") + extra_config)
        port = gcp_emulators.free_port()
        log = tmp_path / "connector.log"
        with log.open("wb") as output:
            command = [*CONNECTOR, "run", "--config", str(deployment.config)]
            process = subprocess.Popen(command, env={**deployment.env, "PORT": str(port)}, stdout=output, stderr=output)
        processes.append(process)
        wait_for(lambda: published(port) > 0, 60, "the first publishes")
        return deployment, process, port, log

    try:
        yield run
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()


def simulated(deployment_env: dict[str, str], count: int) -> list[bytes]:
    return connector("simulate", "--count", str(count), "--seed", "5", env=deployment_env).stdout.splitlines(
        keepends=True
    )


def events(log: Path, name: str) -> list[dict]:
    """The log lines of one event (a crash's traceback, were there one, is not JSON: skipped here)."""
    found = []
    for line in log.read_text().splitlines():
        try:
            parsed = orjson.loads(line)
        except orjson.JSONDecodeError:
            continue
        if isinstance(parsed, dict) and parsed.get("event") == name:
            found.append(parsed)
    return found


def test_sigterm_with_firestore_frozen_exits_0_in_time_with_one_warning(
    start: Callable[..., Running], own_firestore: gcp_emulators.Emulator
) -> None:
    _, process, _, log = start(simulated(dict(os.environ), 200))
    own_firestore.pause()
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=GRACE_S) == 0
    (warning,) = events(log, "shutdown_deadline_passed")
    assert warning["level"] == "WARNING" and "re-publishes from the last stored checkpoint" in warning["recovery"]
    assert "Traceback" not in log.read_text()


def test_a_second_signal_exits_at_once(start: Callable[..., Running], own_firestore: gcp_emulators.Emulator) -> None:
    _, process, _, log = start(simulated(dict(os.environ), 200))
    own_firestore.pause()
    process.send_signal(signal.SIGTERM)
    wait_for(lambda: bool(events(log, "stop_requested")), 30, "the first signal to be handled")
    process.send_signal(signal.SIGINT)
    assert process.wait(timeout=GRACE_S) == 0
    # gone before the 9 s deadline of the first signal: that path would have logged its line
    assert events(log, "stop_forced") and not events(log, "shutdown_deadline_passed")


def test_health_is_503_once_the_worker_died_while_it_still_shuts_down(
    start: Callable[..., Running], own_firestore: gcp_emulators.Emulator
) -> None:
    (valid,) = simulated(dict(os.environ), 1)
    deployment, process, port, log = start([valid], "schemas: {on_invalid: fail}\n")
    assert probe(port, "/health")[0] == 200
    own_firestore.pause()  # the lease release hangs: the process lingers and its probes still answer
    event = orjson.loads(valid)
    event["_id"]["_data"] += "00"
    event["fullDocument"]["_schema_version"] = "v9"
    with deployment.events.open("ab") as handle:
        handle.write(orjson.dumps(event) + b"\n")
    wait_for(lambda: probe(port, "/health")[0] == 503, 30, "/health 503 while shutting down")
    assert process.wait(timeout=GRACE_S) == 1
    assert "error: document rejected (unknown_schema_version)" in log.read_text()
