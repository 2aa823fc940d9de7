"""A change source narrowed to one stream unit's events, for sources that cannot filter server-side.

MongoDB filters in the ``watch()`` pipeline; a JSONL file or the simulated feed holds every unit's
events, so each unit reads it whole and keeps its own. Heartbeats pass: they are positions, not events.
"""

from __future__ import annotations

from collections.abc import Iterator

from application.ports import ChangeSource, SourceBatch, SourceEvent, StartPosition
from domain.partitions import StreamUnit


class OwnedEventsSource:
    """Implements the ChangeSource port: ``inner``'s items that ``unit`` owns."""

    def __init__(self, inner: ChangeSource, *, unit: StreamUnit) -> None:
        self._inner = inner
        self._unit = unit

    def read(self, start: StartPosition) -> Iterator[SourceBatch]:
        owns = self._unit.owns
        for batch in self._inner.read(start):
            kept = [item for item in batch if type(item) is not SourceEvent or owns(item.event)]
            if kept:
                yield kept

    def close(self) -> None:
        self._inner.close()
