"""Decode one line of change-event JSONL (canonical or relaxed Extended JSON) into its JSON form.

orjson parses and ``extended_json_to_json`` maps type wrappers directly, which is several times
faster than building bson objects with ``json_util.loads`` only to map them to JSON again.
"""

from __future__ import annotations

import orjson

from domain.extended_json import extended_json_to_json
from domain.json_types import JsonObject


class EventDecodeError(ValueError):
    """A line that is not a JSON object."""


def decode_event_line(line: bytes | str) -> JsonObject:
    try:
        parsed = orjson.loads(line)
    except orjson.JSONDecodeError as error:
        raise EventDecodeError(f"not valid JSON ({error})") from None
    if not isinstance(parsed, dict):
        raise EventDecodeError(f"expected a JSON object (one change event), got {type(parsed).__name__}")
    mapped = extended_json_to_json(parsed)
    assert isinstance(mapped, dict)
    return mapped
