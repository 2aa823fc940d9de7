"""Two ``connector run`` processes on one stream: one publishes, the other stands by; SIGKILL the first
and the standby takes over within the lease time; the dead one's late checkpoint is refused; SIGTERM
stops the survivor cleanly within 10 s. Probes and metrics are read over real sockets."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson
import pytest

from adapters import gcp_emulators
from adapters.simulator import WorkloadSpec, generate_events
from application.ports import Checkpoint, StaleCheckpoint
from domain.change_event import ResumeToken

from .test_run_end_to_end import CONNECTOR, STOP_WAIT_S, Deployment, pull_all

LEASE_SECONDS = 3


def probe(port: int, path: str) -> tuple[int, Any]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=2) as response:
            body = response.read()
            status = response.status
    except urllib.error.HTTPError as error:
        body, status = error.read(), error.code
    except OSError:
        return 0, None
    return status, (orjson.loads(body) if path != "/metrics" else body.decode())


def wait_for(condition: Callable[[], bool], timeout: float, what: str) -> float:
    """Poll an HTTP probe (there is no event to subscribe to); returns the seconds it took."""
    started = time.monotonic()
    while not condition():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.1)
    return time.monotonic() - started


def published(port: int) -> float:
    status, text = probe(port, "/metrics")
    if status != 200:
        return -1
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("connector_events_published_total{")
    )


def append(path: Path, events: list[dict[str, Any]]) -> None:
    with path.open("ab") as handle:
        handle.write(b"".join(orjson.dumps(e) + b"\n" for e in events))


@pytest.fixture
def deployment(
    tmp_path: Path, unique: str, pubsub_emulator: gcp_emulators.Emulator, firestore_emulator: gcp_emulators.Emulator
) -> Deployment:
    d = Deployment(tmp_path, unique, pubsub_emulator, firestore_emulator)
    d.config.write_text(d.config.read_text().replace("jsonl: {path:", "jsonl: {follow: true, path:"))
    return d


def start(deployment: Deployment, port: int) -> subprocess.Popen[bytes]:
    env = {**deployment.env, "PORT": str(port)}
    return subprocess.Popen(
        [*CONNECTOR, "run", "--config", str(deployment.config)],
        env=env,
        stdout=tempfile.TemporaryFile(),  # not a pipe: nobody reads it, and a full pipe blocks the process
        stderr=subprocess.STDOUT,
    )


def test_standby_takes_over_and_the_fenced_out_checkpoint_is_refused(
    deployment: Deployment, firestore_emulator: gcp_emulators.Emulator
) -> None:
    events = list(generate_events(WorkloadSpec(seed=5, count=700, documents=50, invalid_rate=0)))
    append(deployment.events, events[:500])
    port_a, port_b = gcp_emulators.free_port(), gcp_emulators.free_port()
    first = start(deployment, port_a)
    second = None
    try:
        wait_for(lambda: probe(port_a, "/readiness")[0] == 200, 60, "the first instance to be ready")
        wait_for(lambda: published(port_a) >= 500, 60, "the first instance to publish 500 events")
        second = start(deployment, port_b)
        wait_for(lambda: "lease" in (probe(port_b, "/readiness")[1] or {}).get("problems", {}), 60, "standby")
        status, body = probe(port_b, "/readiness")
        assert status == 503 and "standby" in body["problems"]["lease"]
        assert published(port_b) == 0, "the standby published"
        store = deployment.store(firestore_emulator)
        wait_for(
            lambda: (c := store.load("warehouse")) is not None and c.token.data == events[499]["_id"]["_data"],
            30,
            "checkpoint",
        )
        old_generation = store.load("warehouse").generation  # type: ignore[union-attr]

        first.send_signal(signal.SIGKILL)
        first.wait(timeout=10)
        took = wait_for(lambda: probe(port_b, "/readiness")[0] == 200, 30, "the standby to take over")
        assert took <= LEASE_SECONDS + LEASE_SECONDS / 3 + 2, f"takeover took {took:.1f} s"

        append(deployment.events, events[500:])
        wait_for(lambda: published(port_b) >= 200, 60, "the new owner to publish the new events")

        late = Checkpoint(
            token=ResumeToken(events[699]["_id"]["_data"] + "FF"), cluster_time=None, updated_at=datetime.now(UTC)
        )
        with pytest.raises(StaleCheckpoint, match="fenced out"):
            store.save("warehouse", late, generation=old_generation)

        stopping = time.monotonic()
        second.send_signal(signal.SIGTERM)
        assert second.wait(timeout=STOP_WAIT_S) == 0
        assert time.monotonic() - stopping < 10
        final = store.load("warehouse")
        assert final is not None and final.token.data == events[699]["_id"]["_data"]
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                process.kill()
                process.wait()

    delivered: set[str] = set()
    for name, subscription in deployment.subscriptions.items():
        want = sum(1 for e in events if e["ns"]["coll"] == name)
        delivered |= {m.attributes["event_id"] for m in pull_all(subscription, want)}
    from domain.envelope import event_id

    assert {event_id(e["_id"]["_data"]) for e in events} <= delivered
    _ = (os, sys)
