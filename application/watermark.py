"""Which token is safe to checkpoint: the newest one whose predecessors have all settled.

Pub/Sub acknowledges messages of different ordering keys in any order, so "the last acked event"
is not safe to resume from: an older event may still be in flight and would be skipped after a
restart. Events enter in source order; the watermark only moves over a settled prefix.
"""

from __future__ import annotations

import threading
from collections import deque

from attrs import define

from domain.change_event import ClusterTime, ResumeToken


@define
class _Entry:
    token: ResumeToken
    cluster_time: ClusterTime | None
    settled: bool


class WatermarkTracker:
    """Thread-safe: ``add`` from the reader, ``settle`` from publisher callbacks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: deque[_Entry] = deque()
        self._head = 0  # sequence number of _entries[0]
        self._next = 0
        self._watermark: tuple[ResumeToken, ClusterTime | None] | None = None

    def add(self, token: ResumeToken, cluster_time: ClusterTime | None, *, settled: bool = False) -> int:
        """Register an item in source order; returns its sequence number for :meth:`settle`."""
        with self._lock:
            if not self._entries:
                self._head = self._next
            if settled and not self._entries:
                self._watermark = (token, cluster_time)
                seq = self._next
                self._next += 1
                self._head = self._next
                return seq
            self._entries.append(_Entry(token, cluster_time, settled))
            seq = self._next
            self._next += 1
            return seq

    def settle(self, seq: int) -> None:
        """Mark an item done (published, dead-lettered, rejected or skipped)."""
        with self._lock:
            index = seq - self._head
            if index < 0 or index >= len(self._entries):
                return  # already settled and passed (e.g. a duplicate callback)
            self._entries[index].settled = True
            while self._entries and self._entries[0].settled:
                entry = self._entries.popleft()
                self._head += 1
                self._watermark = (entry.token, entry.cluster_time)

    @property
    def watermark(self) -> tuple[ResumeToken, ClusterTime | None] | None:
        with self._lock:
            return self._watermark

    @property
    def pending(self) -> int:
        """Items added but not yet behind the watermark."""
        with self._lock:
            return len(self._entries)
