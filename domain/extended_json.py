"""Parsed Extended JSON (canonical or relaxed) -> the contract's JSON form, without bson objects.

JSONL input is the hot path of ``replay``, ``source: jsonl`` and the benchmarks; building bson
objects with ``json_util.loads`` only to map them to JSON again costs several times more. The
result is defined to equal ``bson_to_json(json_util.loads(text))`` for everything json_util accepts
(a property test holds us to it), so a document is judged identically from a file or a live stream.

json_util treats a dict as a type wrapper when *any* of its keys is a wrapper key (the first one
found decides) and raises if the rest does not fit; we do the same, except that where json_util
would raise we keep the dict as a plain document. Common wrappers are decoded here directly; rare
ones (regex, code, DBRef, legacy forms, ISO date strings) are handed to json_util itself.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
import uuid
from collections.abc import Callable
from typing import Final

import orjson
from bson import json_util
from bson.decimal128 import Decimal128

from domain.bson_json import bson_to_json, datetime_ms_to_json, float_to_json
from domain.json_types import JsonObject, JsonValue

_PLAIN_DECIMAL: Final = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?\Z")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_INT32_MIN, _INT32_MAX = -(2**31), 2**31 - 1


class _NotAWrapper(Exception):
    """json_util would reject this dict as a wrapper; keep it as a plain document."""


# Each single-key wrapper is decoded from its *value*; raising _NotAWrapper means json_util would fail.


def _oid(value: JsonValue) -> JsonValue:
    if type(value) is not str or len(value) != 24:
        raise _NotAWrapper
    try:
        binascii.a2b_hex(value)  # 24 hex digits exactly (no signs, spaces or non-ASCII); C-fast
    except ValueError:
        raise _NotAWrapper from None
    return value.lower()


def _int32(value: JsonValue) -> JsonValue:
    if type(value) is not str:
        raise _NotAWrapper
    try:
        return int(value)
    except ValueError:
        raise _NotAWrapper from None


def _int64(value: JsonValue) -> JsonValue:
    try:
        number = int(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise _NotAWrapper from None
    if not _INT64_MIN <= number <= _INT64_MAX:
        raise _NotAWrapper
    return number


def _double(value: JsonValue) -> JsonValue:
    if type(value) is not str:
        raise _NotAWrapper
    try:
        return float_to_json(float(value))
    except ValueError:
        raise _NotAWrapper from None


def _decimal(value: JsonValue) -> JsonValue:
    if type(value) is not str:
        raise _NotAWrapper
    if len(value) <= 35 and _PLAIN_DECIMAL.match(value):  # already canonical: skip the slow round trip
        return value
    try:
        return str(Decimal128(value))
    except Exception:
        raise _NotAWrapper from None


def _date(value: JsonValue) -> JsonValue:
    if type(value) is dict and len(value) == 1:
        text = value.get("$numberLong")
        if type(text) is str:
            try:
                return datetime_ms_to_json(int(text))
            except ValueError:
                raise _NotAWrapper from None
    if type(value) is int:
        return datetime_ms_to_json(value)
    return _via_json_util({"$date": value})


def _binary(value: JsonValue) -> JsonValue:
    if type(value) is not dict:
        return _via_json_util({"$binary": value})
    data, subtype = value.get("base64"), value.get("subType")
    if len(value) != 2 or type(data) is not str or type(subtype) is not str or len(subtype) > 2:
        raise _NotAWrapper
    try:
        raw = base64.b64decode(data.encode())
        number = int(subtype, 16)
    except ValueError:
        raise _NotAWrapper from None
    if number == 4 and len(raw) == 16:
        return str(uuid.UUID(bytes=raw))
    return base64.b64encode(raw).decode("ascii")


def _timestamp(value: JsonValue) -> JsonValue:
    if type(value) is not dict or len(value) != 2 or "t" not in value or "i" not in value:
        raise _NotAWrapper
    t, i = value["t"], value["i"]
    if type(t) is not int or type(i) is not int or not (0 <= t <= 0xFFFFFFFF and 0 <= i <= 0xFFFFFFFF):
        raise _NotAWrapper
    return {"t": t, "i": i}


def _min_key(value: JsonValue) -> JsonValue:
    if type(value) is not int or value != 1:
        raise _NotAWrapper
    return {"$minKey": 1}


def _max_key(value: JsonValue) -> JsonValue:
    if type(value) is not int or value != 1:
        raise _NotAWrapper
    return {"$maxKey": 1}


def _symbol(value: JsonValue) -> JsonValue:
    return value if type(value) is str else _via_json_util({"$symbol": value})


def _undefined(_: JsonValue) -> JsonValue:
    return None


def _via_json_util(document: JsonObject) -> JsonValue:
    """Rare wrappers: let json_util decide, exactly as it would for the whole file."""
    try:
        decoded = json_util.loads(orjson.dumps(document))
    except Exception:
        raise _NotAWrapper from None
    return bson_to_json(decoded)


_SINGLE: Final[dict[str, Callable[[JsonValue], JsonValue]]] = {
    "$oid": _oid,
    "$date": _date,
    "$minKey": _min_key,
    "$maxKey": _max_key,
    "$binary": _binary,
    "$undefined": _undefined,
    "$numberLong": _int64,
    "$timestamp": _timestamp,
    "$numberDecimal": _decimal,
    "$symbol": _symbol,
    "$numberInt": _int32,
    "$numberDouble": _double,
}
_WRAPPER_KEYS: Final = frozenset(_SINGLE) | {"$ref", "$regex", "$code", "$uuid", "$dbPointer", "$regularExpression"}


def extended_json_to_json(value: JsonValue) -> JsonValue:
    """Map an ``orjson.loads`` result of Extended JSON to the contract's JSON form."""
    kind = type(value)
    if kind is str or kind is int or kind is bool or value is None:
        return value
    if kind is dict:
        if len(value) == 1:  # type: ignore[arg-type]
            for key, item in value.items():  # type: ignore[union-attr]
                single = _SINGLE.get(key)
                if single is not None:
                    try:
                        return single(item)
                    except _NotAWrapper:
                        break
        return _document(value)  # type: ignore[arg-type]
    if kind is list:
        return [extended_json_to_json(item) for item in value]  # type: ignore[union-attr]
    if kind is float:
        return value if math.isfinite(value) else bson_to_json(value)  # type: ignore[arg-type]
    return value


def _document(document: JsonObject) -> JsonValue:
    if not _WRAPPER_KEYS.isdisjoint(document):
        key = next(k for k in document if k in _WRAPPER_KEYS)
        try:
            if len(document) == 1 and key in _SINGLE:
                return _SINGLE[key](document[key])
            return _via_json_util(document)  # multi-key wrappers: rare, and json_util's rules are subtle
        except _NotAWrapper:
            pass
    out: JsonObject = dict(document)  # JSON keys are str; str/int/bool/None values stay as they are
    for key, item in document.items():  # inlined: one call per value would dominate the cost
        kind = type(item)
        if kind is dict:
            if len(item) == 1:  # type: ignore[arg-type]
                wrapper, value = next(iter(item.items()))  # type: ignore[union-attr]
                single = _SINGLE.get(wrapper)
                if single is not None:
                    try:
                        out[key] = single(value)
                        continue
                    except _NotAWrapper:
                        pass
            out[key] = _document(item)  # type: ignore[arg-type]
        elif kind is list or kind is float:
            out[key] = extended_json_to_json(item)
    return out
