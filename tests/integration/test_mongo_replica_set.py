"""The MongoDB source against a real replica set. Runs only when CONNECTOR_TEST_MONGODB_URI is set
(``docker compose -f docker/compose.yaml up mongo`` gives one); skipped here, where no server can run."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from itertools import chain
from typing import Any

import pytest

from adapters.mongo_source import MongoChangeSource
from application.ports import Heartbeat, SourceEvent, StartPosition

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
