"""Lease renewal: on a timer of its own (never behind a checkpoint save), a deadline on every call, a
slow or unreachable store retried without stopping the unit, a lease taken over reported at once."""

from __future__ import annotations

import threading
from pathlib import Path

import orjson
from dependency_injector import providers

from adapters.memory.simulated_clock import SimulatedClock
from adapters.memory.token_store import InMemoryTokenStore
from adapters.simulator import WorkloadSpec, generate_events
from application.lease_keeper import LeaseKeeper
from application.ports import Checkpoint, Lease
from entrypoints.config import ConnectorConfig, JsonlConfig, PubsubConfig, TokenStoreConfig
from entrypoints.container import build_container


class SavesHang(InMemoryTokenStore):
    """A store whose checkpoint saves hang until released, as Firestore's did under load."""

    def __init__(self) -> None:
        super().__init__()
        self.saving = threading.Event()
        self.release = threading.Event()
        self.renewed_while_saving = threading.Event()

    def save(self, stream_id: str, checkpoint: Checkpoint, *, generation: int) -> None:
        self.saving.set()
        self.release.wait(timeout=120)
        super().save(stream_id, checkpoint, generation=generation)

    def renew_lease(self, lease: Lease, *, ttl_seconds: float) -> Lease:
        renewed = super().renew_lease(lease, ttl_seconds=ttl_seconds)
        if self.saving.is_set() and not self.release.is_set():
            self.renewed_while_saving.set()
        return renewed


def test_the_lease_is_renewed_while_a_checkpoint_save_hangs(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in generate_events(WorkloadSpec(seed=1, count=50))))
    config = ConnectorConfig(
        source="jsonl",
        jsonl=JsonlConfig(path=str(events), follow=True),
        pubsub=PubsubConfig(backend="memory"),
        token_store=TokenStoreConfig(backend="memory", lease_seconds=3, checkpoint_interval_ms=100),
    )
    container = build_container(config)
    store = SavesHang()
    container.token_store.override(providers.Object(store))
    worker = container.worker()
    thread = threading.Thread(target=worker.run, daemon=True)
    thread.start()
    try:
        assert store.saving.wait(timeout=60), "no checkpoint was attempted"
        assert store.renewed_while_saving.wait(timeout=60), "renewal waited behind the hanging save"
    finally:
        store.release.set()
        worker.request_stop()
        thread.join(timeout=60)
    assert not thread.is_alive()
    assert store.held == {}, "the lease was not released at stop"


def _keeper(clock: SimulatedClock, store: InMemoryTokenStore, lost: list[str]) -> LeaseKeeper:
    lease = store.acquire_lease("warehouse", owner="a", ttl_seconds=3)
    assert lease is not None
    return LeaseKeeper(store=store, clock=clock, lease=lease, ttl_s=3, on_lost=lost.append).start()


def test_a_healthy_lease_is_kept_for_as_long_as_the_unit_runs() -> None:
    clock = SimulatedClock()
    store = InMemoryTokenStore(clock=clock)
    lost: list[str] = []
    keeper = _keeper(clock, store, lost)
    clock.advance(60)
    assert lost == []
    assert store.acquire_lease("warehouse", owner="b", ttl_seconds=3) is None  # still held after 20 lease times
    held = keeper.stop()
    assert held is not None and held.owner == "a"
    clock.advance(10)
    assert lost == []  # stopped: no more renewals, no false alarm


def test_an_unreachable_store_is_retried_and_the_lease_kept_when_it_comes_back() -> None:
    clock = SimulatedClock()
    store = InMemoryTokenStore(clock=clock)
    lost: list[str] = []
    keeper = _keeper(clock, store, lost)
    store.down = True  # Firestore unreachable for two lease times: the unit keeps running meanwhile
    clock.advance(6)
    assert lost == [] and keeper.lease is not None
    store.down = False
    clock.advance(1.5)
    before = keeper.lease
    clock.advance(3)
    assert lost == [] and keeper.lease is not None and keeper.lease.expires_at > before.expires_at  # type: ignore[union-attr]
    assert store.acquire_lease("warehouse", owner="b", ttl_seconds=3) is None


def test_a_lease_taken_over_is_reported_lost_once() -> None:
    clock = SimulatedClock()
    store = InMemoryTokenStore(clock=clock)
    lost: list[str] = []
    _keeper(clock, store, lost)
    store.set_position("warehouse", Checkpoint(token=None, cluster_time=None))  # admin tokens set: fences out
    clock.advance(10)
    assert len(lost) == 1 and "owned by nobody" in lost[0]
