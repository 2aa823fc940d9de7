"""The reader loop: source batches in, processed, registered in the watermark, handed to the dispatcher.

Everything per event happens here, on the one thread that calls :meth:`Reader.run`, with no hand-off:
process, note the outcome, append to the batch's watermark entries and parcels. A batch then costs one
watermark lock and one dispatcher call. Reading pauses while ``max_in_flight_messages`` are
unacknowledged (the memory bound): a batch is cut short and handed over before it would exceed it. A
source error is retried with backoff from the last item read; ``on_invalid: fail`` hands over what came
before the invalid event and stops there.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable

import structlog

from application.dispatcher import Dispatcher, Parcel
from application.health import HealthState
from application.outcomes import Publish, Reject
from application.ports import ChangeSource, Clock, Heartbeat, Metrics, SourceError, SourceItem, StartPosition
from application.processing import ProcessingStep
from application.run_control import PipelineSettings, RunControl, StopReason
from application.watermark import Entry, WatermarkTracker
from domain.change_event import ChangeEvent, ResumeToken
from domain.envelope import OutboundMessage, event_id

log = structlog.get_logger("connector.pipeline")


class Reader:
    """Reads one stream until its source ends, a stop is requested, or a fatal error."""

    def __init__(
        self,
        *,
        source: ChangeSource,
        step: ProcessingStep,
        tracker: WatermarkTracker,
        dispatcher: Dispatcher,
        control: RunControl,
        clock: Clock,
        metrics: Metrics,
        health: HealthState,
        settings: PipelineSettings,
    ) -> None:
        self._source, self._step, self._tracker, self._dispatcher = source, step, tracker, dispatcher
        self._control, self._clock, self._metrics, self._health = control, clock, metrics, health
        self._settings = settings
        self.last_read: ResumeToken | None = None
        # Decided once: building the per-event line's fields costs more than the event when nobody reads them.
        level = logging.INFO if settings.event_log_level == "info" else logging.DEBUG
        self._log_event = log.info if level == logging.INFO else log.debug
        self._events_logged = log.is_enabled_for(level)

    def run(self, start: StartPosition) -> StopReason:
        position, attempt, first_failure = start, 0, None
        control = self._control
        while True:
            try:
                opened = not getattr(self._source, "reports_open", False)  # else open once it yields
                self._health.set_stream_open(opened)
                for batch in self._source.read(position):
                    attempt, first_failure = 0, None
                    if not opened:  # the source answered (for MongoDB: the change stream's aggregate did)
                        opened = True
                        self._health.set_stream_open(True)
                    if control.stopping():
                        break
                    if not self._handle(batch):
                        return StopReason.INVALID_DOCUMENT
                    if control.stopping():
                        break
                else:
                    if not control.stopping():
                        return StopReason.END_OF_SOURCE
                return StopReason.FATAL if control.fatal else StopReason.STOP_REQUESTED
            except SourceError as error:
                self._health.set_stream_open(False)
                now = self._clock.monotonic()
                first_failure = now if first_failure is None else first_failure
                if not error.retryable or self._settings.retry.gave_up(first_failure, now):
                    control.set_fatal(f"change stream failed: {error}", error.recovery, usage=error.usage)
                    return StopReason.FATAL
                attempt += 1
                self._metrics.retried(kind="source")
                delay = self._settings.retry.delay(attempt)
                log.warning("source_retry", error=str(error), attempt=attempt, delay_seconds=round(delay, 3))
                self._health.fail("source", f"change stream error, retrying: {error}")
                if self._clock.wait_until(control.stop.is_set, delay):
                    return StopReason.STOP_REQUESTED
                self._health.ok("source")
                if self.last_read is not None:
                    position = StartPosition(resume_after=self.last_read)

    def _handle(self, batch: Iterable[SourceItem]) -> bool:
        """Process a batch and hand it over; False when ``on_invalid: fail`` must stop here."""
        control, dispatcher, step = self._control, self._dispatcher, self._step
        limit = self._settings.max_in_flight_messages
        entries: list[Entry] = []
        parcels: list[Parcel] = []
        reads: Counter[tuple[str, str]] = Counter()
        rejected = skipped = 0
        base = self._tracker.next_seq
        now = self._clock.monotonic()
        try:
            for item in batch:
                if control.stopping():
                    break
                if isinstance(item, Heartbeat):
                    entries.append((item.token, item.cluster_time, 0))
                    self.last_read = item.token
                    continue
                event = item.event
                self.last_read = event.token
                collection = event.collection or ""
                reads[(collection, event.operation)] += 1
                outcome = step.process(event)
                dead_letter = False
                if isinstance(outcome, Publish):
                    messages, counted = outcome.messages, True
                    if self._events_logged:
                        self._log_processed(event, messages[0])
                elif isinstance(outcome, Reject):
                    rejected += 1
                    self._metrics.event_rejected(collection=collection, operation=event.operation,
                                                 reason=outcome.reason)  # fmt: skip
                    if self._settings.fail_on_invalid:
                        self._hand_over(entries, parcels)
                        entries, parcels = [], []
                        control.set_fatal(
                            f"document rejected ({outcome.reason}) at event {event_id(event.token.data)} and "
                            "schemas.on_invalid is fail",
                            "fix the document (or its schema), or set schemas.on_invalid to skip or dead_letter; "
                            "the checkpoint stays before this event",
                        )
                        return False
                    messages, counted = (() if outcome.dead_letter is None else (outcome.dead_letter,)), False
                    dead_letter = True
                else:
                    skipped += 1
                    self._metrics.event_skipped(reason=outcome.reason)
                    messages = ()
                if messages and dispatcher.in_flight + len(parcels) + len(messages) > limit:
                    self._hand_over(entries, parcels)
                    entries, parcels = [], []
                    base = self._tracker.next_seq
                    self._await_capacity(len(messages))
                    now = self._clock.monotonic()
                seq = base + len(entries)
                entries.append((event.token, event.cluster_time, len(messages)))
                for index, message in enumerate(messages):
                    parcels.append(Parcel(message, seq, now, counted and index == 0, dead_letter))
            self._hand_over(entries, parcels)
            return True
        finally:
            control.count(events=sum(reads.values()), rejected=rejected, skipped=skipped)
            for (collection, operation), count in reads.items():
                self._metrics.event_read(collection=collection, operation=operation, count=count)

    def _log_processed(self, event: ChangeEvent, message: OutboundMessage) -> None:
        """The per-event line, as the message goes to the publisher: what an operator searches by."""
        attributes = message.attributes
        fields = {
            "event_id": message.event_id,
            "correlation_id": attributes.get("correlation_id"),
            "collection": event.collection,
            "operation": event.operation,
            "document_id": event.document_id,
            "schema_version": attributes.get("schema_version"),
            "topic": message.topic,
        }
        document = event.full_document
        if isinstance(document, dict) and "warehouse_id" in document:
            fields["warehouse_id"] = document["warehouse_id"]
        self._log_event("event_processed", **fields)

    def _hand_over(self, entries: list[Entry], parcels: list[Parcel]) -> None:
        if entries:
            self._tracker.add_many(entries)
        if parcels:
            self._dispatcher.submit(parcels)

    def _await_capacity(self, needed: int) -> None:
        """Until ``needed`` more messages fit under the bound (or nothing is in flight: a fan-out larger
        than the bound still goes, alone)."""
        limit, control, dispatcher = self._settings.max_in_flight_messages, self._control, self._dispatcher

        def room() -> bool:
            in_flight = dispatcher.in_flight
            return in_flight + needed <= limit or in_flight == 0 or control.stopping()

        while not room():
            self._clock.wait_until(room, self._settings.checkpoint_interval_s)
