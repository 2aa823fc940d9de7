"""The worker's lease loop tells an unreachable token store apart from another instance holding the
lease: readiness names the real cause (a new user with a wrong FIRESTORE_EMULATOR_HOST was told
"other instances hold every stream's lease" while no other instance existed)."""

from __future__ import annotations

import random

from adapters.memory.scripted_source import ScriptedSource
from application.health import HealthState
from application.pipeline import Pipeline, PipelineSettings, StopReason
from application.worker import StreamWorker, WorkerSettings
from tests.pipeline_support import World, step, workload


def worker(world: World, health: HealthState) -> StreamWorker:
    events = workload(random.Random(9), count=20, documents=5)

    def factory(generation: int, stream_id: str) -> Pipeline:
        return Pipeline(
            source=ScriptedSource(events, advance=world.clock.advance, interval=0.01),
            step=step(),
            publisher=world.publisher(),
            token_store=world.store,
            clock=world.clock,
            metrics=world.metrics,
            settings=PipelineSettings(stream_id=stream_id, generation=generation),
            health=health,
        )

    settings = WorkerSettings(stream_id="warehouse", owner="me", lease_ttl_s=30)
    return StreamWorker(settings=settings, token_store=world.store, clock=world.clock, metrics=world.metrics,
                        health=health, pipeline_factory=factory)  # fmt: skip


def lease_problem_at(world: World, health: HealthState, seconds: float, seen: list[str]) -> None:
    world.clock.call_later(seconds, lambda: seen.append(health.readiness()[1].get("lease", "")))


def test_an_unreachable_store_is_reported_as_such_and_the_lease_taken_once_it_answers() -> None:
    world, health, seen = World(), HealthState(), []
    world.store.down = True
    lease_problem_at(world, health, 15, seen)
    world.clock.call_later(25, lambda: setattr(world.store, "down", False))
    result = worker(world, health).run()
    assert "token store is unreachable" in seen[0] and "standby" not in seen[0]
    assert result.reason is StopReason.END_OF_SOURCE and len(world.delivered) > 0


def test_a_lease_held_by_another_instance_is_standby() -> None:
    world, health, seen = World(), HealthState(), []
    world.store.acquire_lease("warehouse", owner="another instance", ttl_seconds=20)
    lease_problem_at(world, health, 15, seen)
    result = worker(world, health).run()  # takes over once the other lease expires
    assert seen[0].startswith("standby: other instances hold")
    assert result.reason is StopReason.END_OF_SOURCE
