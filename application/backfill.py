"""Backfill: existing documents through the same processing step, as ``operation: "snapshot"`` events.

Documents are read in ``_id`` order and published like change events of the same document (same
ordering key, same envelope), so a consumer sees one stream, through the same publish-and-settle core
as ``run`` (``application.dispatcher``). The last acknowledged ``_id`` is kept in the token store
under ``backfill:<database>.<collection>`` so a crash resumes where it stopped. It is saved like any
checkpoint (``TokenStore.save`` under a lease, owner ``backfill``: a newer backfill of the collection
fences out an older one), as ``~<count> <key>``: the count of documents so far, zero-padded, keeps
the stored tokens in order, which the store's "never backwards" rule needs (``_id`` keys in Extended
JSON do not sort, e.g. ``10`` before ``9``).

Gap-free hand-off: the caller records the cluster time before the scan. Every change after it is the
change stream's job; every change before it is already in the documents the scan reads. The only
way to lose a change is a stream that starts *later* than that time, i.e. one with no checkpoint
that would start at "now": then its position is set to the recorded time. A document changed during
the scan can appear twice (snapshot and change event): consumers keep the newer one (its
``cluster_time``, or the document's own version such as ``seq_no``).
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Callable, Iterable, Sequence
from datetime import datetime
from itertools import islice

import orjson
import structlog
from attrs import define, field, frozen

from application.backoff import RetryPolicy
from application.dispatcher import BatchLimits, Dispatcher, Parcel
from application.outcomes import Publish, Reject
from application.ports import (
    Checkpoint,
    Clock,
    Lease,
    Metrics,
    Publisher,
    PublishError,
    StaleCheckpoint,
    TokenStore,
    TokenStoreError,
)
from application.processing import ProcessingStep
from application.watermark import Entry, WatermarkTracker
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
    batch_max_messages: int = 1000  # per Publish request, and documents read per batch
    lease_ttl_s: float = 60.0


@define
class BackfillReport:
    read: int = 0
    published: int = 0
    rejected: dict[str, int] = field(factory=dict)
    resumed_after: str | None = None
    last_key: str | None = None


OWNER = "backfill"


def _position(count: int, key: str) -> str:
    return f"~{count:016d} {key}"


def _parse(stored: str) -> tuple[int, str]:
    """(documents so far, reader key) of a stored position; a bare key is from before the count."""
    if stored.startswith("~") and " " in stored:
        count, key = stored[1:].split(" ", 1)
        return int(count), key
    return 0, stored


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
        self._store = token_store
        self._clock = clock
        self._metrics = metrics
        self._settings = settings
        self._tracker = WatermarkTracker()  # entries carry the position to save, not the event's token
        self._dispatcher = Dispatcher(
            publisher=publisher, clock=clock, policy=retry, metrics=metrics, on_settled=self._settled,
            on_fatal=self._fatal, limits=BatchLimits(max_messages=settings.batch_max_messages),
        )  # fmt: skip
        self._report = BackfillReport()
        self._lock = threading.Lock()  # publish completions of different keys count concurrently
        self._saved: str | None = None
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

    def _stored(self) -> tuple[int, str] | None:
        stored = self._store.load(self.stream_id)
        return None if stored is None or stored.token is None else _parse(stored.token.data)

    def resume_after(self) -> str | None:
        """The reader key of the last acknowledged document of an earlier run (None: from the start)."""
        stored = self._stored()
        return None if stored is None else stored[1]

    def run(
        self, documents: Iterable[tuple[str, JsonObject]], *, progress: Callable[[BackfillReport], None] | None = None
    ) -> BackfillReport:
        progress = progress or (lambda report: None)
        settings = self._settings
        stored = self._stored()
        count = 0 if stored is None else stored[0]
        report = self._report = BackfillReport(resumed_after=None if stored is None else stored[1])
        lease = self._store.acquire_lease(self.stream_id, owner=OWNER, ttl_seconds=settings.lease_ttl_s)
        if lease is None:
            raise BackfillFailed(f"{self.stream_id} is leased by a running connector, not a backfill; stop it first")
        try:
            started = self._clock.monotonic()
            iterator = iter(documents)
            while True:
                self._await_capacity()
                self._check()
                batch = list(islice(iterator, max(1, min(settings.batch_max_messages, self._room()))))
                if not batch:
                    break
                count = self._hand_over(batch, count)
                report.read += len(batch)
                if self._clock.monotonic() - self._saved_at >= settings.checkpoint_interval_s:
                    self._save(lease, final=False)
                    progress(report)
                if settings.rate > 0:
                    ahead = report.read / settings.rate - (self._clock.monotonic() - started)
                    if ahead > 0:
                        self._clock.wait_until(lambda: self._error is not None, ahead)
            while not self._clock.wait_until(lambda: self._dispatcher.in_flight == 0 or self._error is not None, 1.0):
                progress(report)
            self._check()
            self._save(lease, final=True)
        finally:
            self._dispatcher.close()
            self._release(lease)
        report.last_key = report.last_key or report.resumed_after
        progress(report)
        return report

    def _room(self) -> int:
        return self._settings.max_in_flight_messages - self._dispatcher.in_flight

    def _hand_over(self, batch: Sequence[tuple[str, JsonObject]], count: int) -> int:
        settings, report = self._settings, self._report
        entries: list[Entry] = []
        parcels: list[Parcel] = []
        base, now = self._tracker.next_seq, self._clock.monotonic()
        for key, document in batch:
            count += 1
            event = snapshot_event(database=settings.database, collection=settings.collection, document=document)
            outcome = self._step.process(event)
            messages: tuple[OutboundMessage, ...]
            published = isinstance(outcome, Publish)
            if isinstance(outcome, Reject):
                report.rejected[outcome.reason.value] = report.rejected.get(outcome.reason.value, 0) + 1
                self._metrics.event_rejected(collection=settings.collection, operation=SNAPSHOT, reason=outcome.reason)
                messages = () if outcome.dead_letter is None else (outcome.dead_letter,)
            else:
                messages = outcome.messages if isinstance(outcome, Publish) else ()
            seq = base + len(entries)
            entries.append((ResumeToken(data=_position(count, key)), None, len(messages)))
            dead_letter = isinstance(outcome, Reject)
            parcels.extend(
                Parcel(message, seq, now, published and i == 0, dead_letter) for i, message in enumerate(messages)
            )
        self._tracker.add_many(entries)
        self._dispatcher.submit(parcels)
        return count

    def _settled(self, parcels: Sequence[Parcel], now: float) -> None:
        self._tracker.settle_many([parcel.seq for parcel in parcels])
        published = sum(1 for parcel in parcels if parcel.counted)
        for parcel in parcels:
            if parcel.dead_letter:
                reason = parcel.message.attributes.get("reason", "")
                self._metrics.dead_lettered(collection=self._settings.collection, reason=reason)
        with self._lock:
            self._report.published += published
        if published:
            self._metrics.events_published(collection=self._settings.collection, operation=SNAPSHOT, count=published,
                                           latency_seconds=now - parcels[0].handed_at)  # fmt: skip

    def _await_capacity(self) -> None:
        while self._room() <= 0 and self._error is None:
            self._clock.wait_until(lambda: self._room() > 0 or self._error is not None, 1.0)

    def _save(self, lease: Lease, *, final: bool) -> None:
        self._saved_at = self._clock.monotonic()
        mark = self._tracker.watermark
        if mark is None or mark[0].data == self._saved:
            return
        checkpoint = Checkpoint(token=mark[0], cluster_time=None, updated_at=self._clock.now())
        try:
            self._store.save(self.stream_id, checkpoint, generation=lease.generation)
        except StaleCheckpoint as error:
            raise BackfillFailed(f"{error}: another backfill of this collection started; this one stops") from None
        except TokenStoreError as error:
            if final:
                raise BackfillFailed(f"could not save the position: {error}; rerun to resume") from None
            log.warning("backfill_checkpoint_retry", error=str(error))  # the next interval tries again
            return
        self._saved = mark[0].data
        self._report.last_key = _parse(self._saved)[1]

    def _release(self, lease: Lease) -> None:
        try:
            self._store.release_lease(lease)
        except Exception as error:  # it expires by itself; the next backfill takes it over regardless
            log.warning("backfill_lease_release_failed", error=str(error))


def hand_off(*, store: TokenStore, stream_id: str, scan_started: ClusterTime, now: datetime) -> str:
    """Make sure the change stream covers everything from ``scan_started`` on; says what it did."""
    stored = store.load(stream_id)
    if stored is not None:
        return f"stream {stream_id} resumes from its own checkpoint, which already covers the scan"
    store.set_position(stream_id, Checkpoint(token=None, cluster_time=scan_started, updated_at=now))
    return f"stream {stream_id} had no checkpoint: set to start at the scan's cluster time"
