"""Which token is safe to checkpoint: the newest one whose predecessors have all settled.

Pub/Sub acknowledges messages of different ordering keys in any order, so "the last acked event"
is not safe to resume from: an older event may still be in flight and would be skipped after a
restart. Events enter in source order; the watermark only moves over a settled prefix. An event with
several messages (``dropDatabase`` fans out to every topic) settles when its last part does.

Both sides work a batch at a time (a source batch in, a Publish request's messages out), so the lock
is taken once per batch or request, not once per event.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterable, Sequence

from attrs import define

from domain.change_event import ClusterTime, ResumeToken

Entry = tuple[ResumeToken, ClusterTime | None, int]
"""(token, cluster time, parts still to settle); 0 parts: settled on arrival (skipped, heartbeat)."""


@define
class _Entry:
    token: ResumeToken
    cluster_time: ClusterTime | None
    remaining: int


class WatermarkTracker:
    """Thread-safe: ``add``/``add_many`` from the reader, ``settle_many`` from publish completions.

    One lock guards the entries and the watermark; it is held only for list and counter updates."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: deque[_Entry] = deque()
        self._head = 0  # sequence number of _entries[0]
        self._next = 0
        self._watermark: tuple[ResumeToken, ClusterTime | None] | None = None

    def add(self, token: ResumeToken, cluster_time: ClusterTime | None, *, settled: bool = False) -> int:
        """Register one item in source order; returns its sequence number for :meth:`settle`."""
        return self.add_many(((token, cluster_time, 0 if settled else 1),))

    def add_many(self, entries: Sequence[Entry]) -> int:
        """Register items in source order; the i-th gets sequence number ``returned + i``."""
        with self._lock:
            first = self._next
            items = self._entries
            for token, cluster_time, parts in entries:
                if parts <= 0 and not items:  # nothing pending before it: the watermark moves at once
                    self._watermark = (token, cluster_time)
                    self._next += 1
                    self._head = self._next
                    continue
                if not items:
                    self._head = self._next
                items.append(_Entry(token, cluster_time, parts))
                self._next += 1
            return first

    def settle(self, seq: int) -> None:
        """Settle one part of an item (published, dead-lettered)."""
        self.settle_many((seq,))

    def settle_many(self, seqs: Iterable[int]) -> None:
        """Settle one part of each item in ``seqs`` (a sequence number may repeat, once per part)."""
        with self._lock:
            items = self._entries
            head = self._head
            for seq in seqs:
                index = seq - head
                if 0 <= index < len(items):  # else already settled and passed (e.g. a duplicate completion)
                    items[index].remaining -= 1
            while items and items[0].remaining <= 0:
                entry = items.popleft()
                self._head += 1
                self._watermark = (entry.token, entry.cluster_time)

    @property
    def next_seq(self) -> int:
        """The sequence number the next added item gets (the reader is the only one adding)."""
        return self._next

    @property
    def watermark(self) -> tuple[ResumeToken, ClusterTime | None] | None:
        with self._lock:
            return self._watermark

    @property
    def pending(self) -> int:
        """Items added but not yet behind the watermark."""
        with self._lock:
            return len(self._entries)
