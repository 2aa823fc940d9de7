"""The fresh-start loss of ``streams[].partitions``, on the emulators: the first instance starts alone and
its base unit reads (and checkpoints) past the split collection's events, which it filters out; more
instances join while events keep being appended to the followed file. Every event arrives anyway,
because a split unit that never checkpointed starts where the partition plan took effect."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import orjson
import pytest

from adapters import gcp_emulators
from adapters.simulator import WorkloadSpec, generate_events

from .test_lease_takeover import append, probe, wait_for
from .test_partitions_on_emulators import all_checkpointed, all_delivered, assert_in_document_order, partitioned
from .test_run_end_to_end import CONNECTOR, Deployment, connector

INSTANCES = 4  # enough for the 4 units even where one process serves one unit


@pytest.fixture
def deployment(
    tmp_path: Path, unique: str, pubsub_emulator: gcp_emulators.Emulator, firestore_emulator: gcp_emulators.Emulator
) -> Deployment:
    return partitioned(tmp_path, unique, pubsub_emulator, firestore_emulator, partitions=3)


def _start(deployment: Deployment, tmp_path: Path, port: int) -> subprocess.Popen[bytes]:
    log = (tmp_path / f"instance-{port}.log").open("wb")  # a file: an unread pipe would block the process
    env = {**deployment.env, "PORT": str(port)}
    return subprocess.Popen([*CONNECTOR, "run", "--config", str(deployment.config)], env=env, stdout=log,
                            stderr=subprocess.STDOUT)  # fmt: skip


def test_a_fresh_start_with_three_partitions_loses_nothing(
    deployment: Deployment, firestore_emulator: gcp_emulators.Emulator, tmp_path: Path
) -> None:
    events = list(generate_events(WorkloadSpec(seed=21, count=3000, documents=150)))
    batches = [events[:1000], events[1000:2000], events[2000:]]
    replay_file = tmp_path / "all.jsonl"
    append(replay_file, events)
    replayed = connector("replay", str(replay_file), "--config", str(deployment.config), env=deployment.env)
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    expected = {m["attributes"]["event_id"]: m for m in map(orjson.loads, replayed.stdout.splitlines())}

    store = deployment.store(firestore_emulator)
    ports = [gcp_emulators.free_port() for _ in range(INSTANCES)]
    processes: list[subprocess.Popen[bytes]] = []
    try:
        append(deployment.events, batches[0])
        processes.append(_start(deployment, tmp_path, ports[0]))
        base_last = [e for e in batches[0] if e["ns"]["coll"] == "transactions"][-1]["_id"]["_data"]
        wait_for(  # the first instance's base unit has read past most of the first batch
            lambda: (c := store.load("warehouse")) is not None and c.token is not None and c.token.data >= base_last,
            90,
            "the base unit to checkpoint past the first batch",
        )
        processes += [_start(deployment, tmp_path, port) for port in ports[1:]]
        append(deployment.events, batches[1])
        for port in ports:
            wait_for(lambda port=port: probe(port, "/readiness")[0] == 200, 90, f"instance on {port} to serve")
        append(deployment.events, batches[2])
        wait_for(lambda: all_checkpointed(store, events), 120, "every unit to checkpoint its last event")
        for process in processes:
            process.send_signal(signal.SIGTERM)
        assert [process.wait(timeout=20) for process in processes] == [0] * INSTANCES
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait()

    assert_in_document_order(all_delivered(deployment, expected))
