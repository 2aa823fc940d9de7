"""One contract, two token stores: the in-memory fake and Firestore (on its emulator)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from adapters.firestore_token_store import FirestoreTokenStore
from adapters.memory.token_store import InMemoryTokenStore
from application.ports import Checkpoint, LeaseLost, PlanStart, StaleCheckpoint, TokenStore
from domain.change_event import ClusterTime, ResumeToken

from .conftest import PROJECT


@pytest.fixture(params=["memory", "firestore"])
def make_store(request: pytest.FixtureRequest, unique: str) -> Callable[[], TokenStore]:
    if request.param == "memory":
        store = InMemoryTokenStore()
        return lambda: store
    request.getfixturevalue("firestore_env")
    return lambda: FirestoreTokenStore(project_id=PROJECT, collection=f"tokens_{unique}")


def checkpoint(n: int, *, type_bits: str | None = None) -> Checkpoint:
    return Checkpoint(
        token=ResumeToken(data=f"8265{n:012X}04", type_bits=type_bits),
        cluster_time=ClusterTime(seconds=1_700_000_000 + n, increment=1),
        updated_at=datetime(2025, 1, 1, tzinfo=UTC),
    )


def test_save_and_load_round_trip_the_whole_token(make_store: Callable[[], TokenStore]) -> None:
    store = make_store()
    assert store.load("warehouse") is None
    store.save("warehouse", checkpoint(5, type_bits="ggAE"), generation=0)
    loaded = make_store().load("warehouse")
    assert loaded is not None
    assert loaded.token == ResumeToken(data="8265000000000005" + "04", type_bits="ggAE")
    assert loaded.cluster_time == ClusterTime(seconds=1_700_000_005, increment=1)


def test_checkpoint_never_moves_backwards(make_store: Callable[[], TokenStore]) -> None:
    store = make_store()
    store.save("s", checkpoint(10), generation=0)
    with pytest.raises(StaleCheckpoint):
        store.save("s", checkpoint(9), generation=0)
    store.save("s", checkpoint(10), generation=0)  # the same token again is fine
    store.save("s", checkpoint(11), generation=0)
    loaded = store.load("s")
    assert loaded is not None and loaded.token == checkpoint(11).token


def test_lease_excludes_others_until_expiry_and_fences_the_old_owner(
    make_store: Callable[[], TokenStore],
) -> None:
    store = make_store()
    first = store.acquire_lease("s", owner="a", ttl_seconds=60)
    assert first is not None
    assert store.acquire_lease("s", owner="b", ttl_seconds=60) is None
    store.save("s", checkpoint(1), generation=first.generation)
    renewed = store.renew_lease(first, ttl_seconds=60)
    assert renewed.generation == first.generation and renewed.expires_at >= first.expires_at

    expired = store.acquire_lease("t", owner="a", ttl_seconds=-1)  # already expired
    assert expired is not None
    second = store.acquire_lease("t", owner="b", ttl_seconds=60)
    assert second is not None and second.generation > expired.generation
    with pytest.raises(LeaseLost):
        store.renew_lease(expired, ttl_seconds=60)
    store.save("t", checkpoint(2), generation=second.generation)
    with pytest.raises(StaleCheckpoint):  # the fenced-out owner's late checkpoint
        store.save("t", checkpoint(3), generation=expired.generation)


def test_release_lets_a_standby_take_over_at_once(make_store: Callable[[], TokenStore]) -> None:
    store = make_store()
    lease = store.acquire_lease("s", owner="a", ttl_seconds=60)
    assert lease is not None
    store.release_lease(lease)
    standby = store.acquire_lease("s", owner="b", ttl_seconds=60)
    assert standby is not None and standby.generation == lease.generation + 1


def test_delete_forgets_the_token_and_list_shows_streams(make_store: Callable[[], TokenStore]) -> None:
    store = make_store()
    store.save("a", checkpoint(1), generation=0)
    store.save("b", checkpoint(2), generation=0)
    assert [stream for stream, _ in store.list()] == ["a", "b"]
    store.delete("a")
    assert store.load("a") is None
    assert [stream for stream, _ in store.list()] == ["b"]


def test_a_plan_start_is_created_once_and_the_first_writer_wins(make_store: Callable[[], TokenStore]) -> None:
    store = make_store()
    assert store.plan_start("warehouse|inventory=3") is None
    first = PlanStart(cluster_time=ClusterTime(seconds=1_700_000_100, increment=2))
    recorded = store.record_plan("warehouse|inventory=3", first)
    assert recorded.cluster_time == first.cluster_time
    later = PlanStart(cluster_time=ClusterTime(seconds=1_700_000_900, increment=1))
    assert make_store().record_plan("warehouse|inventory=3", later).cluster_time == first.cluster_time
    assert make_store().plan_start("warehouse|inventory=3") == store.plan_start("warehouse|inventory=3")
    top = store.record_plan("warehouse|inventory=4", PlanStart(cluster_time=None))  # a file's top
    assert top.cluster_time is None and store.plan_start("warehouse|inventory=4") is not None
    assert store.list() == []  # a plan is not a stream: admin tokens list does not show it


def test_heartbeats_and_the_lease_table(make_store: Callable[[], TokenStore]) -> None:
    store = make_store()
    assert store.instances() == [] and store.leases() == []
    store.heartbeat("host-1", ttl_seconds=30, units=2)
    store.heartbeat("host-2", ttl_seconds=-1, units=0)  # already expired: listed, the caller compares times
    store.heartbeat("host-1", ttl_seconds=30, units=3)
    beats = make_store().instances()
    assert [(b.instance, b.units) for b in beats] == [("host-1", 3), ("host-2", 0)]
    assert beats[0].expires_at > datetime.now(UTC) > beats[1].expires_at
    lease = store.acquire_lease("warehouse.inventory.p0of2", owner="host-1", ttl_seconds=30)
    assert lease is not None and store.acquire_lease("warehouse", owner="host-2", ttl_seconds=30) is not None
    assert [(le.stream_id, le.owner, le.generation) for le in make_store().leases()] == [
        ("warehouse", "host-2", 1),
        ("warehouse.inventory.p0of2", "host-1", 1),
    ]
    store.release_lease(lease)
    store.leave("host-2")
    assert [le.stream_id for le in store.leases()] == ["warehouse"]
    assert [b.instance for b in store.instances()] == ["host-1"]
    assert store.list() == []  # neither heartbeats nor leases are checkpoints
