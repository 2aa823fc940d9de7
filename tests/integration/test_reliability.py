"""The promise of CONTRACT §1 under crashes: ``connector run`` is SIGKILLed at random moments and
restarted; afterwards every publishable event was delivered at least once, first deliveries are in
per-document order, and duplicates stay within what one checkpoint interval (plus what was in flight)
can produce. A graceful SIGTERM and restart produces no duplicate at all.

``make test`` runs a short version; ``make chaos`` sets CONNECTOR_TEST_CHAOS_TRIALS=20 and
CONNECTOR_TEST_CHAOS_EVENTS=20000. Figures are appended to bench/results/reliability.jsonl.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
from google.cloud import pubsub_v1

from adapters import gcp_emulators

from .test_run_end_to_end import CONNECTOR, STOP_WAIT_S, Deployment, connector

TRIALS = int(os.environ.get("CONNECTOR_TEST_CHAOS_TRIALS", "3"))
EVENTS = int(os.environ.get("CONNECTOR_TEST_CHAOS_EVENTS", "6000"))
MAX_IN_FLIGHT = 1000
RESULTS = Path(__file__).resolve().parents[2] / "bench" / "results" / "reliability.jsonl"


def drain(subscription: str, wanted: set[str]) -> list[Any]:
    """Pull until every wanted id has arrived and the subscription is empty."""
    subscriber = pubsub_v1.SubscriberClient()
    received: list[Any] = []
    try:
        while True:
            seen = {m.attributes["event_id"] for m in received}
            response = subscriber.pull(
                subscription=subscription, max_messages=1000, timeout=5 if wanted <= seen else 30
            )
            if not response.received_messages:
                if wanted <= seen:
                    return received
                raise AssertionError(f"{len(wanted - seen)} events never arrived")
            received.extend(item.message for item in response.received_messages)
            subscriber.acknowledge(subscription=subscription, ack_ids=[i.ack_id for i in response.received_messages])
    finally:
        subscriber.close()


def verify(deployment: Deployment, expected: dict[str, set[str]]) -> dict[str, int]:
    """Every expected id delivered; first deliveries in seq_no order per document; count duplicates."""
    duplicates = delivered = 0
    for name, topic in deployment.topics.items():
        received = drain(deployment.subscriptions[name], expected[topic])
        counts = Counter(m.attributes["event_id"] for m in received)
        duplicates += sum(n - 1 for n in counts.values())
        delivered += len(counts)
        last: dict[str, int] = {}
        first_seen: set[str] = set()
        for message in received:
            event_id = message.attributes["event_id"]
            if event_id in first_seen:
                continue
            first_seen.add(event_id)
            data = orjson.loads(message.data)
            if data["document"] is not None:
                key = orjson.dumps(data["document_key"]).decode()
                assert data["document"]["seq_no"] > last.get(key, 0), f"per-document order broken for {key}"
                last[key] = data["document"]["seq_no"]
    return {"delivered": delivered, "duplicates": duplicates}


def prepare(deployment: Deployment, seed: int) -> dict[str, set[str]]:
    deployment.events.write_bytes(
        connector("simulate", "--count", str(EVENTS), "--seed", str(seed), env=deployment.env).stdout
    )
    config = deployment.config.read_text()
    deployment.config.write_text(
        config.replace("pubsub: {project_id:", f"pubsub: {{max_in_flight_messages: {MAX_IN_FLIGHT}, project_id:")
    )
    replayed = connector("replay", str(deployment.events), "--config", str(deployment.config), env=deployment.env)
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    expected: dict[str, set[str]] = {topic: set() for topic in deployment.topics.values()}
    for line in replayed.stdout.splitlines():
        message = orjson.loads(line)
        expected[message["topic"]].add(message["attributes"]["event_id"])
    return expected


def record(case: str, **figures: Any) -> None:
    """Kept for the README's reliability table when ``make chaos`` asks (CONNECTOR_TEST_CHAOS_RECORD=1)."""
    if not os.environ.get("CONNECTOR_TEST_CHAOS_RECORD"):
        return
    RESULTS.parent.mkdir(exist_ok=True)
    with RESULTS.open("a") as out:
        out.write(json.dumps({"case": case, "events": EVENTS, **figures}) + "\n")


def test_sigkill_at_random_moments_loses_nothing(deployment: Deployment) -> None:
    rng = random.Random(20)
    expected = prepare(deployment, seed=21)
    kills = 0
    started = time.monotonic()
    for _ in range(TRIALS):
        process = subprocess.Popen([*CONNECTOR, "run", "--config", str(deployment.config)], env=deployment.env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            process.wait(timeout=rng.uniform(1.0, 4.0))  # the random moment of the crash
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            process.wait()
            kills += 1
    recovery_started = time.monotonic()
    final = connector("run", "--config", str(deployment.config), env=deployment.env, timeout=600)
    assert final.returncode == 0, final.stderr[-2000:]
    figures = verify(deployment, expected)
    # After a SIGKILL at most the events since the last checkpoint are re-published: one interval's worth
    # (< 5,000 at this machine's rate) plus what was in flight.
    assert figures["duplicates"] <= kills * (5000 + MAX_IN_FLIGHT), figures
    record("sigkill", trials=TRIALS, kills=kills, lost=0, **figures,
           recover_seconds=round(time.monotonic() - recovery_started, 1),
           total_seconds=round(time.monotonic() - started, 1))  # fmt: skip


def test_graceful_stop_and_restart_publishes_no_duplicate(deployment: Deployment) -> None:
    rng = random.Random(30)
    expected = prepare(deployment, seed=31)
    for _ in range(max(1, TRIALS // 2)):
        process = subprocess.Popen([*CONNECTOR, "run", "--config", str(deployment.config)], env=deployment.env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
        try:
            process.wait(timeout=rng.uniform(1.0, 3.0))
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGTERM)
            assert process.wait(timeout=STOP_WAIT_S) == 0
    final = connector("run", "--config", str(deployment.config), env=deployment.env, timeout=600)
    assert final.returncode == 0
    figures = verify(deployment, expected)
    assert figures["duplicates"] == 0, figures
    record("sigterm", trials=max(1, TRIALS // 2), lost=0, **figures)
    _ = gcp_emulators
