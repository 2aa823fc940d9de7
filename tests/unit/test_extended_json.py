"""JSONL's Extended JSON decoder must judge a document exactly as the live path does: its result is
defined as ``bson_to_json(json_util.loads(text))`` (domain/extended_json.py), canonical or relaxed."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from bson import json_util
from hypothesis import given, settings

from domain.bson_json import bson_to_json
from domain.extended_json import extended_json_to_json
from tests.strategies import bson_documents

MODES = {"canonical": json_util.CANONICAL_JSON_OPTIONS, "relaxed": json_util.RELAXED_JSON_OPTIONS}


def both_ways(text: str) -> tuple[bytes, bytes]:
    fast = extended_json_to_json(orjson.loads(text))
    reference = bson_to_json(json_util.loads(text))
    return orjson.dumps(fast), orjson.dumps(reference)  # bytes: NaN never equals itself, its form does


@pytest.mark.parametrize("mode", MODES)
@settings(max_examples=100, deadline=None)
@given(document=bson_documents())
def test_matches_json_util_then_the_bson_mapping(mode: str, document: dict[str, Any]) -> None:
    fast, reference = both_ways(json_util.dumps({"d": document}, json_options=MODES[mode]))
    assert fast == reference


@pytest.mark.parametrize(
    "oid",
    ["65FAB39EE1D2C3B4A5968701", "65fab39ee1d2c3b4a596870g", "65fab39ee1d2c3b4a59687 1", "65fab39ee1d2c3b4a59687é1",
     "+5fab39ee1d2c3b4a5968701", "65fab39ee1d2c3b4a596870"],
)  # fmt: skip
def test_oid_wrappers_need_exactly_24_hex_digits(oid: str) -> None:
    """Upper case is lowered; anything else is not an ObjectId, so the dict stays a plain document."""
    result = extended_json_to_json({"k": {"$oid": oid}})
    valid = len(oid) == 24 and all(c in "0123456789abcdefABCDEF" for c in oid)
    assert result == {"k": oid.lower() if valid else {"$oid": oid}}
