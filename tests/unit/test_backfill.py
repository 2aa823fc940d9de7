"""Backfill with the real pymongo against a scripted primary (find/getMore on the wire), and in-memory
Pub/Sub and token store."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from bson import ObjectId, Timestamp

from adapters.memory.metrics import RecordingMetrics
from adapters.memory.publisher import InMemoryPublisher
from adapters.memory.simulated_clock import SimulatedClock
from adapters.memory.token_store import InMemoryTokenStore
from adapters.snapshot_readers import cluster_time_now, mongo_documents
from application.backfill import Backfill, BackfillSettings, backfill_stream_id, hand_off
from application.backoff import RetryPolicy
from application.ports import Checkpoint
from domain.change_event import ClusterTime, ResumeToken
from domain.envelope import OrderingStrategy, ordering_key
from tests.mongo_wire import ScriptedPrimary, ServedCollection
from tests.pipeline_support import step


def inventory(n: int, *, valid: bool = True) -> dict:
    return {"_id": ObjectId(f"{n:024x}"), "_schema_version": "v1", "product_id": f"P{n}", "warehouse_id": "W",
            "quantity": n if valid else -1, "last_updated": "2024-03-20T10:00:00Z"}  # fmt: skip


@pytest.fixture
def primary() -> Iterator[ScriptedPrimary]:
    server = ScriptedPrimary(wire_version=21, extra_hello={"operationTime": Timestamp(1_700_000_000, 7)})
    yield server
    server.stop()


def collection_of(primary: ScriptedPrimary, documents: list[dict]) -> tuple[ServedCollection, Any]:
    served = ServedCollection(primary, documents)
    return served, primary.client()["warehouse"]["inventory"]


class Crash(Exception):
    pass


def crash_after(documents, count):  # type: ignore[no-untyped-def]
    for index, item in enumerate(documents):
        if index == count:
            raise Crash
        yield item


def make(store: InMemoryTokenStore, clock: SimulatedClock, publisher: InMemoryPublisher) -> Backfill:
    return Backfill(step=step(buckets=16), publisher=publisher, retry=RetryPolicy(), token_store=store, clock=clock,
                    metrics=RecordingMetrics(), settings=BackfillSettings(database="warehouse", collection="inventory",
                    checkpoint_interval_s=0.05, max_in_flight_messages=20))  # fmt: skip


def test_documents_arrive_as_snapshots_with_change_event_ordering_keys(primary: ScriptedPrimary) -> None:
    clock = SimulatedClock()
    store, publisher = InMemoryTokenStore(clock=clock), InMemoryPublisher(clock=clock)
    _, collection = collection_of(primary, [inventory(n, valid=n % 10 != 0) for n in range(1, 201)])
    report = make(store, clock, publisher).run(mongo_documents(collection, after=None))
    assert report.read == 200 and report.published == 180 and report.rejected == {"validation_failed": 20}
    data = [orjson.loads(m.data) for m in publisher.delivered]
    assert {d["operation"] for d in data} == {"snapshot"}
    assert all(d["schema"] == {"type": "inventory", "version": "v2", "source_version": "v1"} for d in data)
    first = publisher.delivered[0]
    key = orjson.loads(first.data)["document_key"]
    assert first.ordering_key == ordering_key(strategy=OrderingStrategy.BUCKETED, collection="inventory",
                                              document_key=key, buckets=16)  # fmt: skip
    stream = backfill_stream_id("warehouse", "inventory")
    assert store.checkpoints[stream].token is not None
    saved = [checkpoint.token.data for name, checkpoint, _ in store.saves if name == stream]  # type: ignore[union-attr]
    assert len(saved) > 1 and saved == sorted(saved), "saved like checkpoints, in order"
    assert store.generations[stream] == 1, "one lease per run, not a generation bump per save"
    assert stream not in store.held, "released at the end"


def test_resume_after_a_crash_publishes_every_document_with_stable_ids(primary: ScriptedPrimary) -> None:
    clock = SimulatedClock()
    store, publisher = InMemoryTokenStore(clock=clock), InMemoryPublisher(clock=clock)
    documents = [inventory(n) for n in range(1, 301)]
    served, collection = collection_of(primary, documents)
    with pytest.raises(Crash):
        make(store, clock, publisher).run(crash_after(mongo_documents(collection, after=None), 170))
    clock.run_all()
    resumed = make(store, clock, publisher)
    after = resumed.resume_after()
    assert after is not None and "$oid" in after
    report = resumed.run(mongo_documents(collection, after=after))
    resumed_from = served.filters[-1]["_id"]["$gt"]
    assert isinstance(resumed_from, ObjectId)  # the exact BSON type, from canonical Extended JSON
    assert ObjectId(f"{1:024x}") <= resumed_from < ObjectId(f"{170:024x}")  # before the crash point
    ids = [m.event_id for m in publisher.delivered]
    assert len(set(ids)) == 300 and report.read >= 130
    again = InMemoryPublisher(clock=clock)
    make(InMemoryTokenStore(clock=clock), clock, again).run(mongo_documents(collection, after=None))
    assert {m.event_id for m in again.delivered} == set(ids)  # re-running gives the same event ids


def test_hand_off_sets_an_empty_stream_to_the_scan_time_and_leaves_a_running_one(primary: ScriptedPrimary) -> None:
    started = cluster_time_now(primary.client())
    assert started == ClusterTime(seconds=1_700_000_000, increment=7)
    store = InMemoryTokenStore()
    from datetime import UTC, datetime

    assert "set to start" in hand_off(store=store, stream_id="warehouse", scan_started=started, now=datetime.now(UTC))
    stored = store.checkpoints["warehouse"]
    assert stored.token is None and stored.cluster_time == started
    store.checkpoints["warehouse"] = Checkpoint(token=ResumeToken("82AA"), cluster_time=None)
    assert "already covers" in hand_off(store=store, stream_id="warehouse", scan_started=started, now=datetime.now(UTC))
    assert store.checkpoints["warehouse"].token == ResumeToken("82AA")
