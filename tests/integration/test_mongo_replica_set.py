"""The MongoDB source against a real replica set. Runs only when CONNECTOR_TEST_MONGODB_URI is set
(``docker compose -f docker/compose.yaml up mongo`` gives one); skipped here, where no server can run."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
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
    for item in source.read(start):
        items.append(item)
        if sum(isinstance(i, SourceEvent) for i in items) >= count:
            source.close()
    return items


def test_changes_arrive_and_resume_after_a_token(database: Any) -> None:
    source = MongoChangeSource(
        client=database.client, database=database.name, collections=["inventory"], max_await_time_ms=200
    )
    start = StartPosition()
    iterator = source.read(start)
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
