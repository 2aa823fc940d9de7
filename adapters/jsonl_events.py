"""Change events from JSONL (CONTRACT §6): one Extended JSON event per line, blank lines ignored."""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from application.event_flow import EventInputError
from domain.event_codec import EventDecodeError, decode_event_line
from domain.json_types import JsonObject


def read_jsonl_events(lines: Iterable[bytes], *, name: str) -> Iterator[tuple[str, JsonObject]]:
    """Yield ``("<name>:<line>", event)``; a bad line raises :class:`EventInputError` naming it."""
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield f"{name}:{number}", decode_event_line(line)
        except EventDecodeError as error:
            raise EventInputError(f"{name}:{number}", f"{error}; each line must be one change event") from None
