"""BSON -> JSON (CONTRACT §5): the exact forms, never an exception, and the JSONL fast path equal to
pymongo's own decoding for every document pymongo can write."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import orjson
import pytest
from bson import Binary, Code, DBRef, Decimal128, Int64, MaxKey, MinKey, ObjectId, Regex, Timestamp, json_util
from bson.codec_options import CodecOptions, DatetimeConversion
from bson.datetime_ms import DatetimeMS
from hypothesis import given, settings

from domain.bson_json import bson_to_json, format_datetime_ms
from domain.extended_json import extended_json_to_json
from tests.strategies import bson_documents

U = uuid.UUID("6c1f3f0e-4d3a-4f5e-9a51-2b7c9d0e1f21")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (ObjectId("65FAB39EE1D2C3B4A5968701"), "65fab39ee1d2c3b4a5968701"),
        (datetime(2024, 3, 20, 10, 0, 6, 855999), "2024-03-20T10:00:06.855Z"),
        (datetime(2024, 3, 20, 12, 0, tzinfo=timezone(timedelta(hours=2))), "2024-03-20T10:00:00.000Z"),
        (datetime(2024, 3, 20, tzinfo=UTC), "2024-03-20T00:00:00.000Z"),
        (Int64(2**62), 2**62),
        (7, 7),
        (True, True),
        (Decimal128("12.50"), "12.50"),
        (Decimal128("NaN"), "NaN"),
        (b"\x00\x01", "AAE="),
        (Binary(b"\x00\x01", 0x80), "AAE="),
        (Binary(U.bytes, 4), str(U)),
        (Binary(U.bytes, 3), "bB8/Dk06T16aUSt8nQ4fIQ=="),
        (U, str(U)),
        (Timestamp(1710928803, 2), {"t": 1710928803, "i": 2}),
        (float("nan"), {"$numberDouble": "NaN"}),
        (float("inf"), {"$numberDouble": "Infinity"}),
        (float("-inf"), {"$numberDouble": "-Infinity"}),
        (-0.0, -0.0),
        (Regex("^a.b", "im"), {"$regularExpression": {"pattern": "^a.b", "options": "im"}}),
        (re.compile("x", re.IGNORECASE), {"$regularExpression": {"pattern": "x", "options": "iu"}}),
        (MinKey(), {"$minKey": 1}),
        (MaxKey(), {"$maxKey": 1}),
        (Code("f()"), {"$code": "f()"}),
        (Code("f(x)", {"x": Int64(1)}), {"$code": "f(x)", "$scope": {"x": 1}}),
        (
            DBRef("c", ObjectId("65fab39ee1d2c3b4a5968701"), "db"),
            {"$ref": "c", "$id": "65fab39ee1d2c3b4a5968701", "$db": "db"},
        ),
        ({"a.b": {"$c": [1, Int64(2)]}}, {"a.b": {"$c": [1, 2]}}),
        ((1, "x"), [1, "x"]),
    ],
)
def test_contract_forms(value: Any, expected: Any) -> None:
    assert bson_to_json(value) == expected


def test_datetimes_outside_python_range_stay_extended_json() -> None:
    raw = json_util.dumps({"d": DatetimeMS(-(2**62))})
    options = json_util.JSONOptions(datetime_conversion=DatetimeConversion.DATETIME_AUTO)
    decoded = json_util.loads(raw, json_options=options)
    assert bson_to_json(decoded) == {"d": {"$date": {"$numberLong": str(-(2**62))}}}
    assert format_datetime_ms(253402300800000) == {"$date": {"$numberLong": "253402300800000"}}
    _ = CodecOptions


def test_keys_and_order_are_kept() -> None:
    document = {"z": 1, "a.b": 2, "$weird": 3, "": 4}
    assert list(bson_to_json(document)) == ["z", "a.b", "$weird", ""]  # type: ignore[arg-type]


def test_unknown_objects_never_raise() -> None:
    class Odd:
        def __str__(self) -> str:
            return "odd"

    assert bson_to_json({"x": Odd()}) == {"x": "odd"}


@settings(max_examples=300, deadline=None)
@given(bson_documents())
def test_never_raises_is_deterministic_and_encodable(document: dict[str, Any]) -> None:
    first = bson_to_json(document)
    assert first == bson_to_json(document)
    orjson.dumps(first)  # no NaN, only str keys


@settings(max_examples=300, deadline=None)
@given(bson_documents())
def test_jsonl_fast_path_equals_pymongo_decoding(document: dict[str, Any]) -> None:
    for options in (json_util.CANONICAL_JSON_OPTIONS, json_util.RELAXED_JSON_OPTIONS):
        text = json_util.dumps(document, json_options=options)
        assert extended_json_to_json(orjson.loads(text)) == bson_to_json(json_util.loads(text))


@pytest.mark.parametrize(
    "text",
    [
        '{"$oid": 5}',
        '{"$numberInt": "x"}',
        '{"$date": {"$numberLong": "1"}, "extra": 1}',
        '{"$timestamp": {"t": -1, "i": 0}}',
        '{"a": {"$minKey": 2}}',
        '{"$regex": {"$in": ["a"]}}',
        '{"$binary": {"base64": 5, "subType": "00"}}',
    ],
)
def test_malformed_wrappers_become_plain_documents(text: str) -> None:
    result = extended_json_to_json(orjson.loads(text))
    assert isinstance(result, dict)
    orjson.dumps(result)


def test_legacy_and_relaxed_forms() -> None:
    cases = {
        '{"$date": "2024-03-20T12:00:00.5+02:00"}': "2024-03-20T10:00:00.500Z",
        '{"$date": 0}': "1970-01-01T00:00:00.000Z",
        '{"$uuid": "6c1f3f0e-4d3a-4f5e-9a51-2b7c9d0e1f21"}': str(U),
        '{"$binary": "AAE=", "$type": "00"}': "AAE=",
        '{"$numberDouble": "-Infinity"}': {"$numberDouble": "-Infinity"},
        '{"$symbol": "s"}': "s",
        '{"$undefined": true}': None,
        '{"$numberDecimal": "1E+2"}': "1E+2",
        '{"$numberDecimal": "007"}': "7",
    }
    for text, expected in cases.items():
        assert extended_json_to_json(orjson.loads(text)) == expected, text
        assert bson_to_json(json_util.loads(text)) == expected, text
