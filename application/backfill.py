"""Backfill: existing documents through the same processing step, as ``operation: "snapshot"`` events.

Documents are read in ``_id`` order and published like change events of the same document (same
ordering key, same envelope), so a consumer sees one stream. The last acknowledged ``_id`` is kept
in the token store under ``backfill:<database>.<collection>`` so a crash resumes where it stopped.

Gap-free hand-off: the caller records the cluster time before the scan. Every change after it is the
change stream's job; every change before it is already in the documents the scan reads. The only
way to lose a change is a stream that starts *later* than that time, i.e. one with no checkpoint
that would start at "now": then its position is set to the recorded time. A document changed during
the scan can appear twice (snapshot and change event): consumers keep the newer one (its
``cluster_time``, or the document's own version such as ``seq_no``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterable
from datetime import datetime

import orjson
import structlog
from attrs import define, field, frozen

from application.backoff import RetryPolicy
from application.outcomes import Publish, Reject
from application.ports import Checkpoint, Clock, Metrics, Publisher, PublishError, TokenStore
from application.processing import ProcessingStep
from application.reliable_publisher import ReliablePublisher
from application.watermark import WatermarkTracker
from domain.change_event import ABSENT, ChangeEvent, ClusterTime, OperationKind, ResumeToken
from domain.envelope import OutboundMessage
from domain.json_types import JsonObject

log = structlog.get_logger("connector.backfill")

SNAPSHOT = "snapshot"


def backfill_stream_id(database: str, collection: str) -> str:
    return f"backfill:{database}.{collection}"


def snapshot_event(*, database: str, collection: str, document: JsonObject) -> ChangeEvent:
    """A document as a ``snapshot`` event; its token (so its ``event_id``) depends only on where the
    document lives, so re-running a backfill publishes the same ids and consumers can de-duplicate."""
    key: JsonObject = {"_id": document.get("_id")}
    identity = orjson.dumps([database, collection, key["_id"]], option=orjson.OPT_SORT_KEYS)
    token = ResumeToken(data="SNAPSHOT" + hashlib.sha256(identity).hexdigest().upper())
    return ChangeEvent(
        token=token,
        operation=SNAPSHOT,
        kind=OperationKind.DATA,
        cluster_time=None,
        wall_time=None,
        database=database,
        collection=collection,
        document_key=key,
        full_document=document,
        update_description=ABSENT,
        full_document_before_change=ABSENT,
        operation_description=ABSENT,
        rename_to=None,
        raw={"operationType": SNAPSHOT, "fullDocument": document},
    )


class BackfillFailed(Exception):
    """Publishing failed for good; the saved position lets a rerun continue."""


@frozen
class BackfillSettings:
    database: str
    collection: str
    max_in_flight_messages: int = 10_000
    checkpoint_interval_s: float = 1.0  # how often the last acknowledged _id is saved
    rate: float = 0.0  # documents per second; 0 = unlimited


@define
class BackfillReport:
    read: int = 0
    published: int = 0
    rejected: dict[str, int] = field(factory=dict)
    resumed_after: str | None = None
    last_key: str | None = None


class Backfill:
    """Runs one collection's snapshot. The reader yields ``(key, document)`` in ``_id`` order: ``key`` is
    the reader's own resume position for that document (opaque here), ``document`` its JSON form."""

    def __init__(
        self,
        *,
        step: ProcessingStep,
        publisher: Publisher,
        retry: RetryPolicy,
        token_store: TokenStore,
        clock: Clock,
        metrics: Metrics,
        settings: BackfillSettings,
    ) -> None:
        self._step = step
        self._error: PublishError | None = None
        self._publisher = ReliablePublisher(
            publisher=publisher, clock=clock, policy=retry, metrics=metrics, on_fatal=self._fatal
        )
        self._store = token_store
        self._clock = clock
        self._metrics = metrics
        self._settings = settings
        self._tracker = WatermarkTracker()
        self._keys: dict[str, str] = {}  # event token -> reader key, in source order
        self._saved: str | None = None
        self._last_key: str | None = None
        self._saved_at = clock.monotonic()

    def _fatal(self, error: PublishError) -> None:
        self._error = error
        self._clock.notify()

    def _check(self) -> None:
        if self._error is not None:
            hint = f"; {self._error.recovery}" if self._error.recovery else ""
            raise BackfillFailed(f"publishing failed: {self._error}{hint}; rerun to resume after the last saved _id")

    @property
    def stream_id(self) -> str:
        return backfill_stream_id(self._settings.database, self._settings.collection)

    def resume_after(self) -> str | None:
        """The reader key of the last acknowledged document of an earlier run (None: from the start)."""
        stored = self._store.load(self.stream_id)
        return None if stored is None or stored.token is None else stored.token.data

    def run(
        self, documents: Iterable[tuple[str, JsonObject]], *, progress: Callable[[BackfillReport], None] | None = None
    ) -> BackfillReport:
        self._progress = progress or (lambda report: None)
        settings = self._settings
        report = BackfillReport(resumed_after=self.resume_after())
        started = self._clock.monotonic()
        for key, document in documents:
            event = snapshot_event(database=settings.database, collection=settings.collection, document=document)
            self._keys[event.token.data] = key
            report.read += 1
            self._dispatch(event, report)
            self._await_capacity()
            self._check()
            if self._clock.monotonic() - self._saved_at >= settings.checkpoint_interval_s:
                self._save()
                self._progress(report)
            if settings.rate > 0:
                ahead = report.read / settings.rate - (self._clock.monotonic() - started)
                if ahead > 0:
                    self._clock.wait_until(lambda: False, ahead)
        while not self._clock.wait_until(lambda: self._publisher.in_flight == 0 or self._error is not None, 1.0):
            self._progress(report)
        self._check()
        self._save()
        report.last_key = self._last_key or report.resumed_after
        self._progress(report)
        return report

    def _dispatch(self, event: ChangeEvent, report: BackfillReport) -> None:
        outcome = self._step.process(event)
        messages: tuple[OutboundMessage, ...]
        if isinstance(outcome, Reject):
            report.rejected[outcome.reason.value] = report.rejected.get(outcome.reason.value, 0) + 1
            self._metrics.event_rejected(
                collection=self._settings.collection, operation=SNAPSHOT, reason=outcome.reason
            )
            messages = () if outcome.dead_letter is None else (outcome.dead_letter,)
        elif isinstance(outcome, Publish):
            messages = outcome.messages
        else:
            messages = ()
        if not messages:
            self._tracker.add(event.token, None, settled=True)
            return
        seq = self._tracker.add(event.token, None)
        published = isinstance(outcome, Publish)

        def done(latency: float) -> None:
            self._tracker.settle(seq)
            if published:
                report.published += 1
                self._metrics.event_published(collection=self._settings.collection, operation=SNAPSHOT,
                                              latency_seconds=latency)  # fmt: skip
            elif isinstance(outcome, Reject):
                self._metrics.dead_lettered(collection=self._settings.collection, reason=outcome.reason)

        for message in messages:
            self._publisher.publish(message, done)

    def _await_capacity(self) -> None:
        limit = self._settings.max_in_flight_messages
        while self._publisher.in_flight >= limit and self._error is None:
            self._clock.wait_until(lambda: self._publisher.in_flight < limit or self._error is not None, 1.0)

    def _save(self) -> None:
        self._saved_at = self._clock.monotonic()
        mark = self._tracker.watermark
        if mark is None or mark[0].data == self._saved:
            return
        token = mark[0].data
        key = self._keys[token]
        self._store.set_position(
            self.stream_id, Checkpoint(token=ResumeToken(data=key), cluster_time=None, updated_at=self._clock.now())
        )
        self._saved, self._last_key = token, key
        while self._keys:  # forget everything up to the watermark: memory stays flat on big collections
            oldest = next(iter(self._keys))
            if oldest == token:
                break
            del self._keys[oldest]


def hand_off(*, store: TokenStore, stream_id: str, scan_started: ClusterTime, now: datetime) -> str:
    """Make sure the change stream covers everything from ``scan_started`` on; says what it did."""
    stored = store.load(stream_id)
    if stored is not None:
        return f"stream {stream_id} resumes from its own checkpoint, which already covers the scan"
    store.set_position(stream_id, Checkpoint(token=None, cluster_time=scan_started, updated_at=now))
    return f"stream {stream_id} had no checkpoint: set to start at the scan's cluster time"
