"""The MongoDB change stream source against a driver-level double (real bson values, real pymongo
exception classes and codes). See tests/integration/test_mongo_replica_set.py for the real server."""

from __future__ import annotations

import base64
from itertools import chain
from typing import Any

import orjson
import pytest
from bson import Timestamp, json_util
from pymongo.errors import AutoReconnect, NetworkTimeout, OperationFailure, ServerSelectionTimeoutError

from adapters.memory.simulated_clock import SimulatedClock
from adapters.mongo_source import MongoChangeSource, classify, cluster_time_of_token
from adapters.simulator import WorkloadSpec, generate_events
from application.pipeline import PipelineSettings, StopReason
from application.ports import Heartbeat, SourceError, SourceEvent, StartPosition
from domain.change_event import ClusterTime, OperationKind, ResumeToken
from tests.corpus import corpus_file
from tests.mongo_double import FakeChangeStream, FakeClient, operation_failure
from tests.pipeline_support import STREAM, World, step

COLLECTIONS = ["inventory", "transactions"]


def our_events(count: int = 30) -> list[dict[str, Any]]:
    """Our own real-format events: the simulator's Extended JSON decoded by bson, as watch() yields."""
    return [json_util.loads(orjson.dumps(e)) for e in generate_events(WorkloadSpec(count=count, documents=10))]


def source(client: FakeClient, **kwargs: Any) -> MongoChangeSource:
    return MongoChangeSource(client=client, database="warehouse", collections=COLLECTIONS, **kwargs)


def read_all(src: MongoChangeSource, start: StartPosition | None = None) -> list[Any]:
    return list(chain.from_iterable(src.read(start or StartPosition())))


def test_watch_arguments_for_each_start_and_server_version() -> None:
    src = source(FakeClient(), full_document_before_change="whenAvailable", batch_size=500, max_await_time_ms=250)
    token = ResumeToken(data="8265FAB4", type_bits="ggAE")
    pipeline, kwargs = src.watch_arguments(StartPosition(start_after=token), 21)
    assert pipeline[0] == {
        "$match": {
            "$or": [{"ns.coll": {"$in": COLLECTIONS}}, {"operationType": {"$in": ["dropDatabase", "invalidate"]}}]
        }
    }
    assert pipeline[-1] == {"$changeStreamSplitLargeEvent": {}}
    assert kwargs == {
        "full_document": "updateLookup",
        "full_document_before_change": "whenAvailable",
        "batch_size": 500,
        "max_await_time_ms": 250,
        "show_expanded_events": True,
        "start_after": {"_data": "8265FAB4", "_typeBits": base64.b64decode("ggAE")},
    }
    old_pipeline, old_kwargs = src.watch_arguments(StartPosition(at_time=ClusterTime(seconds=5, increment=1)), 13)
    assert len(old_pipeline) == 1  # no split stage before 7.0 (wire 21)
    assert "show_expanded_events" not in old_kwargs and "start_after" not in old_kwargs
    assert old_kwargs["start_at_operation_time"] == Timestamp(5, 1)
    _, now_kwargs = source(FakeClient(), full_document="default").watch_arguments(StartPosition(), 21)
    assert now_kwargs["full_document"] is None and "full_document_before_change" not in now_kwargs


def test_events_come_through_as_parsed_events() -> None:
    events = our_events()
    client = FakeClient(streams=[FakeChangeStream(steps=list(events))])
    items = read_all(source(client))
    assert [i.event.token.data for i in items] == [e["_id"]["_data"] for e in events]
    assert all(isinstance(i, SourceEvent) and i.event.kind is OperationKind.DATA for i in items)
    assert client.watch_calls[0][0] == "warehouse"


def test_every_corpus_shape_is_read() -> None:
    events = [json_util.loads(line) for line in corpus_file("server_shapes.jsonl").read_bytes().splitlines()]
    first_stream = events[:6]  # up to stream 1's invalidate
    rest = events[6:]
    client = FakeClient(streams=[FakeChangeStream(steps=first_stream), FakeChangeStream(steps=rest)])
    items = read_all(source(client))
    assert len(items) == 39
    assert {i.event.operation for i in items} >= {"insert", "rename", "invalidate", "endOfTransaction", "futureOpType"}
    invalidate_token = items[5].event.token
    assert client.watch_calls[1][2]["start_after"]["_data"] == invalidate_token.data  # restarted with startAfter


def test_split_events_from_the_corpus_are_joined() -> None:
    events = [json_util.loads(line) for line in corpus_file("split_events.jsonl").read_bytes().splitlines()]
    expected = [orjson.loads(line) for line in corpus_file("split_events.expected.jsonl").read_bytes().splitlines()]
    items = read_all(source(FakeClient(streams=[FakeChangeStream(steps=events)])))
    assert [i.event.token.data for i in items] == [w["token"] for w in expected]


def test_idle_stream_yields_each_post_batch_token_once() -> None:
    events = our_events(3)
    post_batch = [{"_data": "82" + "7" * 8 + "00000001" + "04"}, {"_data": "82" + "7" * 8 + "00000002" + "04"}]
    stream = FakeChangeStream(steps=[*events, None, None, None], post_batch_tokens=[post_batch[0], post_batch[1]])
    items = read_all(source(FakeClient(streams=[stream])))
    heartbeats = [i for i in items if isinstance(i, Heartbeat)]
    assert [h.token.data for h in heartbeats] == [post_batch[0]["_data"], post_batch[1]["_data"]]
    assert heartbeats[0].cluster_time == ClusterTime(seconds=0x77777777, increment=1)


def test_cluster_time_is_read_from_a_token() -> None:
    assert cluster_time_of_token("8265FAB3A3000000022B04") == ClusterTime(seconds=0x65FAB3A3, increment=2)
    assert cluster_time_of_token("not-a-token") is None


@pytest.mark.parametrize(
    ("error", "fragment"),
    [
        (operation_failure(286, "Resume of change stream was not possible"), "fallen off the oplog"),
        (operation_failure(280, "cannot resume"), "ChangeStreamFatalError"),
        (operation_failure(260, "bad token"), "InvalidResumeToken"),
        (operation_failure(10334, "BSONObj size: 17000000 is invalid"), "BSONObjectTooLarge"),
        (operation_failure(18, "Authentication failed"), "authentication failed"),
    ],
)
def test_fatal_errors_stop_with_a_recovery(error: OperationFailure, fragment: str) -> None:
    classified = classify(error, stream_id="warehouse")
    assert not classified.retryable and fragment in str(classified)
    assert "warehouse" in classified.recovery or "credentials" in classified.recovery


@pytest.mark.parametrize(
    "error",
    [
        operation_failure(43, "cursor not found", labels=["ResumableChangeStreamError"]),
        operation_failure(91, "shutdown in progress", labels=["ResumableChangeStreamError"]),
        AutoReconnect("connection reset"),
        NetworkTimeout("timed out"),
        ServerSelectionTimeoutError("no primary"),
    ],
)
def test_transient_errors_are_retryable(error: Exception) -> None:
    assert classify(error, stream_id="warehouse").retryable


def test_errors_raised_by_the_driver_become_source_errors() -> None:
    stream = FakeChangeStream(steps=[*our_events(2), operation_failure(286, "history lost")])
    with pytest.raises(SourceError, match="fallen off the oplog") as error:
        read_all(source(FakeClient(streams=[stream])))
    assert "connector admin tokens set warehouse --at" in error.value.recovery


def test_secrets_are_redacted_from_error_messages() -> None:
    error = ServerSelectionTimeoutError("mongodb://admin:hunter2@db:27017 unreachable")
    assert "hunter2" not in str(classify(error, stream_id="warehouse"))


@pytest.mark.parametrize("code", [286, 280, 260, 10334])
def test_fatal_stream_errors_stop_the_pipeline_without_moving_the_checkpoint(code: int) -> None:
    world = World()
    events = our_events(40)
    client = FakeClient(streams=[FakeChangeStream(steps=[*events[:25], operation_failure(code, "fatal")])])
    pipeline = world.pipeline([], source=source(client), processing=step(), settings=PipelineSettings(stream_id=STREAM))
    result = pipeline.run(StartPosition())
    assert result.reason is StopReason.FATAL
    assert result.recovery is not None and "connector admin tokens" in result.recovery
    assert len(client.watch_calls) == 1, "a fatal error must never reopen the stream (e.g. from now)"
    stored = world.store.checkpoints[STREAM].token
    assert stored is not None and stored.data == events[24]["_id"]["_data"]
    ready, problems = pipeline._health.readiness()
    assert not ready and "worker" in problems


def test_resumable_error_reopens_after_the_last_event() -> None:
    world = World()
    world.clock = SimulatedClock()
    events = our_events(20)
    first = FakeChangeStream(steps=[*events[:8], AutoReconnect("reset")])
    second = FakeChangeStream(steps=list(events[8:]))
    client = FakeClient(streams=[first, second])
    pipeline = world.pipeline([], source=source(client), processing=step())
    pipeline_result = pipeline.run(StartPosition())
    assert pipeline_result.reason is StopReason.END_OF_SOURCE
    assert client.watch_calls[1][2]["start_after"]["_data"] == events[7]["_id"]["_data"]
