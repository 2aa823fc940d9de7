"""The MongoDB source against a real replica set. Runs only when CONNECTOR_TEST_MONGODB_URI is set
(``docker compose -f docker/compose.yaml up mongo`` gives one); skipped here, where no server can run,
so these have never been run by us. They mirror the wire-level suite (tests/unit/test_mongo_source.py):
batches and post-batch tokens, heartbeats, resuming, invalidate, split events, fatal and unknown codes.
Hang-ups and injected codes use the server's ``failCommand`` fail point, which needs
``--setParameter enableTestCommands=1``; those tests are skipped without it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from itertools import chain
from typing import Any

import pytest

from adapters.mongo_source import MongoChangeSource
from application.ports import Heartbeat, SourceError, SourceEvent, StartPosition
from domain.change_event import ClusterTime

URI = os.environ.get("CONNECTOR_TEST_MONGODB_URI")
pytestmark = [
    pytest.mark.mongodb,
    pytest.mark.skipif(not URI, reason="CONNECTOR_TEST_MONGODB_URI not set: no MongoDB replica set to test against"),
]


@pytest.fixture
def database() -> Iterator[Any]:
    from pymongo import MongoClient

    client: Any = MongoClient(URI, serverSelectionTimeoutMS=5000)
    name = f"connector_test_{uuid.uuid4().hex[:8]}"
    try:
        yield client[name]
    finally:
        client.drop_database(name)
        client.close()


def read(source: MongoChangeSource, start: StartPosition, count: int) -> list[Any]:
    items = []
    for item in chain.from_iterable(source.read(start)):
        items.append(item)
        if sum(isinstance(i, SourceEvent) for i in items) >= count:
            source.close()
    return items


def test_changes_arrive_and_resume_after_a_token(database: Any) -> None:
    source = MongoChangeSource(
        client=database.client, database=database.name, collections=["inventory"], max_await_time_ms=200
    )
    start = StartPosition()
    iterator = chain.from_iterable(source.read(start))
    first = next(iterator)  # opens the stream; on an idle stream this is a heartbeat
    assert isinstance(first, Heartbeat)
    database.inventory.insert_one({"_id": 1, "quantity": 5})
    database.inventory.update_one({"_id": 1}, {"$set": {"quantity": 6}})
    database.other.insert_one({"_id": 1})  # filtered out server-side
    database.inventory.delete_one({"_id": 1})
    events = []
    for item in iterator:
        if isinstance(item, SourceEvent):
            events.append(item.event)
        if len(events) == 3:
            source.close()
    assert [e.operation for e in events] == ["insert", "update", "delete"]
    assert events[1].full_document == {"_id": 1, "quantity": 6}
    resumed = read(source, StartPosition(start_after=events[0].token), 2)
    assert [i.event.operation for i in resumed if isinstance(i, SourceEvent)] == ["update", "delete"]


def test_partition_units_split_a_collection_server_side(database: Any) -> None:
    """Every document event reaches exactly one partition unit; DDL reaches the base unit."""
    from domain.change_event import ClusterTime
    from domain.partitions import plan_units

    units = plan_units(database=database.name, partitions=[("inventory", 3)])
    database.create_collection("inventory")
    operation_time = database.client.admin.command("hello")["operationTime"]
    start = StartPosition(at_time=ClusterTime(seconds=operation_time.time, increment=operation_time.inc))
    database.inventory.insert_many([{"_id": n, "quantity": n} for n in range(60)])
    database.inventory.drop()
    owners: dict[Any, list[str]] = {}
    ddl: list[str] = []
    for unit in units:
        source = MongoChangeSource(
            client=database.client, database=database.name, collections=["inventory"], max_await_time_ms=200, unit=unit
        )
        items = []
        for item in chain.from_iterable(source.read(start)):
            items.append(item)
            if isinstance(item, Heartbeat) and any(isinstance(i, SourceEvent) for i in items):  # caught up
                source.close()
        for item in items:
            if isinstance(item, SourceEvent) and item.event.document_key is not None:
                owners.setdefault(item.event.document_id, []).append(unit.stream_id)
            elif isinstance(item, SourceEvent) and item.event.operation == "drop":
                ddl.append(unit.stream_id)
    assert sorted(owners) == list(range(60))
    assert all(len(found) == 1 for found in owners.values())
    assert len({found[0] for found in owners.values()}) == 3
    assert ddl == [database.name]


def wire_version(database: Any) -> int:
    return int(database.client.admin.command("hello")["maxWireVersion"])


@pytest.fixture
def fail_point(database: Any) -> Iterator[Any]:
    """``failCommand`` on the server: ``fail(commands, times=1, **data)``; switched off afterwards."""
    admin = database.client.admin

    def fail(commands: list[str], *, times: int = 1, **data: Any) -> None:
        admin.command("configureFailPoint", "failCommand", mode={"times": times},
                      data={"failCommands": commands, **data})  # fmt: skip

    try:
        fail(["ping"], times=0)
    except Exception as error:  # OperationFailure: test commands are not enabled on this server
        pytest.skip(f"failCommand is not available (start mongod with enableTestCommands=1): {error}")
    yield fail
    admin.command("configureFailPoint", "failCommand", mode="off")


def events_of(source: MongoChangeSource, start: StartPosition, count: int, act: Any = None) -> list[Any]:
    """Open the stream, run ``act`` once it is open, and read ``count`` events."""
    events: list[Any] = []
    for item in chain.from_iterable(source.read(start)):
        if act is not None:
            act()
            act = None
        if isinstance(item, SourceEvent):
            events.append(item.event)
            if len(events) == count:
                source.close()
    return events


def test_batches_post_batch_tokens_and_heartbeats(database: Any) -> None:
    source = MongoChangeSource(client=database.client, database=database.name, collections=["inventory"],
                               batch_size=3, max_await_time_ms=200)  # fmt: skip
    seen: list[Any] = []
    for item in chain.from_iterable(source.read(StartPosition())):
        if not seen:
            database.inventory.insert_many([{"_id": n} for n in range(10)])
        seen.append(item)
        heartbeats_after = [i for i in seen if isinstance(i, Heartbeat)]
        if sum(isinstance(i, SourceEvent) for i in seen) == 10 and len(heartbeats_after) >= 3:
            source.close()
    assert [i.event.document_id for i in seen if isinstance(i, SourceEvent)] == list(range(10))
    times = [i.cluster_time for i in seen if isinstance(i, Heartbeat) and i.cluster_time is not None]
    assert times == sorted(times)  # heartbeats move the position forward


def test_expanded_events_and_the_split_stage_by_server_version(database: Any) -> None:
    source = MongoChangeSource(client=database.client, database=database.name, collections=["inventory"],
                               max_await_time_ms=200)  # fmt: skip
    pipeline, kwargs = source.watch_arguments(StartPosition(), wire_version(database))
    database.inventory.insert_one({"_id": 1})
    with database.watch(pipeline, **kwargs) as stream:  # the server accepts the shape for its version
        assert stream.alive
    if wire_version(database) < 17:
        pytest.skip("expanded events need MongoDB 6.0+")
    events = events_of(source, StartPosition(), 1, act=lambda: database.inventory.create_index("sku"))
    assert events[0].operation == "createIndexes"


def test_invalidate_then_start_after_it(database: Any) -> None:
    source = MongoChangeSource(client=database.client, database=database.name, collections=["inventory"],
                               max_await_time_ms=200)  # fmt: skip
    operation_time = database.client.admin.command("hello")["operationTime"]
    start = StartPosition(at_time=ClusterTime(seconds=operation_time.time, increment=operation_time.inc))
    database.inventory.insert_one({"_id": 1})
    database.client.drop_database(database.name)  # a database stream ends with an invalidate
    database.inventory.insert_one({"_id": 2})  # after it: read only by reopening with startAfter
    events = events_of(source, start, 5)
    assert [e.operation for e in events] == ["insert", "drop", "dropDatabase", "invalidate", "insert"]


def test_split_events_are_joined(database: Any) -> None:
    if wire_version(database) < 21:
        pytest.skip("split events need MongoDB 7.0+")
    database.create_collection("inventory", changeStreamPreAndPostImages={"enabled": True})
    big = "x" * (9 * 1024 * 1024)
    database.inventory.insert_one({"_id": 1, "blob": big})
    source = MongoChangeSource(client=database.client, database=database.name, collections=["inventory"],
                               full_document="required", full_document_before_change="required",
                               max_await_time_ms=200)  # fmt: skip
    replaced = {"_id": 1, "blob": big + "y"}
    events = events_of(source, StartPosition(), 1, act=lambda: database.inventory.replace_one({"_id": 1}, replaced))
    assert events[0].operation == "replace" and len(events[0].full_document["blob"]) == len(big) + 1


def test_history_lost_stops_with_the_recovery(database: Any) -> None:
    source = MongoChangeSource(client=database.client, database=database.name, collections=["inventory"])
    with pytest.raises(SourceError) as error:
        list(source.read(StartPosition(at_time=ClusterTime(seconds=1, increment=1))))
    assert not error.value.retryable and "connector admin tokens set" in error.value.recovery


def test_an_option_the_server_refuses_stops_after_bounded_tries(database: Any) -> None:
    source = MongoChangeSource(client=database.client, database=database.name, collections=["inventory"],
                               full_document="notAnOption")  # fmt: skip
    outcomes = []
    for _ in range(3):
        with pytest.raises(SourceError) as error:
            list(source.read(StartPosition()))
        outcomes.append(error.value.retryable)
    assert outcomes == [True, True, False]


def test_a_hang_up_is_resumed_by_pymongo(database: Any, fail_point: Any) -> None:
    source = MongoChangeSource(client=database.client, database=database.name, collections=["inventory"],
                               max_await_time_ms=200)  # fmt: skip

    def act() -> None:
        fail_point(["getMore"], closeConnection=True)
        database.inventory.insert_many([{"_id": n} for n in range(3)])

    assert [e.document_id for e in events_of(source, StartPosition(), 3, act=act)] == [0, 1, 2]


@pytest.mark.parametrize("code", [6, 43, 10107])
def test_resumable_codes_on_get_more(database: Any, fail_point: Any, code: int) -> None:
    source = MongoChangeSource(client=database.client, database=database.name, collections=["inventory"],
                               max_await_time_ms=200)  # fmt: skip

    def act() -> None:
        fail_point(["getMore"], errorCode=code, errorLabels=["ResumableChangeStreamError"])
        database.inventory.insert_many([{"_id": n} for n in range(2)])

    assert [e.document_id for e in events_of(source, StartPosition(), 2, act=act)] == [0, 1]


@pytest.mark.parametrize("code", [286, 280, 260, 10334])
def test_fatal_codes_on_get_more(database: Any, fail_point: Any, code: int) -> None:
    source = MongoChangeSource(client=database.client, database=database.name, collections=["inventory"],
                               max_await_time_ms=200)  # fmt: skip
    with pytest.raises(SourceError) as error:
        events_of(source, StartPosition(), 1, act=lambda: fail_point(["getMore"], errorCode=code))
    assert not error.value.retryable and f"code {code}" in str(error.value)


def test_a_wrong_password_stops_without_showing_it(database: Any) -> None:
    from urllib.parse import urlsplit

    from pymongo import MongoClient

    parts = urlsplit(URI or "")
    if "@" not in parts.netloc:
        pytest.skip("CONNECTOR_TEST_MONGODB_URI has no credentials: auth is not enabled")
    host = parts.netloc.split("@", 1)[1]
    client: Any = MongoClient(f"mongodb://connector:hunter2-secret@{host}/?{parts.query}",
                              serverSelectionTimeoutMS=5000)  # fmt: skip
    source = MongoChangeSource(client=client, database=database.name, collections=["inventory"])
    with pytest.raises(SourceError) as error:
        list(source.read(StartPosition()))
    assert not error.value.retryable and "hunter2-secret" not in f"{error.value} {error.value.recovery}"
