"""The ChangeSource port on a MongoDB change stream (pymongo): one ``watch()`` per database.

Choices, each from a failure mode users of other connectors have hit:
- A server-side ``$match`` keeps unconfigured collections off the wire (and out of the oplog scan
  cost on our side); ``dropDatabase`` and ``invalidate`` have no ``ns.coll`` and are let through.
- A partition unit (``streams[].partitions``) adds ``$toHashedIndexKey`` of ``documentKey._id`` modulo
  N to that filter, so each instance's stream carries only its share (the expression is documented
  from MongoDB 7.0; not verified here, where no server can run).
- ``$changeStreamSplitLargeEvent`` (7.0+) keeps a 16 MB pre/post-image from killing the stream with
  BSONObjectTooLarge (10334); fragments are joined before the pipeline sees them.
- ``try_next`` with ``max_await_time_ms`` instead of a blocking iterator, so an idle stream still
  yields the server's post-batch resume token as a heartbeat: checkpointing it keeps the stored token
  from falling off the oplog while nothing happens on the watched collections.
- Events go on in batches: what one getMore brought, cut at ``batch_size`` events or
  ``batch_latency_s`` after the first, and handed on as soon as the stream has nothing more at hand.
- We always resume with ``startAfter``: it accepts every token ``resumeAfter`` does and also the
  token of an ``invalidate``, after which the stream continues.
- pymongo already resumes once after a resumable error (with ``resumeAfter``); what fails after that
  is classified by ``adapters.mongo_errors`` (the driver's change-stream rules): resumable errors go
  back to the pipeline's backoff, the rest stop the worker with the command that recovers.
- A cursor the server closes (id 0) without an ``invalidate`` is not the end of a live stream: the
  stream is reopened after the last token, and a line says so.
- A change event we cannot parse stops the worker once, with the ``tokens set --token`` command that
  skips exactly that event (``malformed_event``): retrying would loop on it forever, and skipping it
  silently would lose it. The README documents the choice.
- The first item is yielded as soon as the aggregate answered (the pipeline reports the stream open
  on it): the start token at once when there is one, else the first post-batch token.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator, Sequence
from typing import Any

import structlog
from bson import Timestamp
from pymongo import errors as pymongo_errors

from adapters.mongo_errors import (
    EXPANDED_EVENTS_MIN_WIRE_VERSION,
    NON_RESUMABLE_TRIES,
    SPLIT_EVENTS_MIN_WIRE_VERSION,
    classify,
    is_resumable,
    pre_images_unsupported,
)
from application.ports import Heartbeat, SourceBatch, SourceError, SourceEvent, SourceItem, StartPosition
from domain.bson_json import bson_to_json
from domain.change_event import (
    ChangeEvent,
    ClusterTime,
    MalformedEventError,
    OperationKind,
    ResumeToken,
    parse_change_event,
)
from domain.partitions import StreamUnit, plan_units
from domain.redaction import redact
from domain.split_events import SplitEventAssembler, SplitEventError


def _log() -> Any:
    """For the stream's rare lines: a fresh logger, bound at use (so tests can capture the lines)."""
    return structlog.get_logger("connector.mongodb")


def cluster_time_of_token(data: str) -> ClusterTime | None:
    """A KeyString resume token starts with the cluster time: ``82`` + 8 hex seconds + 8 hex increment."""
    if len(data) >= 18 and data[:2] == "82":
        try:
            return ClusterTime(seconds=int(data[2:10], 16), increment=int(data[10:18], 16))
        except ValueError:
            return None
    return None


def _token_document(token: ResumeToken) -> dict[str, Any]:
    import base64

    document: dict[str, Any] = {"_data": token.data}
    if token.type_bits is not None:
        document["_typeBits"] = base64.b64decode(token.type_bits)
    return document


def unit_filter(unit: StreamUnit) -> dict[str, Any]:
    """The server-side ``$match`` of a stream unit: the twin of :meth:`StreamUnit.owns`."""
    partition = unit.partition
    if partition is None:
        clauses: list[dict[str, Any]] = [{"ns.coll": {"$in": list(unit.unpartitioned)}}]
        if unit.partitioned:
            clauses.append({"ns.coll": {"$in": list(unit.partitioned)}, "documentKey._id": {"$exists": False}})
        clauses.append({"operationType": {"$in": ["dropDatabase", "invalidate"]}})
        return {"$or": clauses}
    share = {"$abs": {"$mod": [{"$toHashedIndexKey": "$documentKey._id"}, partition.count]}}
    return {
        "$or": [
            {
                "ns.coll": partition.collection,
                "documentKey._id": {"$exists": True},
                "$expr": {"$eq": [share, partition.index]},
            },
            {"operationType": "invalidate"},
        ]
    }


class MongoChangeSource:
    """Implements the ChangeSource port. ``client`` is a ``MongoClient`` (or a driver-level double).

    Watches one stream ``unit`` (see ``domain.partitions``); ``collections`` is the short form for
    the unpartitioned base unit of those collections."""

    reports_open = True  # the first item comes as soon as the aggregate answered: readiness waits for it

    def __init__(
        self,
        *,
        client: Any,
        database: str,
        collections: Sequence[str] = (),
        full_document: str = "updateLookup",
        full_document_before_change: str = "off",
        batch_size: int = 1000,
        max_await_time_ms: int = 1000,
        unit: StreamUnit | None = None,
        batch_latency_s: float = 0.05,
    ) -> None:
        self._batch_latency_s = batch_latency_s
        self._client = client
        self._database = database
        self._unit = unit or plan_units(database=database, partitions=[(c, 1) for c in collections])[0]
        self._full_document = full_document
        self._before_change = full_document_before_change
        self._batch_size = batch_size
        self._max_await_time_ms = max_await_time_ms
        self._closed = False
        self._failures = 0  # consecutive non-resumable failures; any item read resets it
        self._position: ClusterTime | None = None

    def close(self) -> None:
        self._closed = True

    def _wire_version(self) -> int:
        hello = self._client.admin.command("hello")
        return int(hello.get("maxWireVersion", 0))

    def watch_arguments(self, start: StartPosition, wire_version: int) -> tuple[list[dict[str, Any]], dict[str, Any]]:
        """The aggregation pipeline and ``watch()`` keyword arguments for ``start``."""
        pipeline: list[dict[str, Any]] = [{"$match": unit_filter(self._unit)}]
        if wire_version >= SPLIT_EVENTS_MIN_WIRE_VERSION:
            pipeline.append({"$changeStreamSplitLargeEvent": {}})
        kwargs: dict[str, Any] = {
            "full_document": None if self._full_document == "default" else self._full_document,
            "batch_size": self._batch_size,
            "max_await_time_ms": self._max_await_time_ms,
        }
        if self._before_change != "off":
            kwargs["full_document_before_change"] = self._before_change
        if wire_version >= EXPANDED_EVENTS_MIN_WIRE_VERSION:
            kwargs["show_expanded_events"] = True
        token = start.start_after or start.resume_after
        if token is not None:
            kwargs["start_after"] = _token_document(token)
        elif start.at_time is not None:
            kwargs["start_at_operation_time"] = Timestamp(start.at_time.seconds, start.at_time.increment)
        return pipeline, kwargs

    @property
    def position(self) -> ClusterTime | None:
        """The cluster time of the last item read (what the oplog gauges measure the margin of)."""
        return self._position

    def read(self, start: StartPosition) -> Iterator[SourceBatch]:
        self._closed = False
        position = start
        assembler = SplitEventAssembler()  # kept across reopenings: pymongo resumes mid-split too
        try:
            wire_version = self._wire_version()
            refused = pre_images_unsupported(self._before_change, wire_version)
            if refused is not None:
                raise refused
            opened = False
            while not self._closed:
                position = yield from self._read_stream(position, wire_version, assembler, announce=not opened)
                opened = True
        except SplitEventError as error:
            self._failures += 1  # fragments went missing: reread from the checkpoint, a bounded number of times
            raise SourceError(
                f"split event incomplete (try {self._failures}): {error}",
                retryable=self._failures < NON_RESUMABLE_TRIES,
                recovery="report it (README: Troubleshooting); the checkpoint is kept",
            ) from None
        except pymongo_errors.PyMongoError as error:
            if not is_resumable(error):
                self._failures += 1
            raise classify(error, stream_id=self._unit.stream_id, failures=self._failures) from None

    def _read_stream(
        self, start: StartPosition, wire_version: int, assembler: SplitEventAssembler, *, announce: bool
    ) -> Generator[SourceBatch, None, StartPosition]:
        """Batches from one ``watch()``; return where to reopen (after an invalidate or a closed cursor)."""
        pipeline, kwargs = self.watch_arguments(start, wire_version)
        last = start.start_after or start.resume_after  # of the last item yielded
        batch: list[SourceItem] = []
        opened = 0.0
        with self._client[self._database].watch(pipeline, **kwargs) as stream:
            if announce and last is not None:  # the aggregate answered: the stream is open (no progress yet)
                yield [Heartbeat(last, cluster_time_of_token(last.data))]
            try:
                while not self._closed and stream.alive:
                    if batch and not _buffered(stream):  # the next try_next waits on a getMore: hand on first
                        yield batch
                        batch = []
                    raw = stream.try_next()
                    if raw is None:
                        token = stream.resume_token
                        if token is not None and not assembler.pending:
                            heartbeat = ResumeToken.from_json(bson_to_json(token))
                            if last is None or heartbeat.data != last.data:
                                last = heartbeat
                                batch.append(self._heartbeat(heartbeat))
                        if batch:
                            yield batch
                            batch = []
                        continue
                    event = self._whole(raw, assembler)
                    if event is None:
                        continue
                    last = event.token
                    self._failures, self._position = 0, event.cluster_time or self._position
                    if not batch:
                        opened = time.monotonic()
                    batch.append(SourceEvent(event))
                    if event.kind is OperationKind.INVALIDATE:
                        yield batch
                        _log().info("change_stream_invalidated", resume_with="startAfter", token=event.token.data)
                        return StartPosition(start_after=event.token)
                    if len(batch) >= self._batch_size or time.monotonic() - opened >= self._batch_latency_s:
                        yield batch
                        batch = []
            except Exception:  # what was read before the failure still goes on (and gets checkpointed)
                if batch:
                    yield batch
                raise
            if self._closed:
                return start
            if batch:
                yield batch
            token = stream.resume_token
        after = ResumeToken.from_json(bson_to_json(token)) if token is not None else last
        _log().warning("change_stream_cursor_closed", reason="the server closed the cursor without an invalidate",
                       resume_with="startAfter", token=None if after is None else after.data)  # fmt: skip
        return start if after is None else StartPosition(start_after=after)

    def _heartbeat(self, token: ResumeToken) -> Heartbeat:
        """A post-batch token that moved: progress, so the count of failures in a row starts again."""
        cluster_time = cluster_time_of_token(token.data)
        self._failures, self._position = 0, cluster_time or self._position
        return Heartbeat(token, cluster_time)

    def _whole(self, raw: Any, assembler: SplitEventAssembler) -> ChangeEvent | None:
        """The parsed event once whole; a malformed one stops the worker once (``malformed_event``)."""
        mapped = bson_to_json(raw)
        assert isinstance(mapped, dict)
        whole = assembler.feed(mapped)
        if whole is None:
            return None
        try:
            return parse_change_event(whole)
        except MalformedEventError as error:
            token = whole.get("_id")
            data = token.get("_data") if isinstance(token, dict) else None
            skip = (
                f"connector admin tokens set {self._unit.stream_id} --token {data}"
                if isinstance(data, str)
                else f"connector admin tokens set {self._unit.stream_id} --at <a time after it>"
            )
            raise SourceError(
                f"malformed_event: change event {data or '<no token>'} cannot be read: {redact(str(error))}",
                retryable=False,
                recovery=f"to skip exactly this event: {skip}, then start again (README: Troubleshooting)",
            ) from None


def _buffered(stream: Any) -> bool:
    """Whether the change stream still holds documents of the last server batch, so ``try_next`` answers
    without a round trip. pymongo has no public call for it; an unknown shape counts as buffered, which
    only costs latency (the batch then ends at ``batch_latency_s`` or the idle getMore), never events."""
    has_next = getattr(getattr(stream, "_cursor", None), "_has_next", None)
    return bool(has_next()) if callable(has_next) else True
