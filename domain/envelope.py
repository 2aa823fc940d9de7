"""The published message: event id, envelope, attributes, ordering key, bytes (CONTRACT §5).

This is the hot path, so the envelope is built as one dict and encoded by orjson in one call.
"""

from __future__ import annotations

import enum
import functools
import hashlib
import zlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Final

import orjson
from attrs import frozen

from domain.change_event import ABSENT, ChangeEvent, ClusterTime
from domain.json_types import JsonObject, JsonValue

MAX_MESSAGE_BYTES: Final = 9_500_000
"""Pub/Sub's limit is 10 MB per message including attributes; we keep a margin."""

MAX_ORDERING_KEY_BYTES: Final = 1024
"""Pub/Sub rejects longer ordering keys; longer canonical document keys are hashed."""

CONTENT_TYPE: Final = "application/json"


class OrderingStrategy(enum.StrEnum):
    """How ordering keys are derived: all events of one document always share a key."""

    BUCKETED = "bucketed"
    DOCUMENT = "document"
    NONE = "none"


@frozen
class SchemaInfo:
    """Which schema applied: the published version and the version the document arrived in."""

    document_type: str
    version: str
    source_version: str

    def to_json(self) -> JsonObject:
        return {"type": self.document_type, "version": self.version, "source_version": self.source_version}


@frozen(slots=False)
class OutboundMessage:
    """One Pub/Sub message ready to publish: the unit the publisher port accepts.

    Not slotted: built once per message, and a frozen dict-backed class skips ``object.__setattr__``
    per field (a fifth cheaper to build).
    """

    topic: str
    data: bytes
    ordering_key: str
    attributes: Mapping[str, str]
    event_id: str


def event_id(token_data: str) -> str:
    """First 32 hex digits of SHA-256 of the token's ``_data``: stable, so consumers can de-duplicate."""
    return hashlib.sha256(token_data.encode("utf-8")).hexdigest()[:32]


def canonical_json(value: JsonValue) -> bytes:
    """Compact JSON with sorted keys: the same document key always gives the same bytes."""
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def bucket_of(document_key: JsonValue, buckets: int) -> int:
    """Stable bucket of a document key: CRC-32 of its canonical JSON, modulo ``buckets``."""
    return zlib.crc32(canonical_json(document_key)) % buckets


class OrderingKeys:
    """The ordering keys of one collection's events: the strategy's branch and the bucket keys resolved
    once, for the processing step, which keeps one per stream. ``ordering_key`` is the one-off form."""

    def __init__(self, *, strategy: OrderingStrategy, collection: str, buckets: int) -> None:
        self._strategy = strategy
        self._collection = collection
        self._buckets = buckets
        self._bucket_keys: dict[int, str] = {}  # n -> "<collection>:<n>"; at most ``buckets`` entries

    def __call__(self, document_key: JsonObject | None) -> str:
        """The Pub/Sub ordering key of an event; DDL events (no document key) use ``<collection>``."""
        strategy = self._strategy
        if strategy is OrderingStrategy.NONE:
            return ""
        collection = self._collection
        if document_key is None:
            return collection
        if strategy is OrderingStrategy.BUCKETED:
            bucket = zlib.crc32(orjson.dumps(document_key, option=orjson.OPT_SORT_KEYS)) % self._buckets
            key = self._bucket_keys.get(bucket)
            if key is None:  # a race only stores an equal string twice
                key = self._bucket_keys[bucket] = f"{collection}:{bucket}"
            return key
        key = f"{collection}:{canonical_json(document_key).decode('utf-8')}"
        if len(key.encode("utf-8")) > MAX_ORDERING_KEY_BYTES:
            digest = hashlib.sha256(canonical_json(document_key)).hexdigest()
            key = f"{collection}:sha256:{digest}"
        return key


def ordering_key(*, strategy: OrderingStrategy, collection: str, document_key: JsonObject | None, buckets: int) -> str:
    """The Pub/Sub ordering key of an event; DDL events (no document key) use ``<collection>``.

    Bucketed: ``<collection>:<bucket_of(document_key, buckets)>``; document: ``<collection>:<canonical
    JSON>`` (SHA-256 of it past 1024 bytes); none: no key.
    """
    return OrderingKeys(strategy=strategy, collection=collection, buckets=buckets)(document_key)


def format_cluster_time(cluster_time: ClusterTime | None) -> str | None:
    """RFC 3339 UTC at the Timestamp's precision (seconds)."""
    if cluster_time is None:
        return None
    return _format_seconds(cluster_time.seconds)


@functools.lru_cache(maxsize=256)
def _format_seconds(seconds: int) -> str:
    """Cached: a busy stream has thousands of events per second of cluster time."""
    return datetime.fromtimestamp(seconds, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def correlation_id_of(document: JsonObject | None, fallback: str) -> str:
    """The document's own ``correlation_id`` when it has a usable one, else ``fallback``."""
    if document is not None:
        value = document.get("correlation_id")
        if isinstance(value, str) and value:
            return value
    return fallback


def build_envelope(
    *,
    event: ChangeEvent,
    event_id_: str,
    collection: str | None,
    document: JsonObject | None,
    schema: SchemaInfo | None,
    correlation_id: str,
    include_before: bool,
) -> JsonObject:
    """The message body. Keys are always present (null when not applicable) so consumers can rely on
    them; ``document_before`` appears only when pre-images are configured, and DDL events add
    ``operation_description`` (and ``to`` for rename)."""
    update = event.update_description
    cluster_time = event.cluster_time  # format_cluster_time, inlined
    envelope: JsonObject = {
        "event_id": event_id_,
        "operation": event.operation,
        "database": event.database,
        "collection": collection,
        "document_key": event.document_key,
        "document": document,
        "update_description": None if update is ABSENT else update,
        "schema": None if schema is None else schema.to_json(),
        "cluster_time": None if cluster_time is None else _format_seconds(cluster_time.seconds),
        "wall_time": event.wall_time,
        "resume_token": event.token.data,
        "correlation_id": correlation_id,
    }
    if include_before:
        before = event.full_document_before_change
        envelope["document_before"] = None if before is ABSENT else before
    if event.operation_description is not ABSENT:
        envelope["operation_description"] = event.operation_description
    if event.rename_to is not None:
        envelope["to"] = event.rename_to
    return envelope


def build_attributes(
    *,
    event: ChangeEvent,
    event_id_: str,
    collection: str | None,
    document_type: str | None,
    schema: SchemaInfo | None,
    correlation_id: str,
) -> dict[str, str]:
    """Pub/Sub attributes (strings only); absent ones are omitted."""
    attributes = {"event_id": event_id_, "operation": event.operation}
    if event.database is not None:
        attributes["database"] = event.database
    if collection is not None:
        attributes["collection"] = collection
    if document_type is not None:
        attributes["document_type"] = document_type
    if schema is not None:
        attributes["schema_version"] = schema.version
        attributes["source_schema_version"] = schema.source_version
    attributes["correlation_id"] = correlation_id
    attributes["content_type"] = CONTENT_TYPE
    return attributes


def encode(envelope: JsonObject) -> bytes:
    """UTF-8 JSON bytes of the envelope (no NaN can reach here: the mapping wrapped it)."""
    return orjson.dumps(envelope)
