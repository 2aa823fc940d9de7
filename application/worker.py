"""One stream's worker: take the lease, find the start position, run the pipeline, keep the lease.

Only the lease holder publishes and checkpoints. A standby waits, re-trying the lease every third of
its time-to-live, and takes over once the holder releases it (graceful stop) or lets it expire
(crash). With ``streams[].partitions`` there are several stream units; an instance takes the first
whose lease is free, so N identical instances spread over N units by themselves. The lease's
generation travels with every checkpoint, so an instance that lost its lease without noticing (a
long GC pause, a network partition) has its late checkpoint refused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import attrs
import structlog
from attrs import field, frozen

from application.backoff import RetryPolicy
from application.health import HealthState
from application.lease_keeper import LeaseKeeper
from application.partition_plan import ensure_plan_start
from application.pipeline import Pipeline, RunResult, StopReason
from application.ports import (
    Clock,
    Lease,
    LeaseLost,
    Metrics,
    PlanStart,
    StartPosition,
    TokenStore,
    TokenStoreError,
)
from domain.change_event import ClusterTime
from domain.partitions import StreamUnit

log = structlog.get_logger("connector.worker")


@frozen
class WorkerSettings:
    stream_id: str
    owner: str
    lease_ttl_s: float = 30.0
    start_at: str = "resume"  # resume | now | an RFC 3339 time (as a ClusterTime in start_time)
    start_time: ClusterTime | None = None
    retry: RetryPolicy = field(factory=RetryPolicy)
    units: tuple[StreamUnit, ...] = ()  # the candidates, base unit first; empty: ``stream_id`` alone
    pin_now: bool = False  # "now" is no shared position for this source (MongoDB): a plan pins it to a time

    @property
    def candidates(self) -> tuple[str, ...]:
        return tuple(unit.stream_id for unit in self.units) or (self.stream_id,)

    def unit(self, stream_id: str) -> StreamUnit | None:
        return next((unit for unit in self.units if unit.stream_id == stream_id), None)


PipelineFactory = Callable[[int, str], Pipeline]
"""Builds the pipeline for a lease generation and the stream id it holds."""


class StreamWorker:
    def __init__(
        self,
        *,
        settings: WorkerSettings,
        token_store: TokenStore,
        clock: Clock,
        metrics: Metrics,
        health: HealthState,
        pipeline_factory: PipelineFactory,
        lease_clock: Clock | None = None,
    ) -> None:
        """``lease_clock``: the clock lease renewal runs on; give it one no other I/O waits on (in
        production a SystemClock of its own, so renewal never queues behind a checkpoint save)."""
        self._settings = settings
        self._store = token_store
        self._clock = clock
        self._metrics = metrics
        self._health = health
        self._factory = pipeline_factory
        self._stop = threading.Event()
        self._pipeline: Pipeline | None = None
        self._lease: Lease | None = None
        self._keeper: LeaseKeeper | None = None
        self._lost = False
        self._lease_clock = lease_clock or clock
        self._lock = threading.Lock()
        self._stream_id = settings.stream_id

    @property
    def stream_id(self) -> str:
        """The stream unit this worker holds (or last tried)."""
        return self._stream_id

    def request_stop(self) -> None:
        """First call: graceful (drain, checkpoint, release). Second: at once."""
        self._stop.set()
        with self._lock:
            pipeline = self._pipeline
        if pipeline is not None:
            pipeline.request_stop()
        self._clock.notify()

    def run(self) -> RunResult:
        """Wait for a free unit among the candidates, then serve it."""
        lease = self._acquire()
        if lease is None:
            return RunResult(reason=StopReason.STOP_REQUESTED, events=0, checkpoint=None)
        return self.serve(lease)

    def serve(self, lease: Lease) -> RunResult:
        """Serve the unit of a lease already taken (a balancer took it) until stopped, then release it."""
        self._stream_id, self._lease = lease.stream_id, lease
        self._metrics.lease_owned(unit=lease.stream_id, owned=True, generation=lease.generation)
        try:
            self._keep_lease()
            start = self._start_position()
            if start is None:
                return RunResult(reason=StopReason.STOP_REQUESTED, events=0, checkpoint=None)
            pipeline = self._factory(lease.generation, self._stream_id)
            with self._lock:
                self._pipeline = pipeline
            if self._stop.is_set():
                pipeline.request_stop()
            result = pipeline.run(start)
            if self._lost and result.reason is StopReason.END_OF_SOURCE:  # stopped short: not the end
                result = attrs.evolve(result, reason=StopReason.STOP_REQUESTED)
            return result
        finally:
            self._release()

    # ------------------------------------------------------------------ lease

    def _acquire(self) -> Lease | None:
        settings = self._settings
        announced: str | None = None  # the state last logged: a line per change, not per retry
        candidates = settings.candidates
        for stream_id in candidates:  # every instance reports every unit, so "no unit owner" is a sum of zeros
            self._metrics.lease_owned(unit=stream_id, owned=False)
        while not self._stop.is_set():
            unreachable: TokenStoreError | None = None
            held = 0
            for stream_id in candidates:
                try:
                    lease = self._store.acquire_lease(stream_id, owner=settings.owner, ttl_seconds=settings.lease_ttl_s)
                except TokenStoreError as error:
                    unreachable = error
                    continue
                if lease is None:
                    held += 1
                    continue
                self._stream_id = stream_id
                self._lease = lease
                self._health.ok("lease")
                log.info("lease_acquired", stream=stream_id, generation=lease.generation, owner=settings.owner)
                if len(candidates) > 1:
                    log.info("stream_units", units=len(candidates), needs=f"{len(candidates)} instances")
                return lease
            if held == 0 and unreachable is not None:  # no answer at all: an outage, not another owner
                if announced != "unreachable":
                    log.warning("token_store_unreachable", error=str(unreachable),
                                retrying_every_s=round(settings.lease_ttl_s / 3, 1))  # fmt: skip
                    announced = "unreachable"
                self._health.fail("lease", f"cannot take the lease, the token store is unreachable: {unreachable}")
            elif announced != "standby":
                log.info("standby", streams=list(candidates), reason="other instances hold every stream's lease")
                self._health.fail("lease", "standby: other instances hold every stream's lease")
                announced = "standby"
            self._clock.wait_until(self._stop.is_set, settings.lease_ttl_s / 3)
        return None

    def _keep_lease(self) -> None:
        if self._lease is not None:  # renewed while draining after a stop request too
            self._keeper = LeaseKeeper(
                store=self._store, clock=self._lease_clock, lease=self._lease,
                ttl_s=self._settings.lease_ttl_s, on_lost=self._lease_lost,
            ).start()  # fmt: skip

    def _lease_lost(self, reason: str) -> None:
        self._lost = True
        self._metrics.lease_owned(unit=self._stream_id, owned=False)
        self._health.fail("lease", f"lease lost: {reason}")
        self._stop.set()
        with self._lock:
            pipeline = self._pipeline
        if pipeline is not None:
            pipeline.request_stop()
            pipeline.request_stop()  # fenced out: stop publishing at once, no final checkpoint
        self._clock.notify()

    def _release(self) -> None:
        keeper, self._keeper = self._keeper, None
        lease = keeper.stop() if keeper is not None else self._lease
        self._lease = None
        if lease is None:
            return
        try:
            self._store.release_lease(lease)
        except (TokenStoreError, LeaseLost) as error:
            log.warning("lease_release_failed", error=str(error))
        self._metrics.lease_owned(unit=self._stream_id, owned=False)

    # ------------------------------------------------------------------ start position

    def _start_position(self) -> StartPosition | None:
        """The stored token always wins (nothing lost across restarts). A unit of a partition plan that
        has never checkpointed starts where the plan took effect (recorded before this unit, or any
        other of the plan, processes anything); ``start_at`` applies to a lone stream never checkpointed."""
        settings = self._settings
        retrying = settings.retry.retrying(
            retry_on=TokenStoreError,
            sleep=lambda seconds: self._clock.wait_until(self._stop.is_set, seconds),
            before_sleep=lambda state: log.warning("checkpoint_load_retry", attempt=state.attempt_number),
        )
        stream_id = self._stream_id
        plan: PlanStart | None = None
        if len(settings.units) > 1:
            plan = retrying(
                ensure_plan_start,
                store=self._store,
                units=settings.units,
                clock=self._clock,
                start_time=settings.start_time,
                pin_now=settings.pin_now,
            )
        stored = retrying(self._store.load, stream_id)
        if self._stop.is_set():
            return None
        if stored is not None and stored.token is not None:
            log.info("resuming", stream=stream_id, token=stored.token.data, cluster_time=str(stored.cluster_time))
            return StartPosition(start_after=stored.token)
        if stored is not None and stored.cluster_time is not None:
            log.info("starting_at_stored_time", stream=stream_id, cluster_time=str(stored.cluster_time))
            return StartPosition(at_time=stored.cluster_time)
        if plan is not None:
            log.info("starting_at_plan_start", stream=stream_id, cluster_time=str(plan.cluster_time))
            return StartPosition(at_time=plan.cluster_time)
        if settings.start_time is not None:
            log.info("starting_at_time", stream=stream_id, cluster_time=str(settings.start_time))
            return StartPosition(at_time=settings.start_time)
        log.info("starting_now", stream=stream_id)
        return StartPosition()
