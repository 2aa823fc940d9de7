"""BSON values -> the contract's JSON form (CONTRACT §5), for what pymongo decodes from a change stream.

Validation, migration and consumers all see this form, so it must be total (never raise on a value
pymongo can decode), deterministic, and fast: it runs on every field of every event. Common types go
through a dispatch on the exact type; rare ones fall back to isinstance checks, then to pymongo's
relaxed Extended JSON, then to ``str``.
"""

from __future__ import annotations

import base64
import functools
import math
import re
import uuid
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta
from typing import Any, Final

import orjson
from bson import json_util
from bson.binary import Binary
from bson.code import Code
from bson.datetime_ms import DatetimeMS
from bson.dbref import DBRef
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.regex import Regex
from bson.timestamp import Timestamp

from domain.json_types import JsonObject, JsonValue

_EPOCH: Final = datetime(1970, 1, 1)
_UUID_SUBTYPE: Final = 4


def format_datetime_ms(ms: int) -> JsonValue:
    """Epoch milliseconds -> ``YYYY-MM-DDTHH:MM:SS.mmmZ``; outside datetime's range, Extended JSON."""
    seconds, millis = divmod(ms, 1000)
    try:
        return f"{_seconds_text(seconds)}.{millis:03d}Z"
    except OverflowError:
        return {"$date": {"$numberLong": str(ms)}}


@functools.lru_cache(maxsize=1024)
def _seconds_text(seconds: int) -> str:
    """Cached per second: timestamps of one stream cluster around "now"."""
    return (_EPOCH + timedelta(seconds=seconds)).isoformat(timespec="seconds")


@functools.lru_cache(maxsize=4096)
def _decimal_text(bid: bytes) -> str:
    """Decimal128's text goes through ``decimal.Decimal`` (microseconds); prices repeat, so cache it."""
    return str(Decimal128.from_bid(bid))


def _datetime(value: datetime) -> str:
    if value.tzinfo is not None:
        offset = value.utcoffset()
        value = value.replace(tzinfo=None) - (offset or timedelta(0))
    return value.isoformat(timespec="milliseconds") + "Z"


def float_to_json(value: float) -> JsonValue:
    """A finite float as is; NaN and ±Infinity as relaxed Extended JSON (JSON has no such numbers)."""
    if math.isfinite(value):
        return value
    if math.isnan(value):
        return {"$numberDouble": "NaN"}
    return {"$numberDouble": "Infinity" if value > 0 else "-Infinity"}


def _binary(value: bytes) -> str:
    if type(value) is Binary and value.subtype == _UUID_SUBTYPE and len(value) == 16:
        return str(uuid.UUID(bytes=bytes(value)))
    return base64.b64encode(value).decode("ascii")


def _datetime_ms(value: DatetimeMS) -> JsonValue:
    return format_datetime_ms(int(value))


def _timestamp(value: Timestamp) -> JsonValue:
    return {"t": value.time, "i": value.inc}


def _code(value: Code) -> JsonValue:
    if value.scope is None:
        return {"$code": str(value)}
    return {"$code": str(value), "$scope": _mapping(value.scope)}


def _dbref(value: DBRef) -> JsonValue:
    out: JsonObject = {"$ref": value.collection, "$id": bson_to_json(value.id)}
    if value.database is not None:
        out["$db"] = value.database
    for key, item in value.as_doc().items():
        if key not in ("$ref", "$id", "$db"):
            out[str(key)] = bson_to_json(item)
    return out


def _relaxed(value: object) -> JsonValue:
    try:
        converted: JsonValue = orjson.loads(json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS))
        return converted
    except Exception:
        return str(value)


def _mapping(value: Mapping[Any, Any]) -> JsonObject:
    return {key if type(key) is str else str(key): bson_to_json(item) for key, item in value.items()}


def _sequence(value: list[Any] | tuple[Any, ...]) -> list[JsonValue]:
    return [bson_to_json(item) for item in value]


_DISPATCH: Final[dict[type, Callable[[Any], JsonValue]]] = {
    dict: _mapping,
    list: _sequence,
    tuple: _sequence,
    float: float_to_json,
    ObjectId: str,
    datetime: _datetime,
    Int64: int,
    Decimal128: lambda value: _decimal_text(value.bid),
    bytes: _binary,
    Binary: _binary,
    uuid.UUID: str,
    Timestamp: _timestamp,
    DatetimeMS: _datetime_ms,
    MinKey: lambda _: {"$minKey": 1},
    MaxKey: lambda _: {"$maxKey": 1},
    Code: _code,
    DBRef: _dbref,
    Regex: _relaxed,
    re.Pattern: _relaxed,
}


def bson_to_json(value: object) -> JsonValue:
    """Map one decoded BSON value (a whole document, or any field) to the contract's JSON form."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value  # type: ignore[return-value]
    if kind is dict:
        return {
            key: (item if type(item) is str or type(item) is int else bson_to_json(item))
            for key, item in value.items()  # type: ignore[attr-defined]
        }
    converter = _DISPATCH.get(kind)
    if converter is not None:
        try:
            return converter(value)
        except Exception:  # e.g. an aware datetime whose UTC form leaves datetime's range
            return _relaxed(value)
    return _by_isinstance(value)


def _by_isinstance(value: object) -> JsonValue:
    """Subclasses (SON, RawBSONDocument, Int64 subclasses, ...) and anything unforeseen."""
    try:
        if isinstance(value, bool):
            return bool(value)
        if isinstance(value, int):
            return int(value)
        if isinstance(value, str):
            return str(value)
        if isinstance(value, float):
            return float_to_json(float(value))
        if isinstance(value, Mapping):
            return _mapping(value)
        if isinstance(value, list | tuple):
            return _sequence(value)
        if isinstance(value, datetime):
            return _datetime(value)
        if isinstance(value, bytes):
            return _binary(value)
        for kind, converter in _DISPATCH.items():
            if isinstance(value, kind):
                return converter(value)
    except Exception:
        return str(value)
    return _relaxed(value)
