"""The checkpointer: a periodic tick that saves the watermark, watches for a stalled Pub/Sub, reports.

The tick runs on the clock (every ``checkpoint_interval_s``, never more than one save per interval)
and only *starts* a save: the store call itself runs through ``StoreCalls`` (its own thread in
production), so a slow or hung Firestore never delays the publish retries and lease renewals that
share the clock's thread. One save at a time; a save still running after ``checkpoint_deadline_s``
turns readiness red until it returns. A refused save (the lease moved on) stops the run without a
drain; an unreachable store is retried with backoff.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from application.dispatcher import Dispatcher
from application.health import HealthState
from application.ports import Cancellable, Checkpoint, Clock, Metrics, StaleCheckpoint, StoreCalls, TokenStore
from application.run_control import PipelineSettings, RunControl
from application.watermark import WatermarkTracker
from domain.change_event import ClusterTime, ResumeToken

log = structlog.get_logger("connector.pipeline")


class InlineCalls:
    """StoreCalls on the caller's thread (simulated-clock tests, one-shot tools)."""

    def submit(self, call: Callable[[], None]) -> None:
        call()


class Checkpointer:
    """Saves the settled prefix's token; ``last_saved`` is what a restart resumes from."""

    def __init__(
        self,
        *,
        store: TokenStore,
        calls: StoreCalls,
        tracker: WatermarkTracker,
        dispatcher: Dispatcher,
        control: RunControl,
        clock: Clock,
        metrics: Metrics,
        health: HealthState,
        settings: PipelineSettings,
    ) -> None:
        self._store, self._calls, self._tracker, self._dispatcher = store, calls, tracker, dispatcher
        self._control, self._clock, self._metrics, self._health = control, clock, metrics, health
        self._settings = settings
        self._lock = threading.Lock()  # guards the fields below: written by the store thread, read by the tick
        self.last_saved: ResumeToken | None = None
        self._saving_since: float | None = None
        self._last_ok = True
        self._failures = 0
        self._first_failure: float | None = None
        self._next_at = 0.0
        self._timer: Cancellable | None = None
        self._lag_mark: ClusterTime | None = None
        self._stalled = False
        self._reported = (0, clock.monotonic())  # (events, at) of the last progress line

    def start(self, resumed_from: ResumeToken | None) -> None:
        self.last_saved = resumed_from
        self._schedule()

    def cancel(self) -> None:
        if self._timer is not None:
            self._timer.cancel()

    def _schedule(self) -> None:
        if not self._control.stop.is_set():
            self._timer = self._clock.call_later(self._settings.checkpoint_interval_s, self._tick)

    def _tick(self) -> None:
        now = self._clock.monotonic()
        try:
            self.save_if_moved(now)
            self._record_lag()
            if now - self._reported[1] >= self._settings.summary_interval_s:
                self._summary(now)
            self._check_stall(now)
        except Exception as error:  # an adapter bug must not end checkpointing for the rest of the run
            log.exception("checkpoint_tick_failed", error=str(error))
            self._health.fail("checkpoint", f"checkpoint failed unexpectedly: {error}")
        finally:
            self._schedule()

    def save_if_moved(self, now: float) -> None:
        """Start a save of the watermark unless one runs, a backoff is due, or it has not moved."""
        with self._lock:
            if self._saving_since is not None:
                if now - self._saving_since >= self._settings.checkpoint_deadline_s:
                    self._health.fail("checkpoint", f"checkpoint save running for {now - self._saving_since:.0f} s")
                return
            mark = self._tracker.watermark
            if now < self._next_at or mark is None or mark[0] == self.last_saved:
                return
            self._saving_since = now
        self._calls.submit(lambda: self._save(mark[0], mark[1]))

    @property
    def idle(self) -> bool:
        """No save running; ``saved_up_to_date`` then says whether the watermark is stored."""
        with self._lock:
            return self._saving_since is None

    @property
    def up_to_date(self) -> bool:
        mark = self._tracker.watermark
        with self._lock:
            return self._saving_since is None and (mark is None or mark[0] == self.last_saved)

    def _save(self, token: ResumeToken, cluster_time: ClusterTime | None) -> None:
        checkpoint = Checkpoint(token=token, cluster_time=cluster_time, updated_at=self._clock.now())
        try:
            self._store.save(self._settings.stream_id, checkpoint, generation=self._settings.generation)
        except StaleCheckpoint as error:
            self._finished(saved=None)
            self._control.set_fatal(
                f"checkpoint refused: {error}",
                "another instance owns this stream now (lease taken over); this one stops",
                drain=False,
            )
            return
        except Exception as error:  # TokenStoreError, or a deadline: retried with backoff
            self._retry_later(error)
            return
        self._finished(saved=token)
        self._control.count_checkpoint()
        self._metrics.checkpoint_saved(at=checkpoint.updated_at or self._clock.now())
        self._health.ok("checkpoint")

    def _finished(self, *, saved: ResumeToken | None) -> None:
        with self._lock:
            self._saving_since = None
            if saved is not None:
                self.last_saved = saved
                self._failures, self._first_failure, self._next_at = 0, None, 0.0
        self._clock.notify()

    def _retry_later(self, error: Exception) -> None:
        now = self._clock.monotonic()
        with self._lock:
            self._saving_since = None
            self._failures += 1
            if self._first_failure is None:
                self._first_failure = now
            attempt = self._failures
            self._next_at = now + self._settings.retry.delay(attempt)
        self._metrics.retried(kind="checkpoint")
        log.warning("checkpoint_retry", error=str(error), attempt=attempt)
        self._health.fail("checkpoint", f"checkpoint store unreachable: {error}")
        self._clock.notify()

    def _record_lag(self) -> None:
        """Now minus the cluster time of the newest settled event, when it moved."""
        mark = self._tracker.watermark
        if mark is not None and mark[1] is not None and mark[1] != self._lag_mark:
            self._lag_mark = mark[1]
            self._metrics.lag(seconds=max(0.0, self._clock.now().timestamp() - mark[1].seconds))

    def _check_stall(self, now: float) -> None:
        """Pub/Sub can hang instead of failing (a stalled connection): readiness says so."""
        in_flight = self._dispatcher.in_flight
        quiet = now - self._dispatcher.last_ack_at
        if in_flight and quiet >= self._settings.stall_after_s:
            if not self._stalled:
                self._stalled = True
                log.warning("publishing_stalled", in_flight=in_flight, seconds=round(quiet, 1))
            self._health.fail("pubsub", f"no acknowledgement for {quiet:.0f} s, {in_flight} in flight")
        elif self._stalled:
            self._stalled = False
            self._health.ok("pubsub")
            log.info("publishing_resumed")

    def _summary(self, now: float) -> None:
        """The INFO-level progress line (per-request lines are DEBUG)."""
        counters = self._control.counters
        events, at = self._reported
        log.info(
            "progress",
            events=counters.events,
            published=counters.published,
            rejected=counters.rejected,
            skipped=counters.skipped,
            events_per_second=round((counters.events - events) / max(1e-9, now - at), 1),
            in_flight=self._dispatcher.in_flight,
            checkpoint=None if self.last_saved is None else self.last_saved.data[:32],
        )
        self._reported = (counters.events, now)

    def final(self, deadline: float) -> None:
        """At shutdown: wait for a running save, then store the watermark, retrying until ``deadline``."""
        control, clock = self._control, self._clock
        tries = 0
        while not control.hard_stop.is_set() and not control.drain_pointless:
            clock.wait_until(lambda: self.idle or control.hard_stop.is_set(), max(0.0, deadline - clock.monotonic()))
            if self.up_to_date:
                return
            if not self.idle:
                break
            if tries:  # the last try failed: a short pause before the next
                clock.wait_until(control.hard_stop.is_set, min(0.5, max(0.0, deadline - clock.monotonic())))
            if clock.monotonic() >= deadline:
                break
            tries += 1
            with self._lock:
                self._next_at = 0.0  # no backoff at the end: the deadline is the limit
            self.save_if_moved(clock.monotonic())
        if not self.up_to_date and not control.drain_pointless:
            log.error("final_checkpoint_failed", recovery="the next start resumes from the last saved one")
