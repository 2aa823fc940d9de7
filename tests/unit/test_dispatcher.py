"""The publish-and-settle core on its own, against the rule-keeping fake on the simulated clock."""

from __future__ import annotations

from collections.abc import Sequence

from adapters.memory.metrics import RecordingMetrics
from adapters.memory.publisher import Faults, InMemoryPublisher
from adapters.memory.simulated_clock import SimulatedClock
from application.backoff import RetryPolicy
from application.dispatcher import BatchLimits, Dispatcher, Parcel
from application.ports import PublishError
from domain.envelope import OutboundMessage


def message(n: int, key: str, size: int = 10) -> OutboundMessage:
    return OutboundMessage(topic="t", data=b"x" * size, ordering_key=key, attributes={"n": str(n)}, event_id=f"e{n}")


class Harness:
    def __init__(self, *, limits: BatchLimits | None = None, faults: Faults | None = None) -> None:
        self.clock = SimulatedClock()
        self.fake = InMemoryPublisher(clock=self.clock, faults=faults)
        self.settled: list[list[int]] = []
        self.fatal: list[PublishError] = []
        self.dispatcher = Dispatcher(publisher=self.fake, clock=self.clock, policy=RetryPolicy(initial_backoff_s=0.01),
                                     metrics=RecordingMetrics(), on_settled=self.on_settled,
                                     on_fatal=self.fatal.append, limits=limits)  # fmt: skip

    def on_settled(self, parcels: Sequence[Parcel], now: float) -> None:
        self.settled.append([parcel.seq for parcel in parcels])

    def submit(self, messages: Sequence[OutboundMessage]) -> None:
        self.dispatcher.submit([Parcel(m, int(m.attributes["n"]), self.clock.monotonic(), True) for m in messages])


def test_requests_are_cut_at_the_message_count_and_the_size_limit() -> None:
    harness = Harness(limits=BatchLimits(max_messages=3, max_bytes=10_000_000))
    harness.submit([message(n, "k") for n in range(7)])
    harness.submit([message(n, "big", size=4_000_000) for n in range(100, 105)])
    harness.clock.run_all()
    sizes = {key: [len(r.messages) for r in harness.fake.requests if r.ordering_key == key] for key in ("k", "big")}
    assert sizes == {"k": [3, 3, 1], "big": [2, 2, 1]}  # 3 x 4 MB would pass Pub/Sub's 10 MB per request
    assert sorted(seq for request in harness.settled for seq in request) == [*range(7), *range(100, 105)]
    assert harness.dispatcher.in_flight == 0 and not harness.fake.refused


def test_unordered_messages_go_out_without_waiting_for_each_other() -> None:
    harness = Harness(limits=BatchLimits(max_messages=2))
    harness.submit([message(n, "") for n in range(6)])
    assert len(harness.fake.requests) == 3 and harness.fake.in_flight == 3  # all at once, no key to serialise
    harness.clock.run_all()
    assert len(harness.settled) == 3 and harness.dispatcher.in_flight == 0


def test_a_keys_later_messages_wait_for_its_request_in_flight_then_go_together() -> None:
    harness = Harness()
    harness.submit([message(0, "k")])
    harness.submit([message(n, "k") for n in range(1, 5)])
    assert [len(r.messages) for r in harness.fake.requests] == [1]
    harness.clock.run_all()
    assert [len(r.messages) for r in harness.fake.requests] == [1, 4]
    assert harness.settled == [[0], [1, 2, 3, 4]]  # one settle per request, all its messages together


def test_keys_wait_for_a_free_slot_and_their_requests_grow_meanwhile() -> None:
    harness = Harness(limits=BatchLimits(max_requests=2))
    harness.submit([message(0, "a"), message(1, "b"), message(2, "c")])
    harness.submit([message(3, "c"), message(4, "a")])
    sent = [(r.ordering_key, [m.event_id for m in r.messages]) for r in harness.fake.requests]
    assert sent == [("a", ["e0"]), ("b", ["e1"])] and harness.fake.in_flight == 2  # c waits, its queue grows
    harness.clock.run_all()
    sent = [(r.ordering_key, [m.event_id for m in r.messages]) for r in harness.fake.requests]
    assert sent[2:] == [("c", ["e2", "e3"]), ("a", ["e4"])]  # c cut when a slot freed: both hand-overs at once
    assert sorted(seq for request in harness.settled for seq in request) == [0, 1, 2, 3, 4]
    assert harness.dispatcher.in_flight == 0 and not harness.fake.refused


def test_a_fatal_error_is_reported_and_not_retried() -> None:
    harness = Harness(faults=Faults(fatal_rate=1.0))
    harness.submit([message(0, "k"), message(1, "k")])
    harness.clock.run_all()
    assert len(harness.fatal) == 1 and not harness.fatal[0].retryable
    assert len(harness.fake.requests) == 1 and not harness.settled
    assert harness.dispatcher.in_flight == 2  # never settled: the checkpoint stays before them


def test_gave_up_after_max_elapsed_is_fatal_with_advice() -> None:
    clock = SimulatedClock()
    fake = InMemoryPublisher(clock=clock, faults=Faults(fail_rate=1.0))
    fatal: list[PublishError] = []
    dispatcher = Dispatcher(publisher=fake, clock=clock, metrics=RecordingMetrics(), on_fatal=fatal.append,
                            policy=RetryPolicy(initial_backoff_s=0.1, max_backoff_s=1, max_elapsed_s=5),
                            on_settled=lambda parcels, now: None)  # fmt: skip
    dispatcher.submit([Parcel(message(0, "k"), 0, 0.0, True)])
    clock.run_all()
    assert len(fatal) == 1 and "retry.max_elapsed_s" in fatal[0].recovery
    assert len(fake.requests) > 3  # retried with backoff until then
