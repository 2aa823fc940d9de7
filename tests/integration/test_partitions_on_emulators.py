"""``streams[].partitions`` with real processes on the emulators: three identical ``connector run``
instances share the base unit and two inventory partitions by lease, together publish every event
exactly once with per-document order, and each unit keeps its own checkpoint in Firestore."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapters import gcp_emulators
from adapters.simulator import WorkloadSpec, generate_events

from .test_lease_takeover import append, probe, published, wait_for
from .test_run_end_to_end import CONNECTOR, Deployment, connector, pull_all

UNITS = ["warehouse", "warehouse.inventory.p0of2", "warehouse.inventory.p1of2"]


@pytest.fixture
def deployment(
    tmp_path: Path, unique: str, pubsub_emulator: gcp_emulators.Emulator, firestore_emulator: gcp_emulators.Emulator
) -> Deployment:
    d = Deployment(tmp_path, unique, pubsub_emulator, firestore_emulator)
    text = d.config.read_text().replace("jsonl: {path:", "jsonl: {follow: true, path:")
    text = text.replace("document_type: inventory,", "document_type: inventory, partitions: 2,")
    assert "partitions: 2" in text
    d.config.write_text(text)
    return d


def test_three_instances_split_the_stream_and_publish_everything_once(
    deployment: Deployment, firestore_emulator: gcp_emulators.Emulator, tmp_path: Path
) -> None:
    events = list(generate_events(WorkloadSpec(seed=8, count=3000, documents=120)))
    append(deployment.events, events)
    replayed = connector("replay", str(deployment.events), "--config", str(deployment.config), env=deployment.env)
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    expected: dict[str, dict[str, Any]] = {}
    for line in replayed.stdout.splitlines():
        message = orjson.loads(line)
        expected[message["attributes"]["event_id"]] = message

    ports = [gcp_emulators.free_port() for _ in UNITS]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        for port in ports:  # output to a file: an unread pipe would fill up and block the process
            log = (tmp_path / f"instance-{port}.log").open("wb")
            env = {**deployment.env, "PORT": str(port)}
            processes.append(subprocess.Popen([*CONNECTOR, "run", "--config", str(deployment.config)], env=env,
                                              stdout=log, stderr=subprocess.STDOUT))  # fmt: skip
        for port in ports:
            wait_for(lambda port=port: probe(port, "/readiness")[0] == 200, 60, f"instance on {port} to hold a unit")
        wait_for(lambda: sum(published(p) for p in ports) >= len(expected), 120, "every event to be published")
        counts = sorted(published(p) for p in ports)
        assert all(count > 0 for count in counts), f"an instance published nothing: {counts}"
        for process in processes:
            process.send_signal(signal.SIGTERM)
        assert [process.wait(timeout=15) for process in processes] == [0, 0, 0]
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    store = deployment.store(firestore_emulator)
    stored = dict(store.list())
    assert sorted(stored) == UNITS  # one position per unit, none shared

    received: list[Any] = []
    for name, subscription in deployment.subscriptions.items():
        want = sum(1 for m in expected.values() if m["topic"] == deployment.topics[name])
        received += pull_all(subscription, want)
    ids = [m.attributes["event_id"] for m in received]
    assert sorted(ids) == sorted(expected), "lost or duplicated events"
    last_seq: dict[str, int] = {}
    for message in received:
        data = orjson.loads(message.data)
        assert data == expected[message.attributes["event_id"]]["data"]
        if data["document"] is not None:
            key = orjson.dumps(data["document_key"]).decode()
            assert data["document"]["seq_no"] > last_seq.get(key, 0), f"order broken for {key}"
            last_seq[key] = data["document"]["seq_no"]
