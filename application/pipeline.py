"""The streaming pipeline: source -> processing step -> publisher, with watermark checkpoints.

One reader (the thread calling :meth:`Pipeline.run`) takes items from the source in order, hands
each event to the processing step and publishes asynchronously; publisher callbacks settle events
from other threads. A periodic timer checkpoints the watermark (never more than once per interval),
reading pauses while too many messages are in flight, and a stop request drains what is in flight
and writes a final checkpoint within the deadline. Nothing here waits except through the clock.
"""

from __future__ import annotations

import enum
import threading

import structlog
from attrs import define, field, frozen

from application.backoff import RetryPolicy
from application.health import HealthState
from application.outcomes import Publish, Reject, Skip
from application.ports import (
    Cancellable,
    ChangeSource,
    Checkpoint,
    Clock,
    Heartbeat,
    Metrics,
    Publisher,
    PublishError,
    SourceError,
    StaleCheckpoint,
    StartPosition,
    TokenStore,
    TokenStoreError,
)
from application.processing import ProcessingStep
from application.reliable_publisher import ReliablePublisher
from application.watermark import WatermarkTracker
from domain.change_event import ChangeEvent, ClusterTime, ResumeToken
from domain.envelope import OutboundMessage, event_id

log = structlog.get_logger("connector.pipeline")


class StopReason(enum.StrEnum):
    END_OF_SOURCE = "end_of_source"
    STOP_REQUESTED = "stop_requested"
    INVALID_DOCUMENT = "invalid_document"
    FATAL = "fatal"


@frozen
class PipelineSettings:
    stream_id: str
    max_in_flight_messages: int = 10_000
    checkpoint_interval_s: float = 1.0
    stop_deadline_s: float = 10.0
    fail_on_invalid: bool = False
    retry: RetryPolicy = field(factory=RetryPolicy)
    generation: int = 0
    summary_interval_s: float = 30.0
    stall_after_s: float = 5.0  # readiness fails when nothing was acknowledged this long with messages in flight


@frozen
class RunResult:
    reason: StopReason
    events: int
    checkpoint: ResumeToken | None
    error: str | None = None
    recovery: str | None = None
    drained: bool = True


@define
class _Counters:
    events: int = 0
    checkpoints: int = 0
    published: int = 0
    rejected: int = 0
    skipped: int = 0
    reported_events: int = 0
    reported_at: float = 0.0


class Pipeline:
    """Runs one stream until its source ends, a stop is requested, or a fatal error."""

    def __init__(
        self,
        *,
        source: ChangeSource,
        step: ProcessingStep,
        publisher: Publisher,
        token_store: TokenStore,
        clock: Clock,
        metrics: Metrics,
        settings: PipelineSettings,
        health: HealthState | None = None,
    ) -> None:
        self._source = source
        self._step = step
        self._publisher = publisher
        self._store = token_store
        self._clock = clock
        self._metrics = metrics
        self._settings = settings
        self._health = health or HealthState()
        self._tracker = WatermarkTracker()
        self._reliable = ReliablePublisher(
            publisher=publisher,
            clock=clock,
            policy=settings.retry,
            metrics=metrics,
            on_fatal=self._fatal_publish,
        )
        self._stop = threading.Event()
        self._hard_stop = threading.Event()
        self._fatal: tuple[str, str] | None = None
        self._drain_pointless = False  # publishing or checkpointing itself is what failed
        self._checkpoint_lock = threading.Lock()
        self._last_saved: ResumeToken | None = None
        self._checkpoint_failures = 0
        self._first_checkpoint_failure: float | None = None
        self._next_checkpoint_at = 0.0
        self._timer: Cancellable | None = None
        self._last_read: ResumeToken | None = None
        self._counters = _Counters()
        self._lag_sampled_at = float("-inf")
        self._last_ack_at = clock.monotonic()
        self._stalled = False

    # ------------------------------------------------------------------ control

    def request_stop(self) -> None:
        """First call: stop reading, drain, checkpoint. Second call: return at once."""
        if self._stop.is_set():
            self._hard_stop.set()
        self._stop.set()
        self._source.close()
        self._clock.notify()

    @property
    def in_flight(self) -> int:
        return self._reliable.in_flight

    @property
    def checkpoints_written(self) -> int:
        return self._counters.checkpoints

    # ------------------------------------------------------------------ run

    def run(self, start: StartPosition) -> RunResult:
        self._last_saved = start.resume_after or start.start_after
        self._counters.reported_at = self._clock.monotonic()
        self._schedule_checkpoint()
        reason = self._read_loop(start)
        return self._shutdown(reason)

    def _read_loop(self, start: StartPosition) -> StopReason:
        position = start
        attempt = 0
        first_failure: float | None = None
        while True:
            try:
                self._health.set_stream_open(True)
                for item in self._source.read(position):
                    attempt, first_failure = 0, None
                    if self._stopping():
                        break
                    if isinstance(item, Heartbeat):
                        self._tracker.add(item.token, item.cluster_time, settled=True)
                        self._last_read = item.token
                    else:
                        if not self._handle(item.event):
                            return StopReason.INVALID_DOCUMENT
                    self._await_capacity()
                    if self._stopping():
                        break
                else:
                    if not self._stopping():
                        return StopReason.END_OF_SOURCE
                return StopReason.FATAL if self._fatal else StopReason.STOP_REQUESTED
            except SourceError as error:
                self._health.set_stream_open(False)
                now = self._clock.monotonic()
                first_failure = now if first_failure is None else first_failure
                if not error.retryable or self._settings.retry.gave_up(first_failure, now):
                    self._set_fatal(f"change stream failed: {error}", error.recovery)
                    return StopReason.FATAL
                attempt += 1
                self._metrics.retried(kind="source")
                delay = self._settings.retry.delay(attempt)
                log.warning("source_retry", error=str(error), attempt=attempt, delay_seconds=round(delay, 3))
                self._health.fail("source", f"change stream error, retrying: {error}")
                if self._clock.wait_until(self._stop.is_set, delay):
                    return StopReason.STOP_REQUESTED
                self._health.ok("source")
                if self._last_read is not None:
                    position = StartPosition(resume_after=self._last_read)

    def _stopping(self) -> bool:
        return self._stop.is_set() or self._fatal is not None

    def _await_capacity(self) -> None:
        limit = self._settings.max_in_flight_messages
        while self._reliable.in_flight >= limit and not self._stopping():
            self._clock.wait_until(
                lambda: self._reliable.in_flight < limit or self._stopping(),
                self._settings.checkpoint_interval_s,
            )

    def _handle(self, event: ChangeEvent) -> bool:
        """Process and dispatch one event; False when ``on_invalid: fail`` must stop here."""
        self._counters.events += 1
        collection = event.collection or ""
        self._metrics.event_read(collection=collection, operation=event.operation)
        self._last_read = event.token
        outcome = self._step.process(event)
        if isinstance(outcome, Publish):
            self._dispatch(event, outcome.messages, published=True)
        elif isinstance(outcome, Reject):
            self._counters.rejected += 1
            self._metrics.event_rejected(collection=collection, operation=event.operation, reason=outcome.reason)
            if self._settings.fail_on_invalid:
                self._set_fatal(
                    f"document rejected ({outcome.reason}) at event {event_id(event.token.data)} and "
                    "schemas.on_invalid is fail",
                    "fix the document (or its schema), or set schemas.on_invalid to skip or dead_letter; "
                    "the checkpoint stays before this event",
                )
                return False
            if outcome.dead_letter is not None:
                self._dispatch(event, (outcome.dead_letter,), published=False, reason=outcome.reason)
            else:
                self._tracker.add(event.token, event.cluster_time, settled=True)
        else:
            self._skipped(outcome)
        return True

    def _skipped(self, outcome: Skip) -> None:
        self._counters.skipped += 1
        self._metrics.event_skipped(reason=outcome.reason)
        self._tracker.add(outcome.event.token, outcome.event.cluster_time, settled=True)

    def _dispatch(
        self, event: ChangeEvent, messages: tuple[OutboundMessage, ...], *, published: bool, reason: str = ""
    ) -> None:
        """``published`` False: ``messages`` is the dead letter of an event rejected for ``reason``."""
        seq = self._tracker.add(event.token, event.cluster_time)
        remaining = [len(messages)]
        lock = threading.Lock()
        collection = event.collection or ""

        def done(latency: float) -> None:
            self._last_ack_at = self._clock.monotonic()
            if remaining[0] > 1:  # dropDatabase fans out: settle once every topic has it
                with lock:
                    remaining[0] -= 1
                    if remaining[0] > 0:
                        return
            self._tracker.settle(seq)
            if published:
                self._counters.published += 1
                self._metrics.event_published(collection=collection, operation=event.operation, latency_seconds=latency)
                self._record_lag(event.cluster_time)
                log.debug(
                    "event_published",
                    event_id=messages[0].event_id,
                    correlation_id=messages[0].attributes.get("correlation_id"),
                    collection=collection,
                    operation=event.operation,
                    document_id=event.document_id,
                    latency_seconds=round(latency, 4),
                )
            else:
                self._metrics.dead_lettered(collection=collection, reason=reason)

        for message in messages:
            self._reliable.publish(message, done)

    def _record_lag(self, cluster_time: ClusterTime | None) -> None:
        """Sampled every 100 ms: the gauge needs no more, and wall-clock reads add up at full rate."""
        now = self._clock.monotonic()
        if cluster_time is not None and now - self._lag_sampled_at >= 0.1:
            self._lag_sampled_at = now
            self._metrics.lag(seconds=max(0.0, self._clock.now().timestamp() - cluster_time.seconds))

    # ------------------------------------------------------------------ failures

    def _fatal_publish(self, error: PublishError) -> None:
        self._set_fatal(f"publishing failed: {error}", error.recovery, drain=False)

    def _set_fatal(self, message: str, recovery: str, *, drain: bool = True) -> None:
        if not drain:
            self._drain_pointless = True
        if self._fatal is None:
            self._fatal = (message, recovery)
            log.error("worker_stopping", error=message, recovery=recovery or None)
            self._health.fail("worker", message)
            self._source.close()
            self._clock.notify()

    # ------------------------------------------------------------------ checkpoints

    def _schedule_checkpoint(self) -> None:
        if self._stop.is_set():
            return
        self._timer = self._clock.call_later(self._settings.checkpoint_interval_s, self._periodic_checkpoint)

    def _periodic_checkpoint(self) -> None:
        now = self._clock.monotonic()
        try:
            if now >= self._next_checkpoint_at:
                self._checkpoint()
            if now - self._counters.reported_at >= self._settings.summary_interval_s:
                self._summary(now)
            self._check_stall(now)
        except Exception as error:  # an adapter bug must not end checkpointing for the rest of the run
            log.exception("checkpoint_tick_failed", error=str(error))
            self._health.fail("checkpoint", f"checkpoint failed unexpectedly: {error}")
        finally:
            self._schedule_checkpoint()

    def _check_stall(self, now: float) -> None:
        """Pub/Sub can hang instead of failing (a stalled connection): readiness says so."""
        in_flight = self._reliable.in_flight
        if in_flight and now - self._last_ack_at >= self._settings.stall_after_s:
            if not self._stalled:
                self._stalled = True
                log.warning("publishing_stalled", in_flight=in_flight, seconds=round(now - self._last_ack_at, 1))
            self._health.fail(
                "pubsub", f"no acknowledgement for {now - self._last_ack_at:.0f} s, {in_flight} in flight"
            )
        elif self._stalled:
            self._stalled = False
            self._health.ok("pubsub")
            log.info("publishing_resumed")

    def _summary(self, now: float) -> None:
        """The INFO-level progress line (per-event lines are DEBUG)."""
        counters = self._counters
        elapsed = max(1e-9, now - counters.reported_at)
        log.info(
            "progress",
            events=counters.events,
            published=counters.published,
            rejected=counters.rejected,
            skipped=counters.skipped,
            events_per_second=round((counters.events - counters.reported_events) / elapsed, 1),
            in_flight=self._reliable.in_flight,
            checkpoint=None if self._last_saved is None else self._last_saved.data[:32],
        )
        counters.reported_events, counters.reported_at = counters.events, now

    def _checkpoint(self) -> bool:
        """Save the watermark if it moved; False when the store refused or failed."""
        with self._checkpoint_lock:
            mark = self._tracker.watermark
            if mark is None or mark[0] == self._last_saved:
                return True
            token, cluster_time = mark
            checkpoint = Checkpoint(token=token, cluster_time=cluster_time, updated_at=self._clock.now())
            try:
                self._store.save(self._settings.stream_id, checkpoint, generation=self._settings.generation)
            except StaleCheckpoint as error:
                self._set_fatal(
                    f"checkpoint refused: {error}",
                    "another instance owns this stream now (lease taken over); this one stops",
                    drain=False,
                )
                return False
            except TokenStoreError as error:
                self._checkpoint_retry(error)
                return False
            self._last_saved = token
            self._counters.checkpoints += 1
            self._checkpoint_failures, self._first_checkpoint_failure = 0, None
            self._next_checkpoint_at = 0.0
            self._metrics.checkpoint_saved(at=checkpoint.updated_at or self._clock.now())
            self._health.ok("checkpoint")
            return True

    def _checkpoint_retry(self, error: TokenStoreError) -> None:
        now = self._clock.monotonic()
        self._checkpoint_failures += 1
        if self._first_checkpoint_failure is None:
            self._first_checkpoint_failure = now
        self._metrics.retried(kind="checkpoint")
        delay = self._settings.retry.delay(self._checkpoint_failures)
        self._next_checkpoint_at = now + delay
        log.warning("checkpoint_retry", error=str(error), attempt=self._checkpoint_failures)
        self._health.fail("checkpoint", f"checkpoint store unreachable: {error}")

    # ------------------------------------------------------------------ shutdown

    def _shutdown(self, reason: StopReason) -> RunResult:
        if reason is StopReason.END_OF_SOURCE:  # a finished file: deliver everything, however long it takes
            while not self._clock.wait_until(
                lambda: self._reliable.in_flight == 0 or self._stop.is_set() or self._drain_pointless,
                self._settings.checkpoint_interval_s,
            ):
                pass
        deadline = self._clock.monotonic() + self._settings.stop_deadline_s * 0.8
        drained = self._reliable.in_flight == 0
        if not drained and not self._hard_stop.is_set():
            self._clock.wait_until(
                lambda: self._reliable.in_flight == 0 or self._hard_stop.is_set() or self._drain_pointless,
                max(0.0, deadline - self._clock.monotonic()),
            )
            drained = self._reliable.in_flight == 0
        if self._timer is not None:
            self._timer.cancel()
        self._reliable.close()
        if not self._hard_stop.is_set():
            self._final_checkpoint(deadline)
        self._health.set_stream_open(False)
        if reason is StopReason.END_OF_SOURCE and self._fatal is not None:
            reason = StopReason.FATAL
        error, recovery = self._fatal if self._fatal else (None, None)
        result = RunResult(
            reason=reason,
            events=self._counters.events,
            checkpoint=self._last_saved,
            error=error,
            recovery=recovery,
            drained=drained,
        )
        log.info(
            "pipeline_stopped",
            reason=reason.value,
            events=result.events,
            published=self._counters.published,
            rejected=self._counters.rejected,
            skipped=self._counters.skipped,
            checkpoints=self._counters.checkpoints,
            in_flight=self._reliable.in_flight,
            checkpoint=None if self._last_saved is None else self._last_saved.data,
        )
        return result

    def _final_checkpoint(self, deadline: float) -> None:
        while not self._checkpoint() and not self._drain_pointless:
            if self._clock.monotonic() >= deadline or self._hard_stop.is_set():
                log.error("final_checkpoint_failed", recovery="the next start resumes from the last saved one")
                return
            self._clock.wait_until(self._hard_stop.is_set, min(0.5, max(0.0, deadline - self._clock.monotonic())))
