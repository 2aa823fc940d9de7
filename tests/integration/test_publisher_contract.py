"""One contract, two publishers: the in-memory fake and google-cloud-pubsub on its emulator.

What the pipeline relies on: every publish completes its callback exactly once, messages arrive
with their data, attributes and ordering key, one key's messages arrive in publish order, and a
missing topic is a fatal error that says how to fix it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
from google.cloud import pubsub_v1

from adapters.memory.publisher import InMemoryPublisher
from adapters.pubsub_publisher import PubSubPublisher
from adapters.system_clock import SystemClock
from application.ports import PublishError
from domain.envelope import OutboundMessage

from .conftest import PROJECT


class Harness:
    def __init__(self, kind: str, unique: str) -> None:
        self.kind = kind
        self.topic = f"topic-{unique}"
        if kind == "memory":
            self.fake = InMemoryPublisher(clock=SystemClock())
            self.publisher: Any = self.fake
            return
        self.publisher = PubSubPublisher(project_id=PROJECT, batch_max_latency_s=0.01)
        admin = pubsub_v1.PublisherClient()
        self.subscriber = pubsub_v1.SubscriberClient()
        topic_path = admin.topic_path(PROJECT, self.topic)
        admin.create_topic(name=topic_path)
        self.subscription = self.subscriber.subscription_path(PROJECT, f"sub-{unique}")
        self.subscriber.create_subscription(
            request={"name": self.subscription, "topic": topic_path, "enable_message_ordering": True}
        )

    def publish_all(self, messages: list[OutboundMessage]) -> list[PublishError | None]:
        results: list[PublishError | None] = [None] * len(messages)
        calls = [0] * len(messages)
        done = threading.Semaphore(0)

        def callback(index: int):  # type: ignore[no-untyped-def]
            def on_done(error: PublishError | None) -> None:
                calls[index] += 1
                results[index] = error
                done.release()

            return on_done

        for index, message in enumerate(messages):
            self.publisher.publish(message, callback(index))
        for _ in messages:
            assert done.acquire(timeout=60)
        assert calls == [1] * len(messages)
        return results

    def received(self, count: int) -> list[tuple[bytes, dict[str, str], str]]:
        if self.kind == "memory":
            return [(m.data, dict(m.attributes), m.ordering_key) for m in self.fake.delivered]
        got: list[tuple[bytes, dict[str, str], str]] = []
        while len(got) < count:
            response = self.subscriber.pull(subscription=self.subscription, max_messages=1000, timeout=30)
            for item in response.received_messages:
                m = item.message
                got.append((m.data, dict(m.attributes), m.ordering_key))
            if response.received_messages:
                self.subscriber.acknowledge(
                    subscription=self.subscription, ack_ids=[i.ack_id for i in response.received_messages]
                )
        return got


@pytest.fixture(params=["memory", "pubsub"])
def harness(request: pytest.FixtureRequest, unique: str) -> Iterator[Harness]:
    if request.param == "pubsub":
        request.getfixturevalue("pubsub_env")
    h = Harness(request.param, unique)
    yield h
    h.publisher.close()


def message(topic: str, n: int, key: str) -> OutboundMessage:
    return OutboundMessage(
        topic=topic,
        data=b'{"n":%d}' % n,
        ordering_key=key,
        attributes={"event_id": f"e{n}", "n": str(n)},
        event_id=f"e{n}",
    )


def test_messages_arrive_with_data_attributes_and_key_order(harness: Harness) -> None:
    messages = [message(harness.topic, n, f"inventory:{n % 3}") for n in range(60)]
    assert harness.publish_all(messages) == [None] * 60
    received = harness.received(60)
    assert sorted(data for data, _, _ in received) == sorted(m.data for m in messages)
    for key in ("inventory:0", "inventory:1", "inventory:2"):
        numbers = [int(attributes["n"]) for _, attributes, k in received if k == key]
        assert numbers == sorted(numbers), key
    assert all(attributes["event_id"] == f"e{attributes['n']}" for _, attributes, _ in received)
    assert harness.publisher.flush(5)


def test_missing_topic_is_fatal_with_advice(harness: Harness) -> None:
    if harness.kind == "memory":
        pytest.skip("the fake has no topic registry; the pipeline's fatal path is covered in unit tests")
    (error,) = harness.publish_all([message("no-such-topic", 1, "")])
    assert error is not None and not error.retryable
    assert "--create-missing" in error.recovery
