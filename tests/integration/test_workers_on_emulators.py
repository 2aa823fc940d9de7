"""``connector run --workers 2`` on the emulators: two worker processes share the 3 units of
``partitions: 2``; the supervisor's /metrics carries both workers' series, a SIGKILLed worker is
restarted, SIGTERM drains both and exits 0, and every event is published."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import orjson
import pytest

from adapters import gcp_emulators
from adapters.simulator import WorkloadSpec, generate_events

from .test_lease_takeover import append, probe, wait_for
from .test_partitions_on_emulators import all_checkpointed, all_delivered, partitioned
from .test_run_end_to_end import CONNECTOR, Deployment, connector


@pytest.fixture
def deployment(
    tmp_path: Path, unique: str, pubsub_emulator: gcp_emulators.Emulator, firestore_emulator: gcp_emulators.Emulator
) -> Deployment:
    return partitioned(tmp_path, unique, pubsub_emulator, firestore_emulator, partitions=2)


def units_by_worker(port: int) -> dict[str, int]:
    status, text = probe(port, "/metrics")
    held: dict[str, int] = {}
    for line in (text or "").splitlines() if status == 200 else []:
        if line.startswith("connector_lease_owned{") and line.endswith(" 1.0"):
            worker = line.split('worker="', 1)[1].split('"', 1)[0]
            held[worker] = held.get(worker, 0) + 1
    return held


def test_two_workers_share_the_units_and_a_dead_one_is_restarted(
    deployment: Deployment, firestore_emulator: gcp_emulators.Emulator, tmp_path: Path
) -> None:
    events = list(generate_events(WorkloadSpec(seed=4, count=2000, documents=100)))
    append(deployment.events, events[:1000])
    replay_file = tmp_path / "all.jsonl"
    append(replay_file, events)
    replayed = connector("replay", str(replay_file), "--config", str(deployment.config), env=deployment.env)
    expected = {m["attributes"]["event_id"]: m for m in map(orjson.loads, replayed.stdout.splitlines())}
    port = gcp_emulators.free_port()
    log = (tmp_path / "supervisor.log").open("wb")
    supervisor = subprocess.Popen([*CONNECTOR, "run", "--workers", "2", "--config", str(deployment.config)],
                                  env={**deployment.env, "PORT": str(port)}, stdout=log,
                                  stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_for(lambda: sorted(units_by_worker(port).values()) == [1, 2], 120, "2 workers to share 3 units")
        wait_for(lambda: probe(port, "/readiness")[0] == 200, 60, "the supervisor's readiness")
        workers = probe(port, "/health")[1]["workers"]
        victim = workers[0]["pid"]
        subprocess.run(["kill", "-KILL", str(victim)], check=True)
        wait_for(lambda: probe(port, "/health")[1]["workers"][0]["restarts"] == 1, 60, "the worker's restart")
        assert probe(port, "/health")[1]["workers"][0]["pid"] != victim
        append(deployment.events, events[1000:])
        wait_for(lambda: sum(units_by_worker(port).values()) == 3, 120, "every unit served again")
        store = deployment.store(firestore_emulator)
        wait_for(lambda: all_checkpointed(store, events, partitions=2), 120, "every unit to checkpoint its end")
        supervisor.send_signal(signal.SIGTERM)
        assert supervisor.wait(timeout=20) == 0
    finally:
        if supervisor.poll() is None:
            supervisor.kill()
            supervisor.wait()
    all_delivered(deployment, expected)
