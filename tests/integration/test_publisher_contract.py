"""One contract, two publishers: the in-memory fake and google-cloud-pubsub on its emulator.

What the pipeline relies on: every Publish request is answered exactly once, its messages arrive
with their data, attributes and ordering key, one key's requests sent one after another arrive in
order, and a missing topic is a fatal error that says how to fix it. The fake is stricter than the
emulator where the real service is: it refuses a request mixing ordering keys, and a second request
of a key while one is in flight (the emulator accepts both; the real API refuses the first and may
reorder the second).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from google.cloud import pubsub_v1

from adapters.memory.publisher import InMemoryPublisher
from adapters.pubsub_publisher import PubSubPublisher
from adapters.system_clock import SystemClock
from application.ports import PublishError, PublishRequest
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
        self.publisher = PubSubPublisher(project_id=PROJECT, deadline_s=30)
        admin = pubsub_v1.PublisherClient()
        self.subscriber = pubsub_v1.SubscriberClient()
        topic_path = admin.topic_path(PROJECT, self.topic)
        admin.create_topic(name=topic_path)
        self.subscription = self.subscriber.subscription_path(PROJECT, f"sub-{unique}")
        self.subscriber.create_subscription(
            request={"name": self.subscription, "topic": topic_path, "enable_message_ordering": True}
        )

    def send_all(self, requests: list[PublishRequest]) -> list[PublishError | None]:
        """Send ``requests`` at once (the caller keeps one per key); each answer exactly once."""
        results: list[PublishError | None] = [None] * len(requests)
        calls = [0] * len(requests)
        done = threading.Semaphore(0)

        def callback(index: int) -> Callable[[PublishError | None], None]:
            def on_done(error: PublishError | None) -> None:
                calls[index] += 1
                results[index] = error
                done.release()

            return on_done

        for index, request in enumerate(requests):
            self.publisher.send(request, callback(index))
        for _ in requests:
            assert done.acquire(timeout=60)
        assert calls == [1] * len(requests)
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


def request(topic: str, key: str, numbers: range) -> PublishRequest:
    return PublishRequest(topic, key, tuple(message(topic, n, key) for n in numbers))


def test_requests_arrive_with_data_attributes_and_key_order(harness: Harness) -> None:
    keys = ("inventory:0", "inventory:1", "")
    first = [request(harness.topic, key, range(100 * i, 100 * i + 30)) for i, key in enumerate(keys)]
    second = [request(harness.topic, key, range(100 * i + 30, 100 * i + 60)) for i, key in enumerate(keys)]
    assert harness.send_all(first) == [None] * 3
    assert harness.send_all(second) == [None] * 3  # each key's next request once the previous one is answered
    received = harness.received(180)
    sent = [m for r in first + second for m in r.messages]
    assert sorted(data for data, _, _ in received) == sorted(m.data for m in sent)
    for key in keys[:2]:
        numbers = [int(attributes["n"]) for _, attributes, k in received if k == key]
        assert numbers == sorted(numbers), key
    assert all(attributes["event_id"] == f"e{attributes['n']}" for _, attributes, _ in received)


def test_missing_topic_is_fatal_with_advice(harness: Harness) -> None:
    if harness.kind == "memory":
        pytest.skip("the fake has no topic registry; the pipeline's fatal path is covered in unit tests")
    (error,) = harness.send_all([request("no-such-topic", "", range(1))])
    assert error is not None and not error.retryable
    assert "--create-missing" in error.recovery


def test_a_request_mixing_ordering_keys_is_refused(harness: Harness) -> None:
    if harness.kind == "pubsub":
        pytest.skip("the emulator accepts mixed keys; the real API refuses them (PubsubMessage.ordering_key)")
    mixed = PublishRequest(harness.topic, "a", (message(harness.topic, 1, "a"), message(harness.topic, 2, "b")))
    (error,) = harness.send_all([mixed])
    assert error is not None and not error.retryable
    assert harness.fake.refused and not harness.fake.delivered


def test_a_second_request_of_a_key_in_flight_is_refused(harness: Harness) -> None:
    if harness.kind == "pubsub":
        pytest.skip("the emulator accepts concurrent requests of a key; the real service may then reorder them")
    one, two = request(harness.topic, "k", range(0, 5)), request(harness.topic, "k", range(5, 10))
    results = harness.send_all([one, two])
    assert results[0] is None and results[1] is not None and not results[1].retryable
    assert [m.data for m in harness.fake.delivered] == [m.data for m in one.messages]
