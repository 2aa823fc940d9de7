"""The streaming pipeline: source -> processing step -> Publish requests, with watermark checkpoints.

It wires four named parts and owns the run's beginning and end:

- the **reader** (``application.reader``) reads source batches on the calling thread, processes them
  and hands each batch over at once;
- the **dispatcher** (``application.dispatcher``) turns batches into per-key Publish requests and
  retries them; its completions settle each request's messages in the **watermark** together;
- the **checkpointer** (``application.checkpointer``) saves the watermark on a timer through its own
  store thread, watches for a stalled Pub/Sub and logs progress;
- :class:`RunControl` holds stop requests, the first fatal error and the counters, under one lock.

A stop request drains what is in flight and writes a final checkpoint within the deadline; a second
one returns at once. Nothing here waits except through the clock.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

import structlog

from application.checkpointer import Checkpointer, InlineCalls
from application.dispatcher import BatchLimits, Dispatcher, Parcel
from application.health import HealthState
from application.ports import (
    ChangeSource,
    Clock,
    Metrics,
    Publisher,
    PublishError,
    StartPosition,
    StoreCalls,
    TokenStore,
)
from application.processing import ProcessingStep
from application.reader import Reader
from application.run_control import PipelineSettings, RunControl, RunResult, StopReason
from application.watermark import WatermarkTracker

__all__ = ["Pipeline", "PipelineSettings", "RunResult", "StopReason"]

log = structlog.get_logger("connector.pipeline")


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
        store_calls: StoreCalls | None = None,
    ) -> None:
        self._source, self._clock, self._metrics, self._settings = source, clock, metrics, settings
        self._health = health or HealthState()
        self._control = RunControl(health=self._health, on_fatal=self._interrupt)
        self._tracker = WatermarkTracker()
        self._dispatcher = Dispatcher(
            publisher=publisher,
            clock=clock,
            policy=settings.retry,
            metrics=metrics,
            on_settled=self._settled,
            on_fatal=self._fatal_publish,
            limits=BatchLimits(max_messages=settings.batch_max_messages),
        )
        tracker, dispatcher, control, health = self._tracker, self._dispatcher, self._control, self._health
        self._reader = Reader(source=source, step=step, tracker=tracker, dispatcher=dispatcher, control=control,
                              clock=clock, metrics=metrics, health=health, settings=settings)  # fmt: skip
        self._checkpointer = Checkpointer(store=token_store, calls=store_calls or InlineCalls(), tracker=tracker,
                                          dispatcher=dispatcher, control=control, clock=clock, metrics=metrics,
                                          health=health, settings=settings)  # fmt: skip

    def request_stop(self) -> None:
        """First call: stop reading, drain, checkpoint. Second call: return at once."""
        self._control.request_stop()
        self._source.close()
        self._clock.notify()

    @property
    def in_flight(self) -> int:
        return self._dispatcher.in_flight

    @property
    def checkpoints_written(self) -> int:
        return self._control.counters.checkpoints

    def run(self, start: StartPosition) -> RunResult:
        self._checkpointer.start(start.resume_after or start.start_after)
        reason = self._reader.run(start)
        return self._shutdown(reason)

    def _settled(self, parcels: Sequence[Parcel], now: float) -> None:
        """One Publish request acknowledged: its events settle in the watermark together."""
        self._tracker.settle_many([parcel.seq for parcel in parcels])
        groups: Counter[tuple[str, str]] = Counter()
        for parcel in parcels:
            attributes = parcel.message.attributes
            if parcel.counted:
                groups[(attributes.get("collection", ""), attributes.get("operation", ""))] += 1
            elif parcel.dead_letter:
                self._metrics.dead_lettered(collection=attributes.get("collection", ""),
                                            reason=attributes.get("reason", ""))  # fmt: skip
        latency = now - parcels[0].handed_at
        for (collection, operation), count in groups.items():
            self._metrics.events_published(collection=collection, operation=operation, count=count,
                                           latency_seconds=latency)  # fmt: skip
        self._control.count(published=sum(groups.values()))
        log.debug("request_published", topic=parcels[0].message.topic, ordering_key=parcels[0].message.ordering_key,
                  messages=len(parcels), first_event_id=parcels[0].message.event_id,
                  last_event_id=parcels[-1].message.event_id, latency_seconds=round(latency, 4))  # fmt: skip

    def _fatal_publish(self, error: PublishError) -> None:
        self._control.set_fatal(f"publishing failed: {error}", error.recovery, drain=False)

    def _interrupt(self) -> None:
        self._source.close()
        self._clock.notify()

    def _shutdown(self, reason: StopReason) -> RunResult:
        control, clock, dispatcher = self._control, self._clock, self._dispatcher
        if reason is StopReason.END_OF_SOURCE:  # a finished file: deliver everything, however long it takes
            while not clock.wait_until(
                lambda: dispatcher.in_flight == 0 or control.stop.is_set() or control.drain_pointless,
                self._settings.checkpoint_interval_s,
            ):
                pass
        deadline = clock.monotonic() + self._settings.stop_deadline_s * 0.8
        drained = dispatcher.in_flight == 0
        if not drained and not control.hard_stop.is_set():
            clock.wait_until(
                lambda: dispatcher.in_flight == 0 or control.hard_stop.is_set() or control.drain_pointless,
                max(0.0, deadline - clock.monotonic()),
            )
            drained = dispatcher.in_flight == 0
        self._checkpointer.cancel()
        dispatcher.close()
        if not control.hard_stop.is_set():
            self._checkpointer.final(deadline)
        self._health.set_stream_open(False)
        if reason is StopReason.END_OF_SOURCE and control.fatal is not None:
            reason = StopReason.FATAL
        error, recovery = control.fatal if control.fatal else (None, None)
        counters = control.counters
        saved = self._checkpointer.last_saved
        result = RunResult(reason=reason, events=counters.events, checkpoint=saved, error=error, recovery=recovery,
                           drained=drained, usage_error=self._control.usage_error)  # fmt: skip
        log.info(
            "pipeline_stopped",
            reason=reason.value,
            events=result.events,
            published=counters.published,
            rejected=counters.rejected,
            skipped=counters.skipped,
            checkpoints=counters.checkpoints,
            in_flight=dispatcher.in_flight,
            checkpoint=None if saved is None else saved.data,
        )
        return result
