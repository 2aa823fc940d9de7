"""BSON values -> the contract's JSON form (CONTRACT §5), for what pymongo decodes from a change stream.

Validation, migration and consumers all see this form, so the mapping must be total (never raise on
anything pymongo can hand us), deterministic, and fast: it runs on every field of every event. So the
common types go through a dispatch on the *exact* type, with str/int/bool/None inlined in the
document loop; subclasses take isinstance checks; anything unforeseen falls back to pymongo's relaxed
Extended JSON, then to ``str``.
"""

from __future__ import annotations

import binascii
import functools
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

__all__ = ["bson_to_json", "datetime_ms_to_json", "float_to_json", "format_datetime_ms", "regex_options"]

_EPOCH: Final = datetime(1970, 1, 1)
_ONE_MS: Final = timedelta(milliseconds=1)
MIN_DATETIME_MS: Final = -62135596800000  # 0001-01-01T00:00:00.000Z
MAX_DATETIME_MS: Final = 253402300799999  # 9999-12-31T23:59:59.999Z
_MS_SUFFIX: Final = tuple(f".{ms:03d}Z" for ms in range(1000))
_UUID_SUBTYPE: Final = 4
_REGEX_FLAGS: Final = (
    ("i", re.IGNORECASE),
    ("l", re.LOCALE),
    ("m", re.MULTILINE),
    ("s", re.DOTALL),
    ("u", re.UNICODE),
    ("x", re.VERBOSE),
)


def format_datetime_ms(ms: int) -> str:
    """Epoch milliseconds -> ``YYYY-MM-DDTHH:MM:SS.mmmZ``.

    Raises ``OverflowError`` outside ``datetime``'s range (years 1-9999); ``datetime_ms_to_json``
    is the total variant.
    """
    if not MIN_DATETIME_MS <= ms <= MAX_DATETIME_MS:
        raise OverflowError(f"{ms} ms since the epoch is outside years 1-9999")
    seconds, millis = divmod(ms, 1000)
    return _seconds_text(seconds) + _MS_SUFFIX[millis]


def datetime_ms_to_json(ms: int) -> JsonValue:
    """Epoch milliseconds -> the contract form; outside ``datetime``'s range, canonical Extended JSON."""
    if MIN_DATETIME_MS <= ms <= MAX_DATETIME_MS:
        seconds, millis = divmod(ms, 1000)
        return _seconds_text(seconds) + _MS_SUFFIX[millis]
    return {"$date": {"$numberLong": str(ms)}}


@functools.lru_cache(maxsize=4096)
def _seconds_text(seconds: int) -> str:
    """Cached per second: the timestamps of one stream cluster around "now"."""
    return (_EPOCH + timedelta(seconds=seconds)).isoformat()


def float_to_json(value: float) -> JsonValue:
    """A finite float as is; NaN and ±Infinity as relaxed Extended JSON (JSON has no such numbers)."""
    if value - value == 0.0:  # false exactly for NaN and ±inf
        return value
    if value != value:
        return {"$numberDouble": "NaN"}
    return {"$numberDouble": "Infinity" if value > 0 else "-Infinity"}


@functools.lru_cache(maxsize=256)
def regex_options(flags: int) -> str:
    """``re`` flags -> option letters, in the order json_util writes them (``ilmsux``)."""
    return "".join(letter for letter, flag in _REGEX_FLAGS if flags & flag)


_DECIMAL_TEXTS: Final[dict[tuple[int, int], str]] = {}
_DECIMAL_TEXTS_MAX: Final = 4096


def _naive_datetime(value: datetime) -> JsonValue:
    if value.tzinfo is not None:
        return _any_datetime(value)
    since_epoch = value - _EPOCH  # then the cached text of the second: half the cost of isoformat()
    return _seconds_text(since_epoch.days * 86400 + since_epoch.seconds) + _MS_SUFFIX[since_epoch.microseconds // 1000]


def _any_datetime(value: datetime) -> JsonValue:
    """Aware datetimes and subclasses: through epoch ms, so an instant before year 1 or after 9999 in UTC
    gets the same out-of-range form as a ``DatetimeMS``."""
    offset = value.utcoffset()
    naive = datetime(value.year, value.month, value.day, value.hour, value.minute, value.second, value.microsecond)
    since_epoch = naive - _EPOCH
    if offset:
        since_epoch -= offset
    return datetime_ms_to_json(since_epoch // _ONE_MS)  # floor, as json_util and isoformat truncate


def _datetime_ms(value: DatetimeMS) -> JsonValue:
    return datetime_ms_to_json(int(value))


def _binary(value: Binary) -> str:
    if value.subtype == _UUID_SUBTYPE and len(value) == 16:
        text = value.hex()
        return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"
    return binascii.b2a_base64(value, newline=False).decode("ascii")


def _bytes(value: bytes) -> str:
    return binascii.b2a_base64(value, newline=False).decode("ascii")


def _decimal128(value: Decimal128) -> str:
    """``str(Decimal128)`` goes through ``decimal.Decimal`` (microseconds); prices repeat, so it is
    cached, keyed by the two 64-bit halves (``__getstate__``, cheaper than building ``bid``)."""
    state = value.__getstate__()
    text = _DECIMAL_TEXTS.get(state)
    if text is None:
        if len(_DECIMAL_TEXTS) >= _DECIMAL_TEXTS_MAX:  # bounded; a race at worst clears it twice
            _DECIMAL_TEXTS.clear()
        text = _DECIMAL_TEXTS[state] = str(value)
    return text


def _object_id(value: ObjectId) -> str:
    return value.binary.hex()


def _uuid(value: uuid.UUID) -> str:
    return str(value)


def _timestamp(value: Timestamp) -> JsonValue:
    t, i = value.time, value.inc  # int() only for subclasses (a bool or Int64 passed to Timestamp)
    return {"t": t if type(t) is int else int(t), "i": i if type(i) is int else int(i)}


def _regex(value: Regex[Any] | re.Pattern[Any]) -> JsonValue:
    pattern = value.pattern
    if not isinstance(pattern, str):
        pattern = bytes(pattern).decode("utf-8")
    return {"$regularExpression": {"pattern": pattern, "options": regex_options(int(value.flags))}}


def _min_key(_: MinKey) -> JsonValue:
    return {"$minKey": 1}


def _max_key(_: MaxKey) -> JsonValue:
    return {"$maxKey": 1}


def _code(value: Code) -> JsonValue:
    if value.scope is None:
        return {"$code": str(value)}
    return {"$code": str(value), "$scope": _document(value.scope)}


def _dbref(value: DBRef) -> JsonValue:
    """``as_doc`` is what json_util writes: ``$ref``, ``$id``, ``$db`` when set, then the extra fields."""
    return _document(value.as_doc())


def _sequence(value: list[Any] | tuple[Any, ...]) -> list[JsonValue]:
    if not value:  # updateDescription's removedFields and truncatedArrays, on nearly every update
        return []
    return [
        item if type(item) is str or type(item) is int or item is None or type(item) is bool else _convert(item)
        for item in value
    ]


def _document(value: Mapping[Any, Any]) -> JsonObject:
    """A dict with str keys (all pymongo decodes) is copied whole in C and only its non-JSON values are
    replaced in place, which keeps the key order; anything else takes ``_mapping``."""
    if type(value) is not dict:
        return _mapping(value)
    out: JsonObject = dict(value)
    for key, item in value.items():
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            if type(key) is not str:
                return _mapping(value)
            continue
        if type(key) is not str:
            return _mapping(value)
        if kind is dict:  # nested documents: no dispatch look-up, and nothing to catch
            out[key] = _document(item)
            continue
        converter = _DISPATCH.get(kind)
        if converter is None:
            out[key] = _convert(item)
        else:
            try:
                out[key] = converter(item)
            except Exception:
                out[key] = _relaxed(item)
    return out


def _mapping(value: Mapping[Any, Any]) -> JsonObject:
    """Any mapping: keys that are not str become their ``str`` (as json_util writes them)."""
    out: JsonObject = {}
    for key, item in value.items():
        if type(key) is not str:
            key = str(key)
        kind = type(item)
        if kind is str or kind is int or kind is bool or item is None:
            out[key] = item
        else:
            converter = _DISPATCH.get(kind)
            if converter is None:
                out[key] = _convert(item)
            else:
                try:
                    out[key] = converter(item)
                except Exception:
                    out[key] = _relaxed(item)
    return out


_DISPATCH: Final[dict[type, Callable[[Any], JsonValue]]] = {
    dict: _document,
    float: float_to_json,
    list: _sequence,
    ObjectId: _object_id,
    datetime: _naive_datetime,
    Int64: int,  # the builtin: a C call, no frame
    Decimal128: _decimal128,
    tuple: _sequence,
    Binary: _binary,
    bytes: _bytes,
    uuid.UUID: _uuid,
    Timestamp: _timestamp,
    DatetimeMS: _datetime_ms,
    Regex: _regex,
    re.Pattern: _regex,
    Code: _code,
    DBRef: _dbref,
    MinKey: _min_key,
    MaxKey: _max_key,
}

# For subclasses: most specific first (Code is a str, Binary a bytes, Int64 an int; bool needs no entry
# because it cannot be subclassed).
_BY_ISINSTANCE: Final[tuple[tuple[type, Callable[[Any], JsonValue]], ...]] = (
    (Code, _code),
    (str, str),
    (int, int),
    (float, lambda value: float_to_json(float(value))),
    (Binary, _binary),
    (bytes, _bytes),
    (datetime, _any_datetime),
    (Mapping, _document),
    (list, _sequence),
    (tuple, _sequence),
    (ObjectId, _object_id),
    (Decimal128, _decimal128),
    (uuid.UUID, _uuid),
    (Timestamp, _timestamp),
    (DatetimeMS, _datetime_ms),
    (Regex, _regex),
    (re.Pattern, _regex),
    (DBRef, _dbref),
    (MinKey, _min_key),
    (MaxKey, _max_key),
)


def bson_to_json(value: object) -> JsonValue:
    """Map one decoded BSON value (a whole document, or any field) to the contract's JSON form."""
    kind = type(value)
    if kind is dict:
        return _document(value)  # type: ignore[arg-type]
    if kind is str or kind is int or kind is bool or value is None:
        return value  # type: ignore[return-value]
    return _convert(value)


def _convert(value: object) -> JsonValue:
    converter = _DISPATCH.get(type(value))
    try:
        if converter is not None:
            return converter(value)
        if value is None or type(value) is bool:
            return value
        for kind, fallback in _BY_ISINSTANCE:
            if isinstance(value, kind):
                return fallback(value)
    except Exception:  # a value its own type cannot render (e.g. a non-UTF-8 bytes regex)
        pass
    return _relaxed(value)


def _relaxed(value: object) -> JsonValue:
    """Last resort for the unforeseen: whatever pymongo's relaxed Extended JSON makes of it, else ``str``."""
    try:
        converted: JsonValue = orjson.loads(json_util.dumps(value, json_options=json_util.RELAXED_JSON_OPTIONS))
    except Exception:
        try:
            return str(value)
        except Exception:
            return object.__repr__(value)
    return converted
