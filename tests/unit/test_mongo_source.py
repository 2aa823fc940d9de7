"""The MongoDB change stream source: the real pymongo driver against a scripted primary on the wire.

Each test plays the server (``tests/mongo_wire.py``): it awaits the driver's aggregate and getMore
commands, checks their shape and answers with batches, post-batch tokens, error codes or a hang-up.
So pymongo's own resume, its retryable reads and its cursor handling are the real ones. The same
scenarios run against a real replica set in tests/integration/test_mongo_replica_set.py.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from bson import Timestamp, json_util

from adapters.mongo_source import MongoChangeSource
from adapters.simulator import WorkloadSpec, generate_events
from application.ports import Heartbeat, SourceError, SourceEvent, StartPosition
from domain.change_event import ClusterTime, OperationKind, ResumeToken
from tests.corpus import corpus_file
from tests.mongo_wire import CURSOR_ID, Reader, ScriptedPrimary, captured_logs, token

COLLECTIONS = ["inventory", "transactions"]


def our_events(count: int = 30) -> list[dict[str, Any]]:
    """Our own real-format events: the simulator's Extended JSON decoded by bson, as a server sends them."""
    return [json_util.loads(orjson.dumps(e)) for e in generate_events(WorkloadSpec(count=count, documents=10))]


def tokens_of(items: list[Any]) -> list[str]:
    return [i.event.token.data if isinstance(i, SourceEvent) else i.token.data for i in items]


@pytest.fixture
def primary() -> Iterator[ScriptedPrimary]:
    server = ScriptedPrimary(wire_version=21)
    yield server
    server.stop()


def source(primary: ScriptedPrimary, **kwargs: Any) -> MongoChangeSource:
    """Batches of one event unless a test says otherwise: each event is handed on as it is read, so a
    test can await it before answering the next getMore."""
    settings: dict[str, Any] = {"batch_size": 1, "max_await_time_ms": 100, **kwargs}
    return MongoChangeSource(client=primary.client(), database="warehouse", collections=COLLECTIONS, **settings)


def reading(src: MongoChangeSource, start: StartPosition | None = None) -> Reader:
    """The source's items one by one (its batches flattened), read on a thread."""
    return Reader(lambda: (item for batch in src.read(start or StartPosition()) for item in batch))


@pytest.mark.parametrize(
    ("version", "expanded", "split"),
    [("5.0", False, False), ("6.0", True, False), ("7.0", True, True)],
)
def test_the_aggregate_has_the_shape_each_server_version_supports(version: str, expanded: bool, split: bool) -> None:
    wire = {"5.0": 13, "6.0": 17, "7.0": 21}[version]
    primary = ScriptedPrimary(wire_version=wire)
    try:
        before = "off" if version == "5.0" else "whenAvailable"
        src = source(primary, full_document_before_change=before, batch_size=500)
        start = StartPosition(start_after=ResumeToken(data="8265FAB4", type_bits="ggAE"))
        reader = reading(src, start)
        stage = primary.aggregate()
        assert primary.pending is not None
        command = primary.pending.doc
        expected: dict[str, Any] = {"fullDocument": "updateLookup", "startAfter": {"_data": "8265FAB4"}}
        if expanded:
            expected |= {"showExpandedEvents": True, "fullDocumentBeforeChange": "whenAvailable"}
        assert {k: v for k, v in stage.items() if k != "startAfter"} == {
            k: v for k, v in expected.items() if k != "startAfter"
        }
        assert stage["startAfter"]["_data"] == "8265FAB4" and bytes(stage["startAfter"]["_typeBits"]) == b"\x82\x00\x04"
        stages = [next(iter(s)) for s in command["pipeline"]]
        assert stages == ["$changeStream", "$match", *(["$changeStreamSplitLargeEvent"] if split else [])]
        assert command["cursor"] == {"batchSize": 500}
        primary.batch(post_batch={"_data": "8265FAB4"})
        assert isinstance(reader.take()[0], Heartbeat)  # the stream is open as soon as the aggregate answered
        primary.finish(src.close, reader.thread)
        assert reader.ended() is None
    finally:
        primary.stop()


def test_pre_images_on_a_server_before_6_0_stop_with_one_line() -> None:
    primary = ScriptedPrimary(wire_version=13)
    try:
        reader = reading(source(primary, full_document_before_change="required"))
        error = reader.ended()
        assert isinstance(error, SourceError) and error.usage and not error.retryable
        assert "MongoDB 6.0" in str(error) and "5.0" in str(error)
        assert "full_document_before_change" in error.recovery
    finally:
        primary.stop()


def test_batches_and_post_batch_tokens_come_through_in_order(primary: ScriptedPrimary) -> None:
    events = our_events(6)
    src = source(primary)
    reader = reading(src, StartPosition(at_time=ClusterTime(seconds=5, increment=1)))
    stage = primary.aggregate()
    assert stage["startAtOperationTime"] == Timestamp(5, 1)
    primary.batch(events[:3], post_batch=events[2]["_id"])
    first = reader.take(3)
    primary.get_more()
    primary.batch(events[3:], post_batch=token(90, seconds=1_735_689_700))
    rest = reader.take(3)
    assert tokens_of(first + rest) == [e["_id"]["_data"] for e in events]
    assert all(isinstance(i, SourceEvent) and i.event.kind is OperationKind.DATA for i in first + rest)
    primary.get_more()
    primary.batch(post_batch=token(90, seconds=1_735_689_700))
    primary.get_more()
    primary.batch(post_batch=token(90, seconds=1_735_689_700))  # the same token again: no second heartbeat
    primary.get_more()
    primary.batch(post_batch=token(91, seconds=1_735_689_701))
    heartbeats = reader.take(2)
    assert heartbeats == [
        Heartbeat(ResumeToken(token(90, seconds=1_735_689_700)["_data"]), ClusterTime(1_735_689_700, 90)),
        Heartbeat(ResumeToken(token(91, seconds=1_735_689_701)["_data"]), ClusterTime(1_735_689_701, 91)),
    ]
    assert src.position == ClusterTime(1_735_689_701, 91)
    primary.finish(src.close, reader.thread)


def test_events_go_on_in_batches_cut_at_batch_size_or_when_nothing_more_is_at_hand(primary: ScriptedPrimary) -> None:
    events = our_events(5)
    src = source(primary, batch_size=3, batch_latency_s=3600.0)
    batches = Reader(lambda: src.read(StartPosition()))
    primary.aggregate()
    primary.batch(events, post_batch=events[4]["_id"])
    [first] = batches.take()  # cut at batch_size, before the next getMore
    assert tokens_of(list(first)) == [e["_id"]["_data"] for e in events[:3]]
    [rest] = batches.take()  # the server's batch is used up: the rest goes on before the next getMore waits
    assert tokens_of(list(rest)) == [e["_id"]["_data"] for e in events[3:]]
    primary.get_more()
    primary.batch(post_batch=events[4]["_id"])
    primary.finish(src.close, batches.thread)


def test_pymongo_resumes_a_hang_up_itself_with_resume_after(primary: ScriptedPrimary) -> None:
    events = our_events(4)
    src = source(primary)
    reader = reading(src)
    primary.aggregate()
    primary.batch(events[:2], post_batch=events[1]["_id"])
    reader.take(2)
    primary.get_more()
    primary.hang_up()
    resumed = primary.aggregate()
    assert resumed["resumeAfter"] == events[1]["_id"]  # pymongo's own resume, once
    primary.batch(events[2:], post_batch=events[3]["_id"])
    assert tokens_of(reader.take(2)) == [e["_id"]["_data"] for e in events[2:]]
    primary.finish(src.close, reader.thread)
    assert reader.ended() is None


@pytest.mark.parametrize("code", [6, 43, 10107])
def test_resumable_codes_on_a_get_more_are_resumed_by_pymongo(primary: ScriptedPrimary, code: int) -> None:
    events = our_events(2)
    src = source(primary)
    reader = reading(src)
    primary.aggregate()
    primary.batch(events[:1], post_batch=events[0]["_id"])
    reader.take()
    primary.get_more()
    primary.error(code, "transient", labels=("ResumableChangeStreamError",))
    assert primary.aggregate()["resumeAfter"] == events[0]["_id"]
    primary.batch(events[1:], post_batch=events[1]["_id"])
    assert tokens_of(reader.take()) == [events[1]["_id"]["_data"]]
    primary.finish(src.close, reader.thread)


@pytest.mark.parametrize("code", [6, 43, 10107])
def test_resumable_codes_at_start_go_back_to_the_pipeline_as_retryable(primary: ScriptedPrimary, code: int) -> None:
    reader = reading(source(primary))
    primary.aggregate()
    primary.error(code, "transient")
    if code != 43:  # a retryable read error: pymongo retries the aggregate once itself
        primary.aggregate()
        primary.error(code, "transient")
    error = reader.ended()
    assert isinstance(error, SourceError) and error.retryable and str(code) in str(error)


@pytest.mark.parametrize("code", [286, 280, 260, 10334])
@pytest.mark.parametrize("where", ["start", "resume", "getMore"])
def test_fatal_codes_stop_with_the_command_that_recovers(primary: ScriptedPrimary, code: int, where: str) -> None:
    events = our_events(2)
    reader = reading(source(primary))
    primary.aggregate()
    if where != "start":
        primary.batch(events, post_batch=events[1]["_id"])
        reader.take(2)
        primary.get_more()
        if where == "resume":
            primary.hang_up()
            primary.aggregate()
    primary.error(code, "fatal")
    error = reader.ended()
    assert isinstance(error, SourceError) and not error.retryable and f"code {code}" in str(error)
    assert "connector admin tokens set warehouse --at" in error.recovery


def test_invalidate_then_start_after_its_token(primary: ScriptedPrimary) -> None:
    events = our_events(3)
    invalidate = {"_id": token(7), "operationType": "invalidate", "clusterTime": Timestamp(1_735_689_600, 7)}
    src = source(primary)
    reader = reading(src)
    primary.aggregate()
    primary.batch([events[0], invalidate], post_batch=invalidate["_id"], cursor_id=0)
    items = reader.take(2)
    assert items[1].event.kind is OperationKind.INVALIDATE
    assert primary.aggregate()["startAfter"] == invalidate["_id"]  # resumeAfter would refuse this token
    primary.batch(events[1:], post_batch=events[2]["_id"])
    assert tokens_of(reader.take(2)) == [e["_id"]["_data"] for e in events[1:]]
    primary.finish(src.close, reader.thread)


@pytest.fixture
def logs() -> Iterator[list[dict[str, Any]]]:
    with captured_logs() as captured:
        yield captured


def test_a_closed_cursor_without_invalidate_is_reopened_after_the_last_token(
    primary: ScriptedPrimary, logs: list[dict[str, Any]]
) -> None:
    events = our_events(3)
    src = source(primary)
    reader = reading(src)
    primary.aggregate()
    primary.batch(events[:2], post_batch=events[1]["_id"])
    reader.take(2)
    primary.get_more()
    primary.batch(post_batch=events[1]["_id"], cursor_id=0)  # cursor id 0: the server closed it
    assert primary.aggregate()["startAfter"] == events[1]["_id"]
    primary.batch(events[2:], post_batch=events[2]["_id"])
    assert tokens_of(reader.take()) == [events[2]["_id"]["_data"]]
    primary.finish(src.close, reader.thread)
    assert reader.ended() is None
    assert [entry["event"] for entry in logs if entry["log_level"] == "warning"] == ["change_stream_cursor_closed"]


def split(event: dict[str, Any], first: int, second: int) -> list[dict[str, Any]]:
    """The event as the split stage sends it: small fields first, the full document in fragment 2."""
    head = {k: v for k, v in event.items() if k not in ("_id", "fullDocument")}
    return [
        {"_id": token(first), "splitEvent": {"fragment": 1, "of": 2}, **head},
        {"_id": token(second), "splitEvent": {"fragment": 2, "of": 2}, "fullDocument": event["fullDocument"]},
    ]


def test_split_fragments_over_get_mores_with_a_hang_up_between(primary: ScriptedPrimary) -> None:
    event = our_events(1)[0]
    one, two = split(event, 11, 12)
    src = source(primary)
    reader = reading(src)
    primary.aggregate()
    primary.batch([one], post_batch=one["_id"])
    primary.get_more()  # no item yet: a pending fragment is never a heartbeat
    primary.hang_up()
    assert primary.aggregate()["resumeAfter"] == one["_id"]  # the server goes on with fragment 2
    primary.batch([two], post_batch=two["_id"])
    [whole] = reader.take()
    assert whole.event.token.data == two["_id"]["_data"]  # the last fragment's token
    assert whole.event.full_document["product_id"] == event["fullDocument"]["product_id"]
    assert whole.event.operation == "insert"
    primary.finish(src.close, reader.thread)


def test_a_malformed_event_stops_once_with_the_command_that_skips_it(primary: ScriptedPrimary) -> None:
    broken = {"_id": token(5), "operationType": "insert", "clusterTime": "not a timestamp"}
    reader = reading(source(primary))
    primary.aggregate()
    primary.batch([broken], post_batch=broken["_id"])
    error = reader.ended()
    assert isinstance(error, SourceError) and not error.retryable
    assert str(error).startswith("malformed_event: ")
    assert f"connector admin tokens set warehouse --token {token(5)['_data']}" in error.recovery


def test_an_unknown_error_is_retried_a_bounded_number_of_times(primary: ScriptedPrimary) -> None:
    src = source(primary)
    outcomes = []
    for _ in range(3):  # the pipeline calls read() again after each retryable failure
        reader = reading(src)
        primary.aggregate()
        primary.error(40415, "BSON field '$changeStream.showExpandedEvents' is an unknown field.")
        error = reader.ended()
        assert isinstance(error, SourceError)
        outcomes.append(error.retryable)
    assert outcomes == [True, True, False]
    assert "40415" in str(error) and "README's Requirements" in error.recovery


def test_an_unknown_error_on_get_more_is_bounded_too_though_each_open_succeeds(primary: ScriptedPrimary) -> None:
    src = source(primary)
    start = StartPosition(start_after=ResumeToken(token(1)["_data"]))
    outcomes = []
    for _ in range(3):
        reader = reading(src, start)
        primary.aggregate()
        primary.batch(post_batch=token(1))
        reader.take()  # the stream is open
        primary.get_more()
        primary.error(2, "BadValue")
        error = reader.ended()
        assert isinstance(error, SourceError)
        outcomes.append(error.retryable)
    assert outcomes == [True, True, False]


def test_an_old_server_is_refused_with_the_floor_and_its_version() -> None:
    primary = ScriptedPrimary(wire_version=8)
    try:
        error = reading(source(primary)).ended()
        assert isinstance(error, SourceError) and error.usage and not error.retryable
        assert str(error) == "MongoDB 4.2 (wire version 8) is older than the supported floor, MongoDB 4.4"
        assert "mongodb.uri" not in error.recovery
    finally:
        primary.stop()


def test_authentication_failure_stops_without_the_password_anywhere(
    primary: ScriptedPrimary, logs: list[dict[str, Any]]
) -> None:
    client = primary.client(username="connector", password="hunter2-secret", authMechanism="SCRAM-SHA-256")
    src = MongoChangeSource(client=client, database="warehouse", collections=COLLECTIONS)
    reader = reading(src)
    primary.pending = primary.receives("saslStart")
    primary.error(18, "Authentication failed.")
    error = reader.ended()
    assert isinstance(error, SourceError) and not error.retryable
    assert "authentication failed (code 18)" in str(error) and "credentials" in error.recovery
    assert "hunter2-secret" not in f"{error} {error.recovery} {logs}"


def test_every_corpus_shape_is_read(primary: ScriptedPrimary) -> None:
    events = [json_util.loads(line) for line in corpus_file("server_shapes.jsonl").read_bytes().splitlines()]
    src = source(primary)
    reader = reading(src)
    primary.aggregate()
    primary.batch(events[:6], post_batch=events[5]["_id"], cursor_id=0)  # up to stream 1's invalidate
    assert primary.aggregate()["startAfter"] == events[5]["_id"]
    primary.batch(events[6:], post_batch=events[-1]["_id"], cursor_id=CURSOR_ID)
    items = reader.take(39)
    assert {i.event.operation for i in items} >= {"insert", "rename", "invalidate", "endOfTransaction", "futureOpType"}
    primary.finish(src.close, reader.thread)
