"""The pipeline's promises, one scenario each, on the simulated clock (no sleeps, no threads)."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable

from adapters.memory.publisher import Faults
from adapters.memory.scripted_source import ScriptedSource
from application.backoff import RetryPolicy
from application.health import HealthState
from application.pipeline import Pipeline, PipelineSettings, StopReason
from application.ports import Heartbeat, SourceError, StartPosition
from domain.change_event import ClusterTime, ResumeToken
from tests.pipeline_support import (
    STREAM,
    World,
    data_of,
    event,
    first_delivery_order_kept,
    saved_tokens_monotone,
    step,
    token_data,
    workload,
)


def test_all_events_published_and_final_checkpoint_is_the_last_token() -> None:
    world = World()
    events = workload(random.Random(1), count=200, documents=20)
    result = world.run(events)
    assert result.reason is StopReason.END_OF_SOURCE
    assert {m.event_id for m in world.delivered} == {data_of(m)["event_id"] for m in world.delivered}
    assert len(world.delivered) == 200
    assert world.store.checkpoints[STREAM].token == events[-1].token
    assert first_delivery_order_kept(world.delivered)


def test_many_events_in_one_interval_give_one_checkpoint_write() -> None:
    world = World()
    events = workload(random.Random(2), count=300, documents=10)
    settings = PipelineSettings(stream_id=STREAM, checkpoint_interval_s=1.0)
    world.run(events, settings=settings, interval=0.001)  # 0.3 s of events
    assert len(world.store.saves) == 1


def test_checkpoint_cadence_is_at_most_one_write_per_interval() -> None:
    world = World()
    events = workload(random.Random(3), count=1000, documents=50)
    settings = PipelineSettings(stream_id=STREAM, checkpoint_interval_s=1.0)
    world.run(events, settings=settings, interval=0.01)  # 10 s of events
    times = [at for _, _, at in world.store.saves]
    assert 5 <= len(times) <= 12
    assert all(b - a >= 0.999 for a, b in itertools.pairwise(times[:-1]))


def test_heartbeats_advance_an_idle_stream() -> None:
    world = World()
    events = workload(random.Random(4), count=5, documents=2)
    world.run(events)
    heartbeats = [
        Heartbeat(ResumeToken(token_data(1000 + i)), ClusterTime(seconds=1_800_000_000, increment=i)) for i in range(3)
    ]
    source = ScriptedSource(events, advance=world.clock.advance, interval=0.5, heartbeats=heartbeats)
    world.pipeline(events, source=source).run(world.start())
    assert world.store.checkpoints[STREAM].token == heartbeats[-1].token
    assert len(world.delivered) == 5  # nothing republished


def test_backpressure_bounds_in_flight_while_pubsub_stalls() -> None:
    world = World()
    publisher = world.publisher()
    publisher.gate = lambda message: world.clock.monotonic() > 30.0  # Pub/Sub stalled for 30 s
    events = workload(random.Random(5), count=500, documents=50)
    source = ScriptedSource(events, advance=world.clock.advance, interval=0.001)
    settings = PipelineSettings(stream_id=STREAM, max_in_flight_messages=25, stop_deadline_s=120)
    result = world.pipeline(events, publisher=publisher, source=source, settings=settings).run(StartPosition())
    assert result.reason is StopReason.END_OF_SOURCE
    assert world.metrics.max_in_flight <= 25
    assert world.metrics.retries["publish"] > 0
    assert {m.event_id for m in world.delivered} == {e for e in (data_of(m)["event_id"] for m in world.delivered)}
    assert len({m.event_id for m in world.delivered}) == 500
    assert first_delivery_order_kept(world.delivered)


def test_a_failed_request_is_retried_whole_before_anything_later_of_its_key() -> None:
    world = World()
    publisher = world.publisher()
    events = [event(n, doc=n % 8, seq_no=n // 8 + 1) for n in range(400)]
    key = step().process(events[0]).messages[0].ordering_key  # type: ignore[union-attr]
    publisher.fail_request(key, 2)
    publisher.fail_request(key, 3)  # its first retry fails too
    world.run(events, publisher=publisher)
    sent = publisher.requests
    positions = [index for index, request in enumerate(sent) if request.ordering_key == key]
    assert len(positions) >= 5
    failed, retry, success, after = (sent[positions[i]] for i in (1, 2, 3, 4))
    assert failed.messages == retry.messages == success.messages, "nothing later of the key went out before"
    assert data_of(after.messages[0])["document"]["seq_no"] > data_of(success.messages[-1])["document"]["seq_no"]
    assert {r.ordering_key for r in sent[positions[1] + 1 : positions[3]]} - {key}, "other keys kept flowing"
    assert not publisher.refused
    assert len({m.event_id for m in world.delivered}) == 400
    assert first_delivery_order_kept(world.delivered)


def test_requests_carry_one_key_and_many_messages_each() -> None:
    world = World()
    publisher = world.publisher()
    events = workload(random.Random(8), count=2000, documents=200)
    world.run(events, publisher=publisher, interval=0.0001)
    assert not publisher.refused
    assert all({m.ordering_key for m in r.messages} == {r.ordering_key} for r in publisher.requests)
    assert len(publisher.requests) < 2000 / 5  # batched: a key's messages gather while its request is out
    assert len({m.event_id for m in world.delivered}) == 2000


def test_graceful_stop_drains_and_restart_publishes_no_duplicate() -> None:
    world = World()
    events = workload(random.Random(6), count=400, documents=30)
    pipeline = world.pipeline(events, interval=0.01)
    world.clock.call_later(1.5, pipeline.request_stop)
    result = pipeline.run(StartPosition())
    assert result.reason is StopReason.STOP_REQUESTED and result.drained
    read_before_stop = result.events
    assert 0 < read_before_stop < 400
    assert world.store.checkpoints[STREAM].token == events[read_before_stop - 1].token
    world.run(events)
    assert len(world.delivered) == 400
    assert len({m.event_id for m in world.delivered}) == 400


def test_stop_deadline_is_honoured_when_pubsub_hangs() -> None:
    world = World()
    publisher = world.publisher()
    events = workload(random.Random(7), count=100, documents=10)
    publisher.gate = lambda m: data_of(m)["document"]["seq_no"] < 3  # later messages never succeed
    pipeline = world.pipeline(
        events, publisher=publisher, settings=PipelineSettings(stream_id=STREAM, stop_deadline_s=10)
    )
    world.clock.call_later(0.5, pipeline.request_stop)
    started = world.clock.monotonic()
    result = pipeline.run(StartPosition())
    assert world.clock.monotonic() - started <= 10.0
    assert not result.drained
    stored = world.store.checkpoints.get(STREAM)
    undelivered = {data_of(m)["event_id"] for m in world.delivered}
    if stored is not None:  # everything up to the checkpoint really was delivered
        upto = [e for e in events if e.token.data <= stored.token.data]
        assert all(step().process(e).messages[0].event_id in undelivered for e in upto)  # type: ignore[union-attr]


def test_second_stop_request_returns_at_once_without_touching_the_checkpoint() -> None:
    world = World()
    publisher = world.publisher()
    publisher.gate = lambda m: False
    events = workload(random.Random(8), count=50, documents=5)
    pipeline = world.pipeline(events, publisher=publisher)
    world.clock.call_later(0.01, pipeline.request_stop)
    world.clock.call_later(0.02, pipeline.request_stop)
    result = pipeline.run(StartPosition())
    assert world.clock.monotonic() < 1.0
    assert STREAM not in world.store.checkpoints
    assert result.reason is StopReason.STOP_REQUESTED


def test_fatal_publish_error_stops_with_recovery_and_checkpoint_before_it() -> None:
    world = World()
    publisher = world.publisher(Faults(fatal_rate=1.0))
    events = workload(random.Random(9), count=20, documents=3)
    pipeline = world.pipeline(events, publisher=publisher)
    result = pipeline.run(StartPosition())
    assert result.reason is StopReason.FATAL
    assert result.recovery and "roles/pubsub.publisher" in result.recovery
    assert STREAM not in world.store.checkpoints
    ready, problems = pipeline._health.readiness()
    assert not ready and "worker" in problems


def test_on_invalid_fail_stops_before_the_invalid_document() -> None:
    world = World()
    events = [event(n, doc=n, seq_no=1, valid=n != 6) for n in range(10)]
    settings = PipelineSettings(stream_id=STREAM, fail_on_invalid=True)
    result = world.run(events, settings=settings)
    assert result.reason is StopReason.INVALID_DOCUMENT
    assert world.store.checkpoints[STREAM].token == events[5].token
    assert len(world.delivered) == 6


def test_dead_letters_carry_reason_and_settle() -> None:
    world = World()
    events = [event(n, doc=n, seq_no=1, valid=n % 2 == 0) for n in range(10)]
    world.run(events, processing=step(dead_letter="dlq"))
    dead = [m for m in world.delivered if m.topic == "dlq"]
    assert len(dead) == 5 and all(m.attributes["reason"] == "validation_failed" for m in dead)
    assert sum(world.metrics.dead_letters.values()) == 5 == sum(world.metrics.published.values())
    assert {reason for _, reason in world.metrics.dead_letters} == {"validation_failed"}
    assert world.store.checkpoints[STREAM].token == events[-1].token


def test_token_store_outage_retries_and_checkpoints_resume() -> None:
    world = World()
    world.store.fail_next_saves = 4
    events = workload(random.Random(10), count=500, documents=20)
    settings = PipelineSettings(stream_id=STREAM, retry=RetryPolicy(initial_backoff_s=0.1, max_backoff_s=1.0))
    result = world.run(events, settings=settings, interval=0.01)
    assert result.reason is StopReason.END_OF_SOURCE
    assert world.metrics.retries["checkpoint"] == 4
    assert world.store.checkpoints[STREAM].token == events[-1].token
    assert saved_tokens_monotone(world.store)


def test_retryable_source_errors_reopen_after_the_last_read_event() -> None:
    world = World()
    events = workload(random.Random(11), count=100, documents=10)
    failures = {
        30: SourceError("connection reset", retryable=True),
        60: SourceError("not primary", retryable=True),
    }
    source = ScriptedSource(events, advance=world.clock.advance, fail_at=lambda i: failures.pop(i, None))
    result = world.pipeline(events, source=source).run(StartPosition())
    assert result.reason is StopReason.END_OF_SOURCE
    assert [p.resume_after for p in source.reads[1:]] == [events[29].token, events[59].token]
    assert len(world.delivered) == 100 == len({m.event_id for m in world.delivered})
    assert world.metrics.retries["source"] == 2


def test_fatal_source_error_stops_with_its_recovery() -> None:
    world = World()
    events = workload(random.Random(12), count=50, documents=10)
    error = SourceError("history lost (286)", retryable=False, recovery="connector admin tokens set warehouse --at …")
    source = ScriptedSource(events, advance=world.clock.advance, fail_at=lambda i: error if i == 20 else None)
    result = world.pipeline(events, source=source).run(StartPosition())
    assert result.reason is StopReason.FATAL
    assert result.recovery is not None and "admin tokens set" in result.recovery
    assert world.store.checkpoints[STREAM].token == events[19].token


def test_fenced_out_instance_stops_when_its_checkpoint_is_refused() -> None:
    world = World()
    events = workload(random.Random(13), count=300, documents=10)
    world.store.generations[STREAM] = 5  # another instance took the lease
    settings = PipelineSettings(stream_id=STREAM, generation=4)
    result = world.run(events, settings=settings, interval=0.01)
    assert result.reason is StopReason.FATAL
    assert "another instance" in (result.recovery or "")
    assert world.store.refused and STREAM not in world.store.checkpoints


def test_an_unexpected_token_store_error_does_not_end_checkpointing() -> None:
    world = World()
    original = world.store.save
    calls = {"n": 0}

    def flaky(stream_id, checkpoint, *, generation):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] <= 2:
            raise ValueError("The transaction has no transaction ID, so it cannot be rolled back.")
        original(stream_id, checkpoint, generation=generation)

    world.store.save = flaky  # type: ignore[method-assign]
    events = workload(random.Random(14), count=600, documents=20)
    result = world.run(events, interval=0.01)
    assert result.reason is StopReason.END_OF_SOURCE
    assert calls["n"] > 2 and world.store.checkpoints[STREAM].token == events[-1].token


class HeldStoreCalls:
    """A store whose calls hang until released: what a frozen Firestore looks like to the pipeline."""

    def __init__(self) -> None:
        self.calls: list[Callable[[], None]] = []

    def submit(self, call: Callable[[], None]) -> None:
        self.calls.append(call)


def test_a_hung_checkpoint_save_holds_up_no_publish_and_turns_readiness_red() -> None:
    world = World()
    publisher = world.publisher()
    publisher.fail_next = 5  # publish retries fall due while the save hangs
    events = workload(random.Random(13), count=300, documents=20)
    held, health = HeldStoreCalls(), HealthState()
    settings = PipelineSettings(stream_id=STREAM, checkpoint_deadline_s=2.0, stop_deadline_s=5.0)
    pipeline = Pipeline(source=ScriptedSource(events, advance=world.clock.advance, interval=0.02), step=step(),
                        publisher=publisher, token_store=world.store, clock=world.clock, metrics=world.metrics,
                        settings=settings, health=health, store_calls=held)  # fmt: skip
    result = pipeline.run(StartPosition())
    assert len({m.event_id for m in world.delivered}) == 300 and world.metrics.retries["publish"] == 5
    assert len(held.calls) == 1 and not world.store.saves, "one save at a time, and it never returned"
    assert result.checkpoint is None
    assert "checkpoint" in health.readiness()[1]
    held.calls[0]()  # the store answers at last
    assert world.store.saves and "checkpoint" not in health.readiness()[1]
