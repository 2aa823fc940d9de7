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
- pymongo already retries a resumable error once; anything resumable after that goes back to the
  pipeline's backoff. History lost (286), fatal (280), invalid token (260) and BSONObjectTooLarge
  (10334) are never retried and never "fixed" by silently starting from now: the worker stops and
  says how to move the token.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import Any

import structlog
from bson import Timestamp
from pymongo import errors as pymongo_errors

from application.event_flow import EventInputError
from application.ports import Heartbeat, SourceBatch, SourceError, SourceEvent, SourceItem, StartPosition
from domain.bson_json import bson_to_json
from domain.change_event import (
    ClusterTime,
    MalformedEventError,
    OperationKind,
    ResumeToken,
    parse_change_event,
)
from domain.partitions import StreamUnit, plan_units
from domain.redaction import redact
from domain.split_events import SplitEventAssembler, SplitEventError

log = structlog.get_logger("connector.mongodb")

SPLIT_EVENTS_MIN_WIRE_VERSION = 21  # MongoDB 7.0
EXPANDED_EVENTS_MIN_WIRE_VERSION = 17  # MongoDB 6.0

HISTORY_LOST, FATAL, INVALID_TOKEN, TOO_LARGE = 286, 280, 260, 10334
_FATAL_CODES = {
    HISTORY_LOST: "the stored resume token has fallen off the oplog (ChangeStreamHistoryLost)",
    FATAL: "the change stream cannot continue (ChangeStreamFatalError)",
    INVALID_TOKEN: "the stored resume token is not valid for this deployment (InvalidResumeToken)",
    TOO_LARGE: "an event exceeds 16 MB (BSONObjectTooLarge)",
}
_AUTH_CODES = {13: "not authorized", 18: "authentication failed"}


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


def classify(error: BaseException, *, stream_id: str) -> SourceError:
    """A pymongo error as a SourceError: retryable, or fatal with the command that recovers."""
    text = redact(str(error))
    if isinstance(error, pymongo_errors.OperationFailure):
        code = error.code or 0
        if code in _FATAL_CODES:
            if code == TOO_LARGE:
                recovery = (
                    "use MongoDB 7.0+ (events are then split), or set mongodb.full_document_before_change to off; "
                    f"to skip the event: connector admin tokens set {stream_id} --at <a time after it>"
                )
            else:
                recovery = (
                    f"move the position: connector admin tokens set {stream_id} --at <RFC 3339 time within the "
                    f"oplog window> (then backfill what was missed), or connector admin tokens reset {stream_id} --yes"
                )
            return SourceError(f"{_FATAL_CODES[code]} (code {code}): {text}", retryable=False, recovery=recovery)
        if code in _AUTH_CODES:
            return SourceError(
                f"MongoDB: {_AUTH_CODES[code]} (code {code}): {text}",
                retryable=False,
                recovery="check mongodb.uri credentials and the user's changeStream/find privileges",
            )
        if error.has_error_label("ResumableChangeStreamError") or error.has_error_label("RetryableWriteError"):
            return SourceError(f"resumable change stream error (code {code}): {text}", retryable=True)
        return SourceError(f"MongoDB operation failed (code {code}): {text}", retryable=True)
    if isinstance(error, pymongo_errors.ConfigurationError | pymongo_errors.InvalidURI):
        return SourceError(f"MongoDB configuration: {text}", retryable=False, recovery="fix mongodb.uri")
    if isinstance(error, pymongo_errors.PyMongoError):
        return SourceError(f"MongoDB unavailable: {type(error).__name__}: {text}", retryable=True)
    return SourceError(f"{type(error).__name__}: {text}", retryable=True)


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
        self._stream: Any = None

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

    def read(self, start: StartPosition) -> Iterator[SourceBatch]:
        self._closed = False
        position = start
        try:
            wire_version = self._wire_version()
            while not self._closed:
                restart_after = yield from self._read_stream(position, wire_version)
                if restart_after is None:
                    return
                log.info("change_stream_invalidated", resume_with="startAfter", token=restart_after.data)
                position = StartPosition(start_after=restart_after)
        except (SplitEventError, MalformedEventError, EventInputError) as error:
            raise SourceError(f"unreadable change event: {error}", retryable=True) from None
        except pymongo_errors.PyMongoError as error:
            raise classify(error, stream_id=self._unit.stream_id) from None

    def _read_stream(self, start: StartPosition, wire_version: int) -> Iterator[SourceBatch]:
        """Yield from one ``watch()``; return the invalidate token when the stream was invalidated."""
        pipeline, kwargs = self.watch_arguments(start, wire_version)
        assembler = SplitEventAssembler()
        last_token: str | None = None  # of the last event or heartbeat yielded
        batch: list[SourceItem] = []
        opened = 0.0
        with self._client[self._database].watch(pipeline, **kwargs) as stream:
            while not self._closed and stream.alive:
                try:
                    raw = stream.try_next()
                except Exception:  # what was read before the failure still goes on (and gets checkpointed)
                    if batch:
                        yield batch
                    raise
                if raw is None:
                    token = stream.resume_token
                    if token is not None and not assembler.pending:
                        heartbeat = ResumeToken.from_json(bson_to_json(token))
                        if heartbeat.data != last_token:
                            last_token = heartbeat.data
                            batch.append(Heartbeat(heartbeat, cluster_time_of_token(heartbeat.data)))
                    if batch:
                        yield batch
                        batch = []
                    continue
                try:
                    mapped = bson_to_json(raw)
                    assert isinstance(mapped, dict)
                    whole = assembler.feed(mapped)
                    if whole is None:
                        continue
                    event = parse_change_event(whole)
                except Exception:
                    if batch:
                        yield batch
                    raise
                last_token = event.token.data
                if not batch:
                    opened = time.monotonic()
                batch.append(SourceEvent(event))
                if event.kind is OperationKind.INVALIDATE:
                    yield batch
                    return event.token
                if len(batch) >= self._batch_size or time.monotonic() - opened >= self._batch_latency_s:
                    yield batch
                    batch = []
            if batch and not self._closed:
                yield batch
        return None
