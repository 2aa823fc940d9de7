"""From raw events (JSON form, in stream order) to whole, parsed change events.

Split fragments are joined here, before anything else sees them (CONTRACT §6); a numbered input
(file line, stream position) travels with each event so every error can say where it happened.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from application.ports import SourceBatch, SourceItem
from domain.change_event import ChangeEvent, MalformedEventError, parse_change_event
from domain.json_types import JsonObject
from domain.split_events import SplitEventAssembler, SplitEventError

P = TypeVar("P")


class EventInputError(ValueError):
    """An event that cannot be understood, with where it was found."""

    def __init__(self, position: object, message: str) -> None:
        super().__init__(f"{position}: {message}")
        self.position = position


def whole_events(raw_events: Iterable[tuple[P, JsonObject]]) -> Iterator[tuple[P, ChangeEvent]]:
    """Yield ``(position, event)`` for every complete event; fragments are held until whole."""
    assembler = SplitEventAssembler()
    for position, raw in raw_events:
        try:
            whole = assembler.feed(raw)
            if whole is not None:
                yield position, parse_change_event(whole)
        except (SplitEventError, MalformedEventError) as error:
            raise EventInputError(position, str(error)) from None


def batched(items: Iterable[SourceItem | None], *, size: int) -> Iterator[SourceBatch]:
    """Cut a source's items into batches of at most ``size``; ``None`` in ``items`` marks a moment the
    source has nothing more at hand (end of the file for now, a pacing wait), where the batch so far is
    handed on rather than held while the source waits."""
    batch: list[SourceItem] = []
    for item in items:
        if item is not None:
            batch.append(item)
        if batch and (item is None or len(batch) >= size):
            yield batch
            batch = []
    if batch:
        yield batch
