"""Thousands of seeded runs with publisher failures, lost acks, hangs, token-store outages, source
errors and crashes at random moments, each followed by a restart from the stored checkpoint.

After every run: nothing publishable was lost, the first delivery of each document's events came
in order, checkpoints only moved forward, in-flight never exceeded its bound, and the fake Pub/Sub
never had to refuse a request (mixed ordering keys, or two requests of one key in flight).
"""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest

from adapters.memory.publisher import Faults
from adapters.memory.scripted_source import ScriptedSource
from adapters.memory.simulated_clock import SimulatedClock
from application.backoff import RetryPolicy
from application.outcomes import Publish
from application.pipeline import Pipeline, PipelineSettings, StopReason
from application.ports import SourceError
from tests.pipeline_support import (
    STREAM,
    World,
    first_delivery_order_kept,
    saved_tokens_monotone,
    step,
    workload,
)

SCENARIOS = 2000


class Crash(Exception):
    """The process died (SIGKILL): nothing after this point of its life happens."""


class ProcessClock:
    """One process's view of the shared clock: its timers die with it."""

    def __init__(self, clock: SimulatedClock) -> None:
        self._clock = clock
        self.alive = True

    def now(self):  # type: ignore[no-untyped-def]
        return self._clock.now()

    def monotonic(self) -> float:
        return self._clock.monotonic()

    def call_later(self, delay: float, fn: Callable[[], None]):  # type: ignore[no-untyped-def]
        return self._clock.call_later(delay, lambda: fn() if self.alive else None)

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        return self._clock.wait_until(predicate, timeout)

    def notify(self) -> None:
        pass


def run_scenario(seed: int) -> None:
    rng = random.Random(seed)
    random.seed(seed)  # tenacity's jitter
    world = World()
    events = workload(rng, count=rng.randint(1, 120), documents=rng.randint(1, 12), invalid_rate=rng.choice([0, 0.1]))
    processing = step(buckets=rng.choice([1, 4, 16]))
    publishable = {o.messages[0].event_id for o in (processing.process(e) for e in events) if isinstance(o, Publish)}
    max_in_flight = rng.randint(1, 12)
    faults = Faults(
        fail_rate=rng.choice([0.0, 0.02, 0.2]),
        lost_ack_rate=rng.choice([0.0, 0.05]),
        hang_rate=rng.choice([0.0, 0.01]),
        hang_seconds=rng.uniform(1, 20),
        latency=(0.0005, rng.choice([0.002, 0.05])),
    )
    settings = PipelineSettings(
        stream_id=STREAM,
        max_in_flight_messages=max_in_flight,
        checkpoint_interval_s=rng.choice([0.01, 0.1, 1.0]),
        retry=RetryPolicy(initial_backoff_s=0.01, max_backoff_s=0.5),
        batch_max_messages=rng.choice([1, 3, 1000]),
    )
    batch_size = rng.choice([1, 4, 32])
    refused: list[object] = []
    crashes = rng.choice([0, 0, 1, 2, 3])
    for life in range(crashes + 1):
        world.store.down = False
        world.store.fail_next_saves = rng.choice([0, 0, 3])
        clock = ProcessClock(world.clock)
        publisher = world.publisher(faults, seed=rng.randrange(1 << 30))
        publisher._clock = clock
        source_errors = {rng.randrange(150): SourceError("network", retryable=True)} if rng.random() < 0.3 else {}
        source = ScriptedSource(
            events,
            advance=world.clock.advance,
            interval=rng.choice([0.0, 0.001, 0.02]),
            fail_at=lambda i, errors=source_errors: errors.pop(i, None),  # type: ignore[misc]
            batch_size=batch_size,
        )
        refused = publisher.refused
        pipeline = Pipeline(
            source=source,
            step=processing,
            publisher=publisher,
            token_store=world.store,
            clock=clock,
            metrics=world.metrics,
            settings=settings,
        )
        last_life = life == crashes
        if not last_life:

            def crash() -> None:
                raise Crash

            clock.call_later(rng.uniform(0.0, 2.0), crash)
        try:
            result = pipeline.run(world.start())
        except Crash:
            clock.alive = False
            publisher.kill()
            assert not refused, f"seed {seed}: {refused[0]}"
            continue
        assert not refused, f"seed {seed}: {refused[0]}"
        if not last_life:  # finished before the crash came: the crash hits an idle process
            clock.alive = False
        assert result.reason is StopReason.END_OF_SOURCE, (seed, result)
    world.clock.run_all()  # let messages in transit from dead processes land

    delivered_ids = {m.event_id for m in world.delivered if m.topic != "dlq"}
    assert publishable <= delivered_ids, f"seed {seed}: lost {len(publishable - delivered_ids)} events"
    assert first_delivery_order_kept(world.delivered), f"seed {seed}: per-document order broken"
    assert saved_tokens_monotone(world.store), f"seed {seed}: checkpoint moved backwards"
    assert world.metrics.max_in_flight <= max_in_flight, f"seed {seed}: in-flight above the bound"
    assert world.store.checkpoints[STREAM].token == events[-1].token, f"seed {seed}: final checkpoint"


@pytest.mark.parametrize("block", range(10))
def test_randomised_fault_injection(block: int) -> None:
    for seed in range(block * SCENARIOS // 10, (block + 1) * SCENARIOS // 10):
        run_scenario(seed)
