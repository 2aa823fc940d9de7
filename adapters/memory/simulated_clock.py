"""A discrete-event clock: time moves only when someone waits, and scheduled calls run in order.

With it, the pipeline, the in-memory publisher's delayed acks and the retry timers all run on one
thread, deterministically for a seed, so thousands of fault scenarios take seconds.
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from adapters.scheduled_call import ScheduledCall


class SimulatedClock:
    """Implements the Clock port on a virtual timeline starting at ``start``."""

    def __init__(self, start: datetime = datetime(2025, 1, 1, tzinfo=UTC)) -> None:
        self._epoch = start
        self._now = 0.0
        self._queue: list[ScheduledCall] = []
        self._order = itertools.count()

    def now(self) -> datetime:
        return self._epoch + timedelta(seconds=self._now)

    def monotonic(self) -> float:
        return self._now

    def call_later(self, delay: float, fn: Callable[[], None]) -> ScheduledCall:
        call = ScheduledCall(self._now + max(0.0, delay), next(self._order), fn)
        heapq.heappush(self._queue, call)
        return call

    def notify(self) -> None:
        """Nothing to wake: waiting re-checks its predicate after every scheduled call."""

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = self._now + max(0.0, timeout)
        while not predicate():
            if not self._run_next(deadline):
                self._now = max(self._now, deadline)
                return predicate()
        return True

    def advance(self, seconds: float) -> None:
        """Let ``seconds`` pass, running everything scheduled within them (sources use this to pace)."""
        deadline = self._now + seconds
        while self._run_next(deadline):
            pass
        self._now = max(self._now, deadline)

    def run_all(self, limit: float = 3600.0) -> None:
        """Run every scheduled call up to ``limit`` seconds from now."""
        self.advance(limit)

    def _run_next(self, deadline: float) -> bool:
        while self._queue and self._queue[0].cancelled:
            heapq.heappop(self._queue)
        if not self._queue or self._queue[0].at > deadline:
            return False
        call = heapq.heappop(self._queue)
        self._now = max(self._now, call.at)
        call.fn()
        return True
