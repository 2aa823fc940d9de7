"""``connector run`` as users run it, on the real emulators: 20,000 simulated events from a JSONL file
to Pub/Sub, checkpointed in Firestore, pulled back from subscriptions and checked against ``replay``."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import orjson
from google.cloud import pubsub_v1

from adapters import gcp_emulators
from adapters.firestore_token_store import FirestoreTokenStore
from adapters.pubsub_admin import ensure_subscription, ensure_topics

from .conftest import PROJECT

CONNECTOR = [sys.executable, "-m", "entrypoints.launch"]
# After SIGTERM a run drains within 10 s (its own deadline); on a loaded CI machine the process may
# need a little longer to be scheduled and exit, so tests wait this long before calling it hung.
STOP_WAIT_S = 30
EVENTS = 20_000


def connector(*args: str, env: dict[str, str], timeout: float = 300) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([*CONNECTOR, *args], env=env, capture_output=True, timeout=timeout, check=False)


def pull_all(subscription: str, expected: int) -> list[Any]:
    subscriber = pubsub_v1.SubscriberClient()
    received: list[Any] = []
    try:
        while len(received) < expected:
            response = subscriber.pull(subscription=subscription, max_messages=1000, timeout=30)
            if not response.received_messages:
                break
            received.extend(item.message for item in response.received_messages)
            subscriber.acknowledge(subscription=subscription, ack_ids=[i.ack_id for i in response.received_messages])
    finally:
        subscriber.close()
    return received


class Deployment:
    """Topics, subscriptions, a Firestore collection and a config file of their own."""

    def __init__(self, tmp: Path, unique: str, pubsub: gcp_emulators.Emulator, firestore: gcp_emulators.Emulator):
        self.topics = {"inventory": f"inventory-{unique}", "transactions": f"transactions-{unique}"}
        self.collection = f"tokens_{unique}"
        self.env = {**os.environ, **pubsub.env, **firestore.env, "PORT": "0"}
        os.environ.update(pubsub.env)
        ensure_topics(PROJECT, self.topics.values())
        self.subscriptions = {
            name: ensure_subscription(PROJECT, topic, f"{topic}-sub") for name, topic in self.topics.items()
        }
        self.events = tmp / "events.jsonl"
        self.config = tmp / "config.yaml"
        self.config.write_text(
            f"""
source: jsonl
jsonl: {{path: {self.events}}}
streams:
  - {{collection: inventory, document_type: inventory, topic: {self.topics["inventory"]}}}
  - {{collection: transactions, document_type: transaction, topic: {self.topics["transactions"]}}}
pubsub: {{project_id: {PROJECT}}}
token_store: {{collection: {self.collection}, lease_seconds: 3}}
logging: {{level: WARNING}}
"""
        )

    def store(self, firestore: gcp_emulators.Emulator) -> FirestoreTokenStore:
        os.environ.update(firestore.env)
        return FirestoreTokenStore(project_id=PROJECT, collection=self.collection)


def test_twenty_thousand_events_arrive_in_order_and_a_restart_adds_nothing(
    deployment: Deployment, firestore_emulator: gcp_emulators.Emulator
) -> None:
    simulated = connector("simulate", "--count", str(EVENTS), "--seed", "11", env=deployment.env)
    deployment.events.write_bytes(simulated.stdout)
    replayed = connector("replay", str(deployment.events), "--config", str(deployment.config), env=deployment.env)
    assert replayed.returncode == 0, replayed.stderr[-2000:]
    expected: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for line in replayed.stdout.splitlines():
        message = orjson.loads(line)
        expected[message["topic"]].append(message)

    run = connector("run", "--config", str(deployment.config), env=deployment.env)
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:]

    for name, topic in deployment.topics.items():
        received = pull_all(deployment.subscriptions[name], len(expected[topic]))
        want = {m["attributes"]["event_id"]: m for m in expected[topic]}
        got_ids = [m.attributes["event_id"] for m in received]
        assert set(got_ids) == set(want), f"{topic}: missing {len(set(want) - set(got_ids))}"
        first_seen: dict[str, int] = {}
        for message in received:
            event_id = message.attributes["event_id"]
            if event_id in first_seen:
                continue
            data = orjson.loads(message.data)
            assert data == want[event_id]["data"]
            assert message.ordering_key == want[event_id]["ordering_key"]
            document = data["document"]
            if document is not None:
                key = orjson.dumps(data["document_key"]).decode()
                assert document["seq_no"] > first_seen.get(key, 0), f"order broken for {key}"
                first_seen[key] = document["seq_no"]
            first_seen[event_id] = 1

    last_token = orjson.loads(deployment.events.read_bytes().splitlines()[-1])["_id"]["_data"]
    checkpoint = deployment.store(firestore_emulator).load("warehouse")
    assert checkpoint is not None and checkpoint.token.data == last_token

    again = connector("run", "--config", str(deployment.config), env=deployment.env)
    assert again.returncode == 0, again.stderr[-2000:]
    for name in deployment.topics:
        subscriber = pubsub_v1.SubscriberClient()
        response = subscriber.pull(subscription=deployment.subscriptions[name], max_messages=10, timeout=5)
        subscriber.close()
        assert list(response.received_messages) == [], "a restart after the end re-published events"
