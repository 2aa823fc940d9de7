"""BSON -> the contract's JSON form (CONTRACT §5): the exact form of every type, never an exception,
deterministic, and always encodable as JSON."""

from __future__ import annotations

import enum
import re
import uuid
from collections import OrderedDict
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import bson
import orjson
import pytest
from bson import Binary, Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp, json_util
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.datetime_ms import DatetimeMS
from bson.raw_bson import RawBSONDocument
from bson.son import SON
from hypothesis import given, settings

from domain.bson_json import bson_to_json, datetime_ms_to_json, format_datetime_ms
from tests.strategies import bson_documents

U = uuid.UUID("6c1f3f0e-4d3a-4f5e-9a51-2b7c9d0e1f21")
OID = ObjectId("65fab39ee1d2c3b4a5968701")
AUTO = CodecOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO)


class Color(enum.IntEnum):
    RED = 1


class Name(enum.StrEnum):
    A = "a"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        (True, True),
        (False, False),
        (7, 7),
        ("text", "text"),
        (ObjectId("65FAB39EE1D2C3B4A5968701"), "65fab39ee1d2c3b4a5968701"),
        # datetimes: naive is UTC, aware converted, microseconds truncated (not rounded) to milliseconds
        (datetime(2024, 3, 20, 10, 0, 6, 855999), "2024-03-20T10:00:06.855Z"),
        (datetime(2024, 3, 20, 10, 0), "2024-03-20T10:00:00.000Z"),
        (datetime(2024, 3, 20, 10, 0, 0, 999), "2024-03-20T10:00:00.000Z"),
        (datetime(1969, 12, 31, 23, 59, 59, 999999), "1969-12-31T23:59:59.999Z"),
        (datetime(1, 1, 1), "0001-01-01T00:00:00.000Z"),
        (datetime.max, "9999-12-31T23:59:59.999Z"),
        (datetime(2024, 3, 20, 12, 0, tzinfo=timezone(timedelta(hours=2))), "2024-03-20T10:00:00.000Z"),
        (datetime(2024, 3, 20, 0, 30, 0, 123999, tzinfo=timezone(timedelta(hours=-5, minutes=-30))),
         "2024-03-20T06:00:00.123Z"),
        (datetime(2024, 3, 20, tzinfo=UTC), "2024-03-20T00:00:00.000Z"),
        (DatetimeMS(1710928800123), "2024-03-20T10:00:00.123Z"),
        (DatetimeMS(-1), "1969-12-31T23:59:59.999Z"),
        # numbers
        (Int64(2**62), 2**62),
        (Int64(-(2**63)), -(2**63)),
        (Int64(2**63 - 1), 2**63 - 1),
        (1.5, 1.5),
        (-0.0, -0.0),
        (float("nan"), {"$numberDouble": "NaN"}),
        (float("inf"), {"$numberDouble": "Infinity"}),
        (float("-inf"), {"$numberDouble": "-Infinity"}),
        (Decimal128("12.50"), "12.50"),
        (Decimal128("-0"), "-0"),
        (Decimal128("1E+3"), "1E+3"),
        (Decimal128("0.0000001"), "1E-7"),
        (Decimal128("NaN"), "NaN"),
        (Decimal128("-Infinity"), "-Infinity"),
        # binary: base64, except UUIDs (subtype 4, 16 bytes)
        (b"\x00\x01", "AAE="),
        (b"", ""),
        (Binary(b"\x00\x01", 0), "AAE="),
        (Binary(b"\x00\x01", 5), "AAE="),
        (Binary(b"\x00\x01", 0x80), "AAE="),
        (Binary(U.bytes, 4), str(U)),
        (Binary(U.bytes, 3), "bB8/Dk06T16aUSt8nQ4fIQ=="),
        (Binary(U.bytes, 0), "bB8/Dk06T16aUSt8nQ4fIQ=="),
        (Binary(b"\x00\x01", 4), "AAE="),
        (U, str(U)),
        # the rest
        (Timestamp(1710928803, 2), {"t": 1710928803, "i": 2}),
        (Regex("^a.b", "im"), {"$regularExpression": {"pattern": "^a.b", "options": "im"}}),
        (Regex("x", "xsmi"), {"$regularExpression": {"pattern": "x", "options": "imsx"}}),
        (Regex("x", re.UNICODE | re.LOCALE), {"$regularExpression": {"pattern": "x", "options": "lu"}}),
        (re.compile("x", re.IGNORECASE), {"$regularExpression": {"pattern": "x", "options": "iu"}}),
        (re.compile(b"x"), {"$regularExpression": {"pattern": "x", "options": ""}}),
        (MinKey(), {"$minKey": 1}),
        (MaxKey(), {"$maxKey": 1}),
        (Code("f()"), {"$code": "f()"}),
        (Code("f(x)", {"x": Int64(1)}), {"$code": "f(x)", "$scope": {"x": 1}}),
        (Code("f()", {}), {"$code": "f()", "$scope": {}}),
        (DBRef("c", OID), {"$ref": "c", "$id": "65fab39ee1d2c3b4a5968701"}),
        (DBRef("c", OID, "db"), {"$ref": "c", "$id": "65fab39ee1d2c3b4a5968701", "$db": "db"}),
        (DBRef("c", 5, None, x=Int64(1), y=[MinKey()]), {"$ref": "c", "$id": 5, "x": 1, "y": [{"$minKey": 1}]}),
        # containers
        ({"a.b": {"$c": [1, Int64(2)]}}, {"a.b": {"$c": [1, 2]}}),
        ((1, "x"), [1, "x"]),
        ([[], {}, [[float("nan")]]], [[], {}, [[{"$numberDouble": "NaN"}]]]),
        (SON([("b", Int64(1)), ("a", OID)]), {"b": 1, "a": "65fab39ee1d2c3b4a5968701"}),
        (OrderedDict(z=1), {"z": 1}),
        ({1: "int key", None: "none key"}, {"1": "int key", "None": "none key"}),
        # subclasses of what the dispatch knows by exact type
        (Color.RED, 1),
        (Name.A, "a"),
    ],
)  # fmt: skip
def test_contract_forms(value: Any, expected: Any) -> None:
    result = bson_to_json(value)
    assert orjson.dumps(result) == orjson.dumps(expected)  # strict: 1 is not 1.0 or True, key order counts


def test_datetimes_outside_python_range_stay_extended_json() -> None:
    raw = bson.encode({"low": DatetimeMS(-(2**62)), "high": DatetimeMS(253402300800000), "in": DatetimeMS(0)})
    decoded = bson.decode(raw, AUTO)
    assert type(decoded["low"]) is DatetimeMS
    assert bson_to_json(decoded) == {
        "low": {"$date": {"$numberLong": str(-(2**62))}},
        "high": {"$date": {"$numberLong": "253402300800000"}},
        "in": "1970-01-01T00:00:00.000Z",
    }


def test_aware_datetimes_leaving_the_range_in_utc_get_the_out_of_range_form() -> None:
    east = datetime(1, 1, 1, 0, 30, tzinfo=timezone(timedelta(hours=1)))  # 0000-12-31T23:30Z
    west = datetime(9999, 12, 31, 23, 0, tzinfo=timezone(timedelta(hours=-2)))  # 10000-01-01T01:00Z
    assert bson_to_json(east) == {"$date": {"$numberLong": "-62135598600000"}}
    assert bson_to_json(west) == {"$date": {"$numberLong": "253402304400000"}}


def test_format_datetime_ms() -> None:
    assert format_datetime_ms(0) == "1970-01-01T00:00:00.000Z"
    assert format_datetime_ms(1710928800123) == "2024-03-20T10:00:00.123Z"
    assert format_datetime_ms(-1) == "1969-12-31T23:59:59.999Z"
    assert format_datetime_ms(-62135596800000) == "0001-01-01T00:00:00.000Z"
    assert format_datetime_ms(253402300799999) == "9999-12-31T23:59:59.999Z"
    for outside in (-62135596800001, 253402300800000, 2**63):
        with pytest.raises(OverflowError):
            format_datetime_ms(outside)
        assert datetime_ms_to_json(outside) == {"$date": {"$numberLong": str(outside)}}


def test_keys_and_order_are_kept() -> None:
    document = {"z": 1, "a.b": 2, "$weird": 3, "": 4, "é": 5}
    assert list(bson_to_json(document)) == ["z", "a.b", "$weird", "", "é"]  # type: ignore[arg-type]


def test_raw_bson_documents_are_mapped_like_dicts() -> None:
    document = {"_id": OID, "n": Int64(3), "when": datetime(2024, 3, 20), "sub": {"u": Binary(U.bytes, 4)}}
    raw = RawBSONDocument(bson.encode(document))
    assert bson_to_json(raw) == bson_to_json(document)


def test_results_are_fresh_objects() -> None:
    first = bson_to_json({"k": MinKey()})
    first["k"]["$minKey"] = 2  # type: ignore[index, call-overload]
    assert bson_to_json({"k": MinKey()}) == {"k": {"$minKey": 1}}


def test_unknown_objects_never_raise() -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd"

    class Hostile:
        def __str__(self) -> str:
            raise RuntimeError("no")

    result = bson_to_json({"odd": Odd(), "set": {1}, "hostile": Hostile(), "bad regex": Regex(b"\xff")})
    assert isinstance(result, dict)
    assert result["odd"] == "odd"
    assert result["set"] == [1]  # json_util's relaxed form
    assert isinstance(result["hostile"], str)
    assert isinstance(result["bad regex"], str)
    orjson.dumps(result)
    cyclic: list[Any] = []
    cyclic.append(cyclic)
    bson_to_json(cyclic)  # nothing pymongo decodes, but still no exception


@settings(max_examples=300, deadline=None)
@given(bson_documents(beyond_defaults=True))
def test_never_raises_is_deterministic_and_encodable(document: dict[str, Any]) -> None:
    first = bson_to_json(document)
    assert orjson.dumps(first) == orjson.dumps(bson_to_json(document))  # no NaN, only str keys, same bytes
    assert list(first) == [str(key) for key in document]  # type: ignore[arg-type]


@settings(max_examples=300, deadline=None)
@given(bson_documents(beyond_defaults=True))
def test_a_bson_round_trip_keeps_the_json_form(document: dict[str, Any]) -> None:
    """What the strategy generates is what pymongo hands us, and the form survives a trip through BSON."""
    wrapped = {"d": document}  # bson.encode moves a top-level "_id" first
    decoded = bson.decode(bson.encode(wrapped), AUTO)
    assert orjson.dumps(bson_to_json(decoded)) == orjson.dumps(bson_to_json(wrapped))


def test_relaxed_fallback_matches_json_util_for_types_we_do_not_know() -> None:
    class Sub(frozenset[int]):
        pass

    assert bson_to_json(Sub({3})) == orjson.loads(json_util.dumps(Sub({3})))
