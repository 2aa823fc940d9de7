"""Balanced unit leases on the simulated clock: 1,000 random schedules of instances joining, leaving
and crashing, with jittered heartbeats. After the last change every unit is served by a live
instance, the counts differ by at most one, and nothing moves any more (no flapping); while any
instance lives, no lease stays free (released or expired) longer than the lease time."""

from __future__ import annotations

import random
from datetime import datetime

import pytest
from attrs import define, field

from adapters.memory.simulated_clock import SimulatedClock
from adapters.memory.token_store import InMemoryTokenStore
from application.balancer import Balancer, BalancerSettings
from application.pipeline import RunResult, StopReason
from application.ports import Lease, LeaseLost
from domain.balance import rebalance, share

TTL = 3.0


@define
class Sim:
    """One deployment: a clock, a lease table, instances, and the facts to check."""

    rng: random.Random
    units: tuple[str, ...]
    clock: SimulatedClock = field(factory=SimulatedClock)
    store: InMemoryTokenStore = field(default=None)
    balancers: dict[str, Balancer] = field(factory=dict)
    alive: set[str] = field(factory=set)
    free_at: dict[str, float] = field(factory=dict)  # unit -> when its lease became free in the table
    gaps: list[tuple[str, float, float]] = field(factory=list)  # (unit, free at, taken at)
    moves: list[tuple[float, str, str]] = field(factory=list)  # (time, unit, new holder)
    counter: int = 0

    def __attrs_post_init__(self) -> None:
        self.store = InMemoryTokenStore(clock=self.clock)
        self.free_at = dict.fromkeys(self.units, 0.0)

    def at(self, moment: datetime) -> float:
        return self.clock.monotonic() + (moment - self.clock.now()).total_seconds()

    def join(self) -> str:
        self.counter += 1
        name = f"instance-{self.counter:03d}"
        settings = BalancerSettings(instance=name, units=self.units, lease_ttl_s=TTL)
        balancer = Balancer(settings=settings, store=self.store, clock=self.clock,
                            start_unit=lambda lease: FakeUnit(self, lease))  # fmt: skip
        self.balancers[name] = balancer
        self.alive.add(name)
        self._tick(name, balancer, first=True)
        return name

    def _tick(self, name: str, balancer: Balancer, *, first: bool = False) -> None:
        if name not in self.alive:
            return
        if not first:
            assert balancer.tick() is None
        delay = TTL / 3 * self.rng.uniform(0.8, 1.2) + self.rng.uniform(0, 0.2)  # jitter and a slow store
        self.clock.call_later(delay, lambda: self._tick(name, balancer))

    def leave(self, name: str) -> None:
        """Graceful: every unit drains, checkpoints and releases; then the heartbeat goes."""
        self.alive.discard(name)
        self.balancers[name].request_stop()
        self.clock.call_later(0.5, lambda: self.store.leave(name))  # once its units stopped (they take 0.3 s)

    def crash(self, name: str) -> None:
        self.alive.discard(name)
        for unit in list(self.units):
            handle = _HANDLES.get((id(self), unit))
            if handle is not None and handle.lease.owner == name:
                handle.crash()

    def holders(self) -> dict[str, str]:
        now = self.clock.now()
        return {lease.stream_id: lease.owner for lease in self.store.leases() if lease.expires_at > now}


_HANDLES: dict[tuple[int, str], FakeUnit] = {}


class FakeUnit:
    """A unit being served: renews its lease every third of the TTL; a graceful stop drains for a
    moment, then releases. A crash stops renewing (the lease then expires in the table)."""

    def __init__(self, sim: Sim, lease: Lease) -> None:
        self.sim, self.lease = sim, lease
        self._result: RunResult | None = None
        self.finished_at: float | None = None
        self._dead = False
        unit = lease.stream_id
        sim.gaps.append((unit, sim.free_at.pop(unit), sim.clock.monotonic()))
        sim.moves.append((sim.clock.monotonic(), unit, lease.owner))
        _HANDLES[(id(sim), unit)] = self
        self._timer = sim.clock.call_later(TTL / 3, self._renew)

    @property
    def result(self) -> RunResult | None:
        return self._result

    def _renew(self) -> None:
        if self._dead or self._result is not None:
            return
        try:
            self.lease = self.sim.store.renew_lease(self.lease, ttl_seconds=TTL)
        except LeaseLost:  # cannot happen while the holder lives: the test fails on it below
            self._result = RunResult(reason=StopReason.FATAL, events=0, checkpoint=None, error="lease lost")
            return
        self._timer = self.sim.clock.call_later(TTL / 3, self._renew)

    def request_stop(self) -> None:
        if self._dead or self._result is not None:
            return
        self.sim.clock.call_later(0.3, self._released)

    def _released(self) -> None:
        if self._result is not None:
            return
        self._timer.cancel()
        self.sim.store.release_lease(self.lease)
        self.sim.free_at[self.lease.stream_id] = self.finished_at = self.sim.clock.monotonic()
        self._result = RunResult(reason=StopReason.STOP_REQUESTED, events=0, checkpoint=None)

    def crash(self) -> None:
        self._dead = True
        self._timer.cancel()
        self.sim.free_at[self.lease.stream_id] = self.sim.at(self.lease.expires_at)


def _schedule(seed: int) -> None:
    rng = random.Random(seed)
    units = tuple(f"u{i}" for i in range(rng.randint(1, 7)))
    sim = Sim(rng=rng, units=units)
    sim.join()
    for _ in range(rng.randint(1, 6)):  # churn: joins, graceful leaves, crashes at random moments
        sim.clock.advance(rng.uniform(0.1, 3 * TTL))
        roll = rng.random()
        if roll < 0.5 or len(sim.alive) <= 1:
            sim.join()
        elif roll < 0.75:
            sim.leave(rng.choice(sorted(sim.alive)))
        else:
            sim.crash(rng.choice(sorted(sim.alive)))
    changed_at = sim.clock.monotonic()
    sim.clock.advance((len(units) + 3) * TTL)  # settle: one move per lease time at most
    holders = sim.holders()
    assert set(holders) == set(units), f"seed {seed}: units unserved: {set(units) - set(holders)}"
    assert set(holders.values()) <= sim.alive, f"seed {seed}: a gone instance still holds a unit"
    lo, hi = share(units=len(units), instances=len(sim.alive))
    counts = [sum(1 for owner in holders.values() if owner == name) for name in sim.alive]
    assert lo <= min(counts) and max(counts) <= hi, f"seed {seed}: unbalanced {counts} for {len(units)} units"
    settled = len(sim.moves)
    sim.clock.advance(6 * TTL)
    assert len(sim.moves) == settled, f"seed {seed}: units moved in a steady state (flapping): {sim.moves[settled:]}"
    for unit, free, taken in sim.gaps:
        if free >= changed_at or taken > free:  # the gap starts once the lease is free in the table
            assert taken - free <= TTL, f"seed {seed}: {unit} free for {taken - free:.2f} s from {free:.2f}"
    assert not any(h.result is not None and h.result.reason is StopReason.FATAL for h in _live_handles(sim))
    for key in [k for k in _HANDLES if k[0] == id(sim)]:
        del _HANDLES[key]


def _live_handles(sim: Sim) -> list[FakeUnit]:
    return [handle for (owner, _), handle in _HANDLES.items() if owner == id(sim)]


@pytest.mark.parametrize("block", range(10))
def test_random_join_leave_schedules_balance_without_flapping(block: int) -> None:
    for seed in range(block * 100, block * 100 + 100):
        _schedule(seed)


def test_a_balanced_table_is_a_fixed_point() -> None:
    units = ("a", "b", "c", "d")
    for holders in ({"a": "x", "b": "x", "c": "y", "d": "z"}, {"a": "x", "b": "y", "c": "x", "d": "y"}):
        for me in set(holders.values()):
            moves = rebalance(me=me, units=units, holders=holders, instances=set(holders.values()),
                              free_for={}, orphan_after_s=TTL / 2)  # fmt: skip
            assert moves.take == () and moves.hand_back is None


def test_the_most_loaded_instance_hands_back_one_unit_when_another_has_none() -> None:
    units = ("a", "b", "c", "d")
    holders = {"a": "x", "b": "x", "c": "y", "d": "y"}
    decisions = {
        me: rebalance(me=me, units=units, holders=holders, instances={"x", "y", "z"}, free_for={}, orphan_after_s=1)
        for me in ("x", "y", "z")
    }
    assert decisions["x"].hand_back == "b"  # ties go to the smallest name: exactly one instance gives
    assert decisions["y"].hand_back is None and decisions["z"].take == ()


def test_a_newcomer_takes_free_units_up_to_its_share_and_leaves_the_rest() -> None:
    units = ("a", "b", "c", "d")
    moves = rebalance(me="z", units=units, holders={}, instances={"y", "z"}, free_for={}, orphan_after_s=1)
    assert len(moves.take) == 2 and set(moves.take) <= set(units)
    loaded = rebalance(me="y", units=units, holders={"a": "y"}, instances={"y", "z"}, free_for={}, orphan_after_s=1)
    assert loaded.take == ()  # z holds fewer: the free units are z's to take, until they are orphans
    orphaned = rebalance(me="y", units=units, holders={"a": "y"}, instances={"y", "z"},
                         free_for={"b": 2.0}, orphan_after_s=1)  # fmt: skip
    assert orphaned.take == ("b",)


class EndsAt:
    """A unit that ends by itself with ``reason`` once it has run ``after`` seconds."""

    def __init__(self, clock: SimulatedClock, reason: StopReason, after: float, started: list[str], lease: Lease):
        started.append(lease.stream_id)
        self.result: RunResult | None = None
        self.finished_at: float | None = None
        self.stops = 0
        clock.call_later(after, lambda: self._end(clock, reason))

    def _end(self, clock: SimulatedClock, reason: StopReason) -> None:
        self.finished_at = clock.monotonic()
        self.result = RunResult(reason=reason, events=1, checkpoint=None, error="topic missing")

    def request_stop(self) -> None:
        self.stops += 1


def _lone_balancer(reason: StopReason, *, finite: bool, started: list[str]) -> tuple[Balancer, InMemoryTokenStore]:
    clock = SimulatedClock()
    store = InMemoryTokenStore(clock=clock)
    settings = BalancerSettings(instance="a", units=("u0", "u1", "u2"), lease_ttl_s=TTL, finite=finite)
    balancer = Balancer(settings=settings, store=store, clock=clock,
                        start_unit=lambda lease: EndsAt(clock, reason, 5.0, started, lease))  # fmt: skip
    return balancer, store


def test_a_finite_source_ends_the_run_once_every_unit_reached_its_end() -> None:
    started: list[str] = []
    balancer, store = _lone_balancer(StopReason.END_OF_SOURCE, finite=True, started=started)
    result = balancer.run()
    assert result.reason is StopReason.END_OF_SOURCE and result.events == 3
    assert sorted(started) == ["u0", "u1", "u2"]  # each once: an ended unit is not taken again
    assert store.instances() == []  # it left


def test_a_fatal_unit_stops_the_process_with_its_error() -> None:
    started: list[str] = []
    balancer, _ = _lone_balancer(StopReason.FATAL, finite=False, started=started)
    result = balancer.run()
    assert result.reason is StopReason.FATAL and result.error == "topic missing"
