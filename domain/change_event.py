"""A frozen model of what a driver's ``watch()`` yields, for every operation type.

Events are parsed from their *JSON form* (see ``bson_json``/``extended_json``), so the model is
the same whether the event came from pymongo, a JSONL file or the simulator. Unknown operation
types are kept as such (``OperationKind.UNKNOWN``) and never raise: the change stream spec tells
drivers to expect new ones. Null and absent are different things in change events (a ``null``
``fullDocument`` means the lookup found nothing; an absent one means none was asked for), so
absent fields are the ``ABSENT`` sentinel, never ``None``.
"""

from __future__ import annotations

import enum
from typing import Final, Literal, TypeAlias, TypeVar

from attrs import frozen

from domain.json_types import JsonObject, JsonValue


class _Absent(enum.Enum):
    ABSENT = "absent"

    def __repr__(self) -> str:
        return "ABSENT"


ABSENT: Final = _Absent.ABSENT
T = TypeVar("T")
Maybe: TypeAlias = T | Literal[_Absent.ABSENT]


class OperationKind(enum.Enum):
    """How the connector treats an operation type (CONTRACT §6)."""

    DATA = "data"
    DDL = "ddl"
    INVALIDATE = "invalidate"
    END_OF_TRANSACTION = "end_of_transaction"
    UNKNOWN = "unknown"


DATA_OPERATIONS: Final = frozenset({"insert", "update", "replace", "delete"})
DDL_OPERATIONS: Final = frozenset(
    {
        "drop",
        "rename",
        "dropDatabase",
        "create",
        "modify",
        "createIndexes",
        "dropIndexes",
        "shardCollection",
        "reshardCollection",
        "refineCollectionShardKey",
    }
)
_KINDS: Final[dict[str, OperationKind]] = {
    **dict.fromkeys(DATA_OPERATIONS, OperationKind.DATA),
    **dict.fromkeys(DDL_OPERATIONS, OperationKind.DDL),
    "invalidate": OperationKind.INVALIDATE,
    "endOfTransaction": OperationKind.END_OF_TRANSACTION,
}


class MalformedEventError(ValueError):
    """An event lacks what every change event has (``_id._data``, ``operationType``, ...)."""


@frozen
class ResumeToken:
    """The event's ``_id``: ``_data`` plus, for some tokens, ``_typeBits`` (base64 here).

    The whole ``_id`` is what must be stored and handed back to ``resumeAfter``/``startAfter``.
    """

    data: str
    type_bits: str | None = None

    @classmethod
    def from_json(cls, value: JsonValue) -> ResumeToken:
        if not isinstance(value, dict) or not isinstance(value.get("_data"), str):
            raise MalformedEventError(f"resume token must be an object with a string _data, got {_short(value)}")
        bits = value.get("_typeBits")
        # Positional: built once per event, and attrs' __init__ takes keywords a third slower.
        return cls(value["_data"], bits if isinstance(bits, str) else None)  # type: ignore[arg-type]

    def to_json(self) -> JsonObject:
        if self.type_bits is None:
            return {"_data": self.data}
        return {"_data": self.data, "_typeBits": self.type_bits}


@frozen(order=True)
class ClusterTime:
    """A BSON Timestamp: seconds since the epoch and an increment that orders events in a second."""

    seconds: int
    increment: int

    @classmethod
    def from_json(cls, value: JsonValue) -> ClusterTime | None:
        if isinstance(value, dict):
            t, i = value.get("t"), value.get("i")
            if isinstance(t, int) and isinstance(i, int):
                return cls(t, i)  # positional, as in ResumeToken.from_json
        return None


@frozen(slots=False)
class ChangeEvent:
    """One (reassembled) change event in JSON form; ``raw`` keeps every field the server sent.

    Not slotted: a frozen slotted class sets each of the 14 fields through ``object.__setattr__``, a
    dict-backed one writes its ``__dict__`` directly (a tenth of the parse cost, for a few hundred bytes
    per event in flight).
    """

    token: ResumeToken
    operation: str
    kind: OperationKind
    cluster_time: ClusterTime | None
    wall_time: str | None
    database: str | None
    collection: str | None
    document_key: JsonObject | None
    full_document: Maybe[JsonObject | None]
    update_description: Maybe[JsonObject]
    full_document_before_change: Maybe[JsonObject | None]
    operation_description: Maybe[JsonObject]
    rename_to: JsonObject | None
    raw: JsonObject

    @property
    def document_id(self) -> JsonValue:
        """The document's ``_id`` (from ``documentKey``), for logs."""
        return None if self.document_key is None else self.document_key.get("_id")


def parse_change_event(raw: JsonObject) -> ChangeEvent:
    """Build a :class:`ChangeEvent` from one event's JSON form.

    Raises :class:`MalformedEventError` only for what no server sends: no ``_id._data``, no
    ``operationType``, or a data event without ``ns.coll``/``documentKey``. Runs once per event, so the
    field helpers are inlined.
    """
    get = raw.get
    token_json = get("_id", ABSENT)
    if token_json is ABSENT:
        raise MalformedEventError("event has no _id (resume token); every change event carries one")
    token = ResumeToken.from_json(token_json)
    operation = get("operationType")
    if not isinstance(operation, str) or not operation:
        raise MalformedEventError(f"event {token.data[:40]} has no operationType")
    kind = _KINDS.get(operation, OperationKind.UNKNOWN)
    ns = get("ns")
    database = collection = None
    if isinstance(ns, dict):
        db, coll = ns.get("db"), ns.get("coll")
        database = db if isinstance(db, str) else None
        collection = coll if isinstance(coll, str) else None
    document_key = get("documentKey")
    if not isinstance(document_key, dict):
        document_key = None
    if kind is OperationKind.DATA and (collection is None or document_key is None):
        raise MalformedEventError(
            f"{operation} event {token.data[:40]} lacks ns.coll or documentKey; data events always have both"
        )
    # Null and absent differ for the two documents (module docstring); the other objects are ABSENT
    # unless they are objects.
    full = get("fullDocument", ABSENT)
    if full is not ABSENT and not isinstance(full, dict):
        full = None
    before = get("fullDocumentBeforeChange", ABSENT)
    if before is not ABSENT and not isinstance(before, dict):
        before = None
    update = get("updateDescription", ABSENT)
    description = get("operationDescription", ABSENT)
    wall_time = get("wallTime")
    to = get("to")
    return ChangeEvent(
        token=token,
        operation=operation,
        kind=kind,
        cluster_time=ClusterTime.from_json(get("clusterTime")),
        wall_time=wall_time if isinstance(wall_time, str) else None,
        database=database,
        collection=collection,
        document_key=document_key,
        full_document=full,
        update_description=update if isinstance(update, dict) else ABSENT,
        full_document_before_change=before,
        operation_description=description if isinstance(description, dict) else ABSENT,
        rename_to=to if isinstance(to, dict) else None,
        raw=raw,
    )


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
