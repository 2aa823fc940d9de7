"""The pipeline on the real pymongo driver against a scripted primary: what an operator sees.

Checkpoints from idle heartbeats (lag follows the same watermark), readiness only once the aggregate answered, the
connector's own reopening (``startAfter``) after pymongo's single resume failed too, and stops that
happen once: a fatal code, an old server, an error that keeps coming back.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from adapters.mongo_source import MongoChangeSource
from application.pipeline import Pipeline, PipelineSettings, RunResult, StopReason
from application.ports import StartPosition
from tests.mongo_wire import Reader, ScriptedPrimary, token
from tests.pipeline_support import STREAM, World, step
from tests.unit.test_mongo_source import COLLECTIONS, our_events


@pytest.fixture
def primary() -> Iterator[ScriptedPrimary]:
    server = ScriptedPrimary(wire_version=21)
    yield server
    server.stop()


def pipeline_on(primary: ScriptedPrimary, world: World) -> tuple[Pipeline, MongoChangeSource]:
    src = MongoChangeSource(
        client=primary.client(), database="warehouse", collections=COLLECTIONS, max_await_time_ms=50, batch_size=1
    )
    return world.pipeline([], source=src, processing=step(), settings=PipelineSettings(stream_id=STREAM)), src  # type: ignore[arg-type]


def running(pipeline: Pipeline, start: StartPosition | None = None) -> Reader:
    return Reader(lambda: iter([pipeline.run(start or StartPosition())]))


def result_of(run: Reader) -> RunResult:
    [result] = run.take()
    return result  # type: ignore[no-any-return]


def stop(primary: ScriptedPrimary, pipeline: Pipeline, run: Reader) -> RunResult:
    primary.finish(pipeline.request_stop, run.thread)
    return result_of(run)


def test_idle_heartbeats_advance_the_checkpoint(primary: ScriptedPrimary) -> None:
    world = World()  # its clock reads 2025-01-01T00:00:00Z, the time of token(n) below
    pipeline, _ = pipeline_on(primary, world)
    run = running(pipeline)
    primary.aggregate()
    assert not pipeline._health.readiness()[0], "ready before the change stream answered"
    primary.batch(post_batch=token(1))
    for n in range(2, 5):
        primary.get_more()
        primary.batch(post_batch=token(n))
    primary.get_more()  # the previous heartbeat has been taken by the pipeline
    assert pipeline._health.readiness() == (True, {})
    primary.batch(post_batch=token(4))
    result = stop(primary, pipeline, run)
    assert result.reason is StopReason.STOP_REQUESTED
    stored = world.store.checkpoints[STREAM]
    assert stored.token is not None and stored.token.data == token(4)["_data"]


def test_the_connector_reopens_with_start_after_when_pymongo_resume_fails_too(primary: ScriptedPrimary) -> None:
    world = World()
    events = our_events(6)
    pipeline, _ = pipeline_on(primary, world)
    run = running(pipeline)
    primary.aggregate()
    primary.batch(events[:3], post_batch=events[2]["_id"])
    primary.get_more()
    primary.hang_up()
    assert primary.aggregate()["resumeAfter"] == events[2]["_id"]  # pymongo's own, single resume
    primary.hang_up()
    assert primary.aggregate()["resumeAfter"] == events[2]["_id"]  # pymongo retries a failed read once
    primary.hang_up()
    reopened = primary.aggregate()  # the pipeline's retry, after its backoff
    assert reopened["startAfter"] == events[2]["_id"] and "resumeAfter" not in reopened
    primary.batch(events[3:], post_batch=events[5]["_id"])
    primary.get_more()
    result = stop(primary, pipeline, run)
    assert result.reason is StopReason.STOP_REQUESTED and result.events == 6
    assert world.metrics.retries["source"] == 1
    assert world.store.checkpoints[STREAM].token.data == events[5]["_id"]["_data"]  # type: ignore[union-attr]


def test_a_fatal_code_stops_once_and_keeps_the_checkpoint_before_it(primary: ScriptedPrimary) -> None:
    world = World()
    events = our_events(5)
    pipeline, _ = pipeline_on(primary, world)
    run = running(pipeline)
    primary.aggregate()
    primary.batch(events, post_batch=events[4]["_id"])
    primary.get_more()
    primary.error(286, "Resume of change stream was not possible, as the resume point may no longer be in the oplog.")
    result = result_of(run)
    assert result.reason is StopReason.FATAL and "fallen off the oplog" in (result.error or "")
    assert "connector admin tokens set warehouse --at" in (result.recovery or "")
    assert world.store.checkpoints[STREAM].token.data == events[4]["_id"]["_data"]  # type: ignore[union-attr]
    assert run.ended() is None  # over: no aggregate "from now" followed (it would wait for an answer)


def test_an_error_that_keeps_coming_back_stops_after_three_tries(primary: ScriptedPrimary) -> None:
    world = World()
    pipeline, _ = pipeline_on(primary, world)
    run = running(pipeline)
    for _ in range(3):
        primary.aggregate()
        primary.error(40415, "BSON field '$changeStream.showExpandedEvents' is an unknown field.")
    result = result_of(run)
    assert result.reason is StopReason.FATAL and "code 40415" in (result.error or "")
    assert "README's Requirements" in (result.recovery or "")
    assert world.metrics.retries["source"] == 2


def test_an_old_server_stops_at_once_as_a_usage_error() -> None:
    primary = ScriptedPrimary(wire_version=7)
    try:
        world = World()
        pipeline, _ = pipeline_on(primary, world)
        result = result_of(running(pipeline))
        assert result.reason is StopReason.FATAL and result.usage_error
        assert "MongoDB 4.0 (wire version 7) is older than the supported floor, MongoDB 4.4" in (result.error or "")
        assert world.metrics.retries["source"] == 0
    finally:
        primary.stop()


def test_readiness_waits_for_the_first_answer(primary: ScriptedPrimary) -> None:
    world = World()
    pipeline, _ = pipeline_on(primary, world)
    run = running(pipeline, StartPosition(start_after=_token_of(token(1))))
    primary.aggregate()
    ready, problems = pipeline._health.readiness()
    assert not ready and "stream" in problems
    primary.batch(post_batch=token(1))
    primary.get_more()  # reading on: the heartbeat of the start token has been handled
    assert pipeline._health.readiness() == (True, {})
    stop(primary, pipeline, run)


def _token_of(document: dict[str, Any]) -> Any:
    from domain.change_event import ResumeToken

    return ResumeToken(document["_data"])
