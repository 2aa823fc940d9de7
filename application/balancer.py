"""One process, several stream units: take a fair share of the unit leases and keep it fair.

Every third of a lease time (jittered, so instances do not tick in step) the balancer writes this
instance's heartbeat, reads the live instances and the lease table from the token store, and applies
:func:`domain.balance.rebalance`: it takes free or expired units up to its share and hands back one
unit beyond it. Handing back is the unit's graceful stop (drain, final checkpoint, then release), so
a unit is never dropped without a checkpoint, and it is rate-limited: at most one per lease time, never
a unit held for less than a lease time. Each unit runs on its own (its thread, change stream,
pipeline, token, lease and fencing generation), so a slow unit does not stall the others.

A unit that stops by itself (end of a finite source, lease lost) is not taken again by this instance
for a lease time; one that fails (FATAL) stops the whole process, as a configuration fault (a missing
topic, a permission) would fail every unit alike, and the exit makes it visible.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from typing import Protocol

import structlog
from attrs import frozen

from application.health import HealthState
from application.pipeline import RunResult, StopReason
from application.ports import Clock, Lease, Metrics, TokenStore, TokenStoreError
from domain.balance import rebalance

log = structlog.get_logger("connector.balancer")


class UnitHandle(Protocol):
    """A unit being served (a thread in production, a stand-in on the simulated clock)."""

    def request_stop(self) -> None:
        """Graceful: drain, final checkpoint, release the lease."""
        ...

    @property
    def result(self) -> RunResult | None:
        """None while the unit runs."""
        ...

    @property
    def finished_at(self) -> float | None:
        """The clock's monotonic time when the unit ended (its lease released), None while it runs."""
        ...


StartUnit = Callable[[Lease], UnitHandle]


@frozen
class BalancerSettings:
    instance: str
    units: tuple[str, ...]
    lease_ttl_s: float = 30.0
    finite: bool = False  # the source ends (a JSONL file without follow): stop once every unit reached its end

    @property
    def tick_s(self) -> float:
        return self.lease_ttl_s / 3

    @property
    def move_interval_s(self) -> float:
        return self.lease_ttl_s

    @property
    def orphan_after_s(self) -> float:
        return self.lease_ttl_s / 3


class Balancer:
    def __init__(
        self,
        *,
        settings: BalancerSettings,
        store: TokenStore,
        clock: Clock,
        start_unit: StartUnit,
        health: HealthState | None = None,
        metrics: Metrics | None = None,
        jitter: Callable[[], float] = lambda: random.uniform(0.8, 1.2),
    ) -> None:
        self._settings = settings
        self._store = store
        self._clock = clock
        self._start_unit = start_unit
        self._jitter = jitter
        self._health = health or HealthState()
        self._metrics = metrics
        # One lock for the unit table: tick() writes it on the run thread, request_stop() reads it from a
        # signal handler, running() from the probes. Never held across a store call or a unit's stop.
        self._lock = threading.Lock()
        self._running: dict[str, UnitHandle] = {}
        self._taken_at: dict[str, float] = {}
        self._handing_back: set[str] = set()
        self._cooling: dict[str, float] = {}  # unit -> monotonic time before which this instance leaves it
        self._ended: set[str] = set()  # units that reached the end of a finite source here
        self._free_since: dict[str, float] = {}
        self._last_move = float("-inf")
        self._stop = threading.Event()
        self._results: list[RunResult] = []
        self._announced: str | None = None  # the state last logged: standby or unreachable

    @property
    def running(self) -> tuple[str, ...]:
        with self._lock:
            return tuple(sorted(self._running))

    def request_stop(self) -> None:
        """First call: every unit stops gracefully, then the heartbeat goes. Second: units stop at once.
        Safe from a signal handler: no store call here (the run thread leaves once its units stopped)."""
        second = self._stop.is_set()
        self._stop.set()
        with self._lock:
            handles = list(self._running.values())
        for handle in handles:
            handle.request_stop()
            if second:
                handle.request_stop()
        self._clock.notify()

    def run(self) -> RunResult:
        """Balance until stopped (or, for a finite source, until every unit ended); the combined result."""
        if self._metrics is not None:
            for unit in self._settings.units:  # every instance reports every unit: "no owner" is a sum of zeros
                self._metrics.lease_owned(unit=unit, owned=False)
        self._announce()
        while not self._stop.is_set():
            fatal = self.tick()
            if fatal is not None:
                self.request_stop()
                self._drain()
                return fatal
            if self._settings.finite and self._ended >= set(self._settings.units) and not self.running:
                break
            self._clock.wait_until(
                lambda: self._stop.is_set() or self._a_unit_ended(), self._settings.tick_s * self._jitter()
            )
        self._drain()
        return self._combined(StopReason.STOP_REQUESTED if self._stop.is_set() else StopReason.END_OF_SOURCE)

    def _announce(self) -> None:
        """Heartbeat, then a moment before taking anything: instances started together see each other
        and take their shares, instead of the first one taking every unit and handing them back. With a
        single unit there are no shares, so it is taken at once (no start-up delay for the usual case)."""
        try:
            self._store.heartbeat(self._settings.instance, ttl_seconds=self._settings.lease_ttl_s, units=0)
        except TokenStoreError as error:
            self._unreachable(error)
            return
        if len(self._settings.units) > 1:
            self._clock.wait_until(self._stop.is_set, min(2.0, self._settings.tick_s))

    def crash(self) -> None:
        """Stop ticking without handing anything back (tests: a process that died)."""
        self._stop.set()

    def _a_unit_ended(self) -> bool:
        with self._lock:
            return any(handle.result is not None for handle in self._running.values())

    # ------------------------------------------------------------------ one round

    def tick(self) -> RunResult | None:
        """Heartbeat, read the table, take and hand back; returns a unit's fatal result, if any."""
        now = self._clock.monotonic()
        fatal = self._reap(now)
        if fatal is not None or self._stop.is_set():
            return fatal
        settings = self._settings
        try:
            self._store.heartbeat(settings.instance, ttl_seconds=settings.lease_ttl_s, units=len(self.running))
            wall = self._clock.now()
            live = {beat.instance for beat in self._store.instances() if beat.expires_at > wall}
            leases = self._store.leases()
        except TokenStoreError as error:
            self._unreachable(error)
            return None
        units = set(settings.units)
        holders = {le.stream_id: le.owner for le in leases if le.stream_id in units and le.expires_at > wall}
        with self._lock:
            mine = set(self._running)
        for unit in mine:
            holders[unit] = settings.instance  # ours until our unit has stopped and released it
        expired = {le.stream_id: le.expires_at for le in leases if le.expires_at <= wall}
        for unit in settings.units:
            if unit in holders:
                self._free_since.pop(unit, None)
            elif unit in expired:  # free since it expired (its holder died): no need to wait for a sighting
                self._free_since[unit] = now - (wall - expired[unit]).total_seconds()
            else:  # released: free since this instance first saw it so
                self._free_since.setdefault(unit, now)
        free_for = {unit: now - since for unit, since in self._free_since.items()}
        moves = rebalance(
            me=settings.instance,
            units=settings.units,
            holders=holders,
            instances=live,
            free_for=free_for,
            orphan_after_s=settings.orphan_after_s,
        )
        for unit in moves.take:
            if self._cooling.get(unit, float("-inf")) > now or unit in self._ended:
                continue
            self._take(unit, now)
        if moves.hand_back is not None:
            self._hand_back(moves.hand_back, now, live=len(live | {settings.instance}))
        if self.running:
            self._health.ok("lease")
            self._announced = None
        else:
            if self._announced != "standby":
                log.info("standby", units=list(settings.units), reason="other instances hold every unit's lease")
                self._announced = "standby"
            self._health.fail("lease", "standby: other instances hold every unit's lease")
        return None

    def _unreachable(self, error: TokenStoreError) -> None:
        """One line per outage, not per retry; never the false "standby" (no other instance may exist)."""
        if self._announced != "unreachable":
            log.warning("token_store_unreachable", error=str(error), retrying_every_s=round(self._settings.tick_s, 1),
                        recovery="units held keep running")  # fmt: skip
            self._announced = "unreachable"
        if not self.running:
            self._health.fail("lease", f"cannot take a lease, the token store is unreachable: {error}")

    def _take(self, unit: str, now: float) -> None:
        settings = self._settings
        try:
            lease = self._store.acquire_lease(unit, owner=settings.instance, ttl_seconds=settings.lease_ttl_s)
        except TokenStoreError as error:
            log.warning("lease_unavailable", stream=unit, error=str(error))
            return
        if lease is None:
            return  # another instance was quicker
        handle = self._start_unit(lease)
        with self._lock:
            self._running[unit] = handle
            self._taken_at[unit] = now
        if self._stop.is_set():  # a stop request came while taking it (a signal lands between any two lines)
            handle.request_stop()
        self._free_since.pop(unit, None)
        log.info("unit_taken", stream=unit, generation=lease.generation, instance=settings.instance)

    def _hand_back(self, unit: str, now: float, *, live: int) -> None:
        settings = self._settings
        with self._lock:
            handle = self._running.get(unit)
            held_for = now - self._taken_at.get(unit, now)
        if handle is None or unit in self._handing_back:
            return
        if now - self._last_move < settings.move_interval_s or held_for < settings.move_interval_s:
            return  # rate-limited: units move at most once per lease time, so instances never flap
        self._last_move = now
        self._handing_back.add(unit)
        log.info("unit_handed_back", stream=unit, instance=settings.instance, instances=live,
                 reason="beyond this instance's share")  # fmt: skip
        handle.request_stop()

    def _reap(self, now: float) -> RunResult | None:
        with self._lock:
            done = {unit: h for unit, h in self._running.items() if h.result is not None}
            for unit in done:
                del self._running[unit]
                self._taken_at.pop(unit, None)
        fatal = None
        for unit, handle in done.items():
            result = handle.result
            assert result is not None
            self._results.append(result)
            if result.reason in (StopReason.FATAL, StopReason.INVALID_DOCUMENT):
                fatal = fatal or result
            elif result.reason is StopReason.END_OF_SOURCE:
                self._ended.add(unit)
            elif unit in self._handing_back:  # free since its release; its new owner gets a tick to take it
                released = handle.finished_at if handle.finished_at is not None else now
                self._free_since[unit] = released
                self._cooling[unit] = released + self._settings.tick_s * 1.25
            elif not self._stop.is_set():
                self._cooling[unit] = now + self._settings.move_interval_s  # lost its lease: leave it a while
            self._handing_back.discard(unit)
        return fatal

    def _drain(self) -> None:
        """Wait for every unit to finish its graceful stop (each bounds its own), then leave."""
        while True:
            with self._lock:
                handles = list(self._running.values())
            if not handles:
                break
            self._clock.wait_until(self._a_unit_ended, self._settings.tick_s)
            self._reap(self._clock.monotonic())
        self._leave()

    def _leave(self) -> None:
        try:
            self._store.leave(self._settings.instance)
        except TokenStoreError as error:
            log.warning("leave_failed", error=str(error), recovery="the heartbeat expires by itself")

    def _combined(self, reason: StopReason) -> RunResult:
        events = sum(result.events for result in self._results)
        checkpoint = next((r.checkpoint for r in reversed(self._results) if r.checkpoint is not None), None)
        return RunResult(reason=reason, events=events, checkpoint=checkpoint,
                         drained=all(result.drained for result in self._results))  # fmt: skip
