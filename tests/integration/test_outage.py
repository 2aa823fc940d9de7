"""A Pub/Sub outage mid-run: the emulator is frozen (SIGSTOP: connections hang, as with a network
partition) and thawed. The connector keeps retrying, /readiness turns 503 naming Pub/Sub and back to
200, memory stays bounded, and nothing is lost.

Freezing rather than killing: a restarted emulator forgets its topics and subscriptions, so messages
delivered before the restart could not be told from lost ones. ``make chaos`` freezes it for 30 s.
"""

from __future__ import annotations

import os
import subprocess
import threading
from collections.abc import Iterator
from pathlib import Path

import orjson
import pytest

from adapters import gcp_emulators

from .test_lease_takeover import probe, published, wait_for
from .test_reliability import EVENTS, prepare, record, verify
from .test_run_end_to_end import CONNECTOR, STOP_WAIT_S, Deployment

OUTAGE_SECONDS = float(os.environ.get("CONNECTOR_TEST_CHAOS_OUTAGE_S", "8"))


@pytest.fixture
def own_pubsub() -> Iterator[gcp_emulators.Emulator]:
    if not gcp_emulators.available("pubsub"):
        pytest.skip("the pubsub emulator is not installed here")
    emulator = gcp_emulators.start("pubsub", project="connector-test")
    try:
        yield emulator
    finally:
        emulator.resume()
        emulator.stop()


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


def test_pubsub_outage_is_retried_and_reported(tmp_path: Path, unique: str, own_pubsub: gcp_emulators.Emulator,
                                               firestore_emulator: gcp_emulators.Emulator) -> None:  # fmt: skip
    deployment = Deployment(tmp_path, unique, own_pubsub, firestore_emulator)
    expected = prepare(deployment, seed=41)
    deployment.config.write_text(deployment.config.read_text().replace("jsonl: {path:", "jsonl: {follow: true, path:"))
    port = gcp_emulators.free_port()
    process = subprocess.Popen([*CONNECTOR, "run", "--config", str(deployment.config)],
                               env={**deployment.env, "PORT": str(port)}, stdout=subprocess.DEVNULL)  # fmt: skip
    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.2):
            try:
                samples.append(rss_mb(process.pid))
            except OSError:
                return

    threading.Thread(target=sample, daemon=True).start()
    try:
        wait_for(lambda: published(port) > 0, 60, "the first publishes")
        own_pubsub.pause()
        down = wait_for(lambda: "pubsub" in (probe(port, "/readiness")[1] or {}).get("problems", {}), 60, "503")
        status, body = probe(port, "/readiness")
        assert status == 503 and "no acknowledgement" in body["problems"]["pubsub"]
        assert probe(port, "/health")[0] == 200  # alive all along: no restart loop
        during = len(samples)
        threading.Event().wait(max(0.0, OUTAGE_SECONDS - down))  # the outage lasts this long
        own_pubsub.resume()
        back = wait_for(lambda: probe(port, "/readiness")[0] == 200, 120, "readiness back to 200")
        wait_for(lambda: published(port) >= sum(len(ids) for ids in expected.values()), 300, "everything published")
        process.terminate()
        assert process.wait(timeout=STOP_WAIT_S) == 0
    finally:
        stop.set()
        if process.poll() is None:
            process.kill()
    figures = verify(deployment, expected)
    peak_during = max(samples[during:] or [0.0])
    assert peak_during < 400, f"RSS grew to {peak_during:.0f} MB while Pub/Sub was down"
    record("pubsub_outage", outage_seconds=OUTAGE_SECONDS, lost=0, **figures, peak_rss_mb=round(peak_during, 1),
           recover_seconds=round(back, 1))  # fmt: skip
    _ = EVENTS


# Longer than token_store.timeout_s (10 s), so calls really time out; make chaos freezes it for 70 s.
FIRESTORE_OUTAGE_SECONDS = float(os.environ.get("CONNECTOR_TEST_CHAOS_FIRESTORE_OUTAGE_S", "15"))


@pytest.fixture
def own_firestore() -> Iterator[gcp_emulators.Emulator]:
    if not gcp_emulators.available("firestore"):
        pytest.skip("the firestore emulator is not installed here")
    emulator = gcp_emulators.start("firestore")
    try:
        yield emulator
    finally:
        emulator.resume()
        emulator.stop()


def test_firestore_outage_keeps_publishing_and_checkpoints_resume(
    tmp_path: Path, unique: str, pubsub_emulator: gcp_emulators.Emulator, own_firestore: gcp_emulators.Emulator
) -> None:
    deployment = Deployment(tmp_path, unique, pubsub_emulator, own_firestore)
    expected = prepare(deployment, seed=51)
    lines = deployment.events.read_bytes().splitlines(keepends=True)
    half = len(lines) // 2
    deployment.events.write_bytes(b"".join(lines[:half]))
    deployment.config.write_text(deployment.config.read_text().replace("jsonl: {path:", "jsonl: {follow: true, path:"))
    port = gcp_emulators.free_port()
    process = subprocess.Popen([*CONNECTOR, "run", "--config", str(deployment.config)],
                               env={**deployment.env, "PORT": str(port)}, stdout=subprocess.DEVNULL)  # fmt: skip
    total = sum(len(ids) for ids in expected.values())
    try:
        wait_for(lambda: probe(port, "/readiness")[0] == 200, 60, "ready")
        own_firestore.pause()
        with deployment.events.open("ab") as handle:  # the stream goes on while Firestore is down
            handle.write(b"".join(lines[half:]))
        wait_for(lambda: published(port) >= total, 120, "publishing to continue during the outage")
        down = wait_for(lambda: "checkpoint" in (probe(port, "/readiness")[1] or {}).get("problems", {}), 120, "503")
        threading.Event().wait(max(0.0, FIRESTORE_OUTAGE_SECONDS - down))
        own_firestore.resume()
        back = wait_for(lambda: probe(port, "/readiness")[0] == 200, 180, "readiness back to 200")
        store = deployment.store(own_firestore)
        last = orjson.loads(lines[-1])["_id"]["_data"]
        wait_for(lambda: (c := store.load("warehouse")) is not None and c.token is not None and c.token.data == last,
                 60, "the checkpoint to catch up")  # fmt: skip
        process.terminate()
        assert process.wait(timeout=STOP_WAIT_S) == 0
    finally:
        if process.poll() is None:
            process.kill()
    figures = verify(deployment, expected)
    record(
        "firestore_outage", outage_seconds=FIRESTORE_OUTAGE_SECONDS, lost=0, **figures, recover_seconds=round(back, 1)
    )
