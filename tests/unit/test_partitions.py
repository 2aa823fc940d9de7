"""``streams[].partitions``: every event belongs to exactly one stream unit, a document never changes
unit, the server-side filter says the same, and identical workers spread over the units by lease."""

from __future__ import annotations

import random
from collections import defaultdict
from itertools import chain
from typing import Any

from adapters.memory.scripted_source import ScriptedSource
from adapters.mongo_source import MongoChangeSource, unit_filter
from adapters.simulator import WorkloadSpec, generate_events
from application.health import HealthState
from application.owned_events import OwnedEventsSource
from application.partition_plan import ensure_plan_start
from application.pipeline import Pipeline, PipelineSettings, StopReason
from application.ports import Checkpoint, PlanStart, StartPosition
from application.worker import StreamWorker, WorkerSettings
from domain.change_event import ChangeEvent, ClusterTime, OperationKind, ResumeToken, parse_change_event
from domain.envelope import OrderingStrategy, event_id, ordering_key
from domain.extended_json import extended_json_to_json
from domain.partitions import plan_id, plan_units, taken_over_by
from tests.pipeline_support import World, data_of, first_delivery_order_kept, step, token_data, workload

UNITS = plan_units(database="warehouse", partitions=[("inventory", 4), ("transactions", 1)])


def simulated(count: int = 3000) -> list[ChangeEvent]:
    events = []
    for raw in generate_events(WorkloadSpec(seed=3, count=count, documents=200)):
        mapped = extended_json_to_json(raw)
        assert isinstance(mapped, dict)
        events.append(parse_change_event(mapped))
    return events


def ddl(operation: str, collection: str | None, n: int) -> ChangeEvent:
    raw: dict[str, Any] = {"_id": {"_data": token_data(n)}, "operationType": operation}
    raw["clusterTime"] = {"t": 1_735_689_600 + n // 4, "i": n % 4 + 1}  # as in pipeline_support.event
    raw["ns"] = {"db": "warehouse"} if collection is None else {"db": "warehouse", "coll": collection}
    return parse_change_event(raw)


def test_units_are_the_base_then_each_partition_by_index() -> None:
    assert [u.stream_id for u in UNITS] == [
        "warehouse",
        "warehouse.inventory.p0of4",
        "warehouse.inventory.p1of4",
        "warehouse.inventory.p2of4",
        "warehouse.inventory.p3of4",
    ]
    unpartitioned = plan_units(database="warehouse", partitions=[("inventory", 1), ("transactions", 1)])
    assert [u.stream_id for u in unpartitioned] == ["warehouse"]  # the stream id of CONTRACT §3, unchanged


def test_every_event_has_exactly_one_owner_and_a_document_never_moves() -> None:
    events = simulated()
    extra = [ddl("drop", "inventory", 90001), ddl("createIndexes", "transactions", 90002)]
    extra += [ddl("dropDatabase", None, 90003), ddl("drop", "unconfigured", 90004)]
    units_of_document: dict[str, set[str]] = defaultdict(set)
    for event in events + extra:
        owners = [u.stream_id for u in UNITS if u.owns(event)]
        if event.collection == "unconfigured":
            assert owners == []
            continue
        assert len(owners) == 1, (event.operation, event.collection, owners)
        if event.document_key is not None:
            units_of_document[f"{event.collection}:{event.document_id}"].add(owners[0])
        if event.collection == "transactions" or event.document_key is None:
            assert owners == ["warehouse"]  # unpartitioned collections and DDL stay on the base unit
    assert all(len(units) == 1 for units in units_of_document.values())
    busy = {next(iter(units)) for units in units_of_document.values()}
    assert busy == {u.stream_id for u in UNITS}  # the hash spreads 200 documents over every unit


def test_invalidate_reaches_every_unit_because_it_ends_every_stream() -> None:
    invalidate = ddl("invalidate", None, 5)
    assert invalidate.kind is OperationKind.INVALIDATE
    assert all(u.owns(invalidate) for u in UNITS)


def test_units_publish_to_disjoint_ordering_keys_when_buckets_are_a_multiple() -> None:
    keys_of: dict[str, set[str]] = defaultdict(set)
    for event in simulated():
        if event.collection != "inventory" or event.document_key is None:
            continue
        owner = next(u.stream_id for u in UNITS if u.owns(event))
        key = ordering_key(
            strategy=OrderingStrategy.BUCKETED, collection="inventory", document_key=event.document_key, buckets=16
        )
        keys_of[owner].add(key)
    units = list(keys_of.values())
    assert all(a.isdisjoint(b) for i, a in enumerate(units) for b in units[i + 1 :])


def test_the_server_side_filter_of_each_unit() -> None:
    base, first = UNITS[0], UNITS[1]
    assert unit_filter(base) == {
        "$or": [
            {"ns.coll": {"$in": ["transactions"]}},
            {"ns.coll": {"$in": ["inventory"]}, "documentKey._id": {"$exists": False}},
            {"operationType": {"$in": ["dropDatabase", "invalidate"]}},
        ]
    }
    share = {"$abs": {"$mod": [{"$toHashedIndexKey": "$documentKey._id"}, 4]}}
    assert unit_filter(first) == {
        "$or": [
            {"ns.coll": "inventory", "documentKey._id": {"$exists": True}, "$expr": {"$eq": [share, 0]}},
            {"operationType": "invalidate"},
        ]
    }
    source = MongoChangeSource(client=None, database="warehouse", collections=["inventory", "transactions"], unit=first)
    pipeline, _ = source.watch_arguments(StartPosition(), 21)
    assert pipeline[0] == {"$match": unit_filter(first)}  # before $changeStreamSplitLargeEvent, as it must be


def test_owned_events_source_keeps_one_units_share() -> None:
    events = simulated(500)
    world = World()
    inner = ScriptedSource(events, advance=world.clock.advance, interval=0.001)
    kept = [item.event for item in chain.from_iterable(OwnedEventsSource(inner, unit=UNITS[2]).read(StartPosition()))]
    assert kept == [e for e in events if UNITS[2].owns(e)]
    assert 0 < len(kept) < len(events)


def _worker(world: World, events: list[ChangeEvent], *, owner: str, built: list[str]) -> StreamWorker:
    units = plan_units(database="warehouse", partitions=[("inventory", 2)])
    by_id = {u.stream_id: u for u in units}

    def factory(generation: int, stream_id: str) -> Pipeline:
        built.append(stream_id)
        source = ScriptedSource(events, advance=world.clock.advance, interval=0.001)
        return Pipeline(
            source=OwnedEventsSource(source, unit=by_id[stream_id]),
            step=step(),
            publisher=world.publisher(),
            token_store=world.store,
            clock=world.clock,
            metrics=world.metrics,
            settings=PipelineSettings(stream_id=stream_id, generation=generation),
        )

    settings = WorkerSettings(stream_id="warehouse", owner=owner, lease_ttl_s=30, units=units)
    return StreamWorker(
        settings=settings,
        token_store=world.store,
        clock=world.clock,
        metrics=world.metrics,
        health=HealthState(),
        pipeline_factory=factory,
    )


def test_identical_workers_take_the_free_units_and_together_publish_everything() -> None:
    world = World()
    events = workload(random.Random(5), count=400, documents=40)
    held = world.store.acquire_lease("warehouse", owner="someone else", ttl_seconds=1e9)  # an instance on the base
    assert held is not None
    built: list[str] = []
    for owner in ("a", "b"):
        result = _worker(world, events, owner=owner, built=built).run()
        assert result.reason is StopReason.END_OF_SOURCE
        world.store.acquire_lease(built[-1], owner="keep it busy", ttl_seconds=1e9)  # still running, say
    assert built == ["warehouse.inventory.p0of2", "warehouse.inventory.p1of2"]
    published = [data_of(m)["event_id"] for m in world.delivered]
    assert sorted(published) == sorted({data_of(m)["event_id"] for m in world.delivered})  # no duplicates
    assert len(published) == 400  # every inventory event, all data events: none is the base unit's
    assert first_delivery_order_kept(world.delivered)
    assert set(world.store.checkpoints) == {"warehouse.inventory.p0of2", "warehouse.inventory.p1of2"}


def test_a_worker_reports_every_unit_and_the_generation_of_the_one_it_holds() -> None:
    """What the 'no unit owner' alert sums over: each instance says 0 for the units it does not hold."""
    world = World()
    world.store.acquire_lease("warehouse", owner="someone else", ttl_seconds=1e9)
    result = _worker(world, workload(random.Random(6), count=50, documents=10), owner="a", built=[]).run()
    assert result.reason is StopReason.END_OF_SOURCE
    held = "warehouse.inventory.p0of2"
    generation = world.store.generations[held]
    assert world.metrics.lease_history == [
        ("warehouse", False, None),
        (held, False, None),
        ("warehouse.inventory.p1of2", False, None),
        (held, True, generation),
        (held, False, None),  # released at the end of the source
    ]


def test_a_new_partition_starts_at_the_earliest_position_it_takes_over_from() -> None:
    world = World()
    early, late = ClusterTime(seconds=1_735_689_610, increment=1), ClusterTime(seconds=1_735_689_650, increment=1)
    world.store.save("warehouse", Checkpoint(token=ResumeToken(token_data(200)), cluster_time=late), generation=0)
    world.store.save(  # the same collection's earlier split into 3, stopped before the base's position
        "warehouse.inventory.p1of3", Checkpoint(token=ResumeToken(token_data(40)), cluster_time=early), generation=0
    )
    world.store.acquire_lease("warehouse", owner="base instance", ttl_seconds=1e9)
    events = workload(random.Random(6), count=400, documents=40)
    built: list[str] = []
    _worker(world, events, owner="a", built=built).run()
    assert built == ["warehouse.inventory.p0of2"]
    first_published = min(data_of(m)["cluster_time"] for m in world.delivered)
    assert first_published == "2025-01-01T00:00:10Z"  # from `early`, not `late`: re-read, nothing skipped


def test_a_fresh_start_loses_nothing_when_the_base_unit_reads_ahead_first() -> None:
    """The base unit filters the split collection's events out and checkpoints past them; split units
    starting later begin where the plan took effect (the top of the source), not at the base's position."""
    world = World()
    data_events = workload(random.Random(7), count=400, documents=40)
    events = [*data_events, ddl("createIndexes", "inventory", 400)]  # the base unit's, after all the rest
    built: list[str] = []
    for owner in ("a", "b", "c"):  # one after the other: the base first, each keeps its unit busy after
        result = _worker(world, events, owner=owner, built=built).run()
        assert result.reason is StopReason.END_OF_SOURCE
        world.store.acquire_lease(built[-1], owner="keep it busy", ttl_seconds=1e9)
    assert built == ["warehouse", "warehouse.inventory.p0of2", "warehouse.inventory.p1of2"]
    assert world.store.checkpoints["warehouse"].token == events[-1].token  # it read past every event
    published = [data_of(m)["event_id"] for m in world.delivered]
    assert len(published) == len(set(published))
    assert {event_id(e.token.data) for e in data_events} <= set(published)
    assert first_delivery_order_kept(world.delivered)


def test_a_plan_is_recorded_once_before_its_units_start_and_the_first_writer_wins() -> None:
    world = World()
    events = workload(random.Random(8), count=40, documents=5)
    _worker(world, events, owner="a", built=[]).run()
    plan = plan_id(plan_units(database="warehouse", partitions=[("inventory", 2)]))
    assert plan == "warehouse|inventory=2"
    recorded = world.store.plans[plan]
    assert recorded.cluster_time is None  # a file's "now" is its top, common to every unit
    late = ClusterTime(seconds=1_735_689_650, increment=1)
    assert world.store.record_plan(plan, PlanStart(cluster_time=late)) == recorded


def test_a_fresh_mongodb_plan_pins_now_or_takes_the_configured_time() -> None:
    world = World()
    units = plan_units(database="warehouse", partitions=[("inventory", 3)])
    pinned = ensure_plan_start(store=world.store, units=units, clock=world.clock, start_time=None, pin_now=True)
    assert pinned.cluster_time == ClusterTime(seconds=int(world.clock.now().timestamp()), increment=0)
    configured = ClusterTime(seconds=1_700_000_000, increment=0)
    other = plan_units(database="warehouse", partitions=[("inventory", 4)])
    assert taken_over_by(other, "warehouse.inventory.p0of3")
    world.store.checkpoints.clear()
    started = ensure_plan_start(store=world.store, units=other, clock=world.clock, start_time=configured, pin_now=True)
    assert started.cluster_time == configured


def test_what_a_new_partition_inherits_from() -> None:
    unit = UNITS[1]  # warehouse.inventory.p0of4
    assert unit.inherits_from("warehouse")
    assert unit.inherits_from("warehouse.inventory.p2of3")  # an earlier split
    assert not unit.inherits_from("warehouse.inventory.p3of4")  # a sibling: its own position
    assert not unit.inherits_from("warehouse.transactions.p0of2")
    assert not UNITS[0].inherits_from("warehouse.inventory.p0of4")  # the base keeps its own token


def test_the_container_gives_each_unit_its_own_mongodb_filter() -> None:
    from entrypoints.config import ConnectorConfig, StreamConfig
    from entrypoints.container import build_container

    streams = (
        StreamConfig(collection="inventory", topic="i", document_type="inventory", partitions=4),
        StreamConfig(collection="transactions", topic="t"),
    )
    container = build_container(ConnectorConfig(streams=streams))  # MongoClient connects lazily: no server needed
    for_unit = container.source()
    assert [u.stream_id for u in container.units()] == [u.stream_id for u in UNITS]
    for unit in UNITS:
        source = for_unit(unit)
        assert isinstance(source, MongoChangeSource)
        pipeline, _ = source.watch_arguments(StartPosition(), 21)
        assert pipeline[0] == {"$match": unit_filter(unit)}
