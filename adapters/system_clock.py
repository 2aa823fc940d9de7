"""The real clock: wall time, a scheduler thread for delayed calls, and condition-based waiting."""

from __future__ import annotations

import heapq
import itertools
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime

import structlog

from adapters.scheduled_call import ScheduledCall

log = structlog.get_logger("connector.clock")


class SystemClock:
    """Implements the Clock port. One daemon thread runs scheduled calls in time order."""

    def __init__(self) -> None:
        self._changed = threading.Condition()
        self._waiters = 0
        self._queue: list[ScheduledCall] = []
        self._order = itertools.count()
        self._wakeup = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="clock-scheduler", daemon=True)
        self._thread.start()

    def now(self) -> datetime:
        return datetime.now(UTC)

    def monotonic(self) -> float:
        return time.monotonic()

    def call_later(self, delay: float, fn: Callable[[], None]) -> ScheduledCall:
        call = ScheduledCall(time.monotonic() + max(0.0, delay), next(self._order), fn)
        with self._wakeup:
            heapq.heappush(self._queue, call)
            self._wakeup.notify()
        return call

    def notify(self) -> None:
        # Publisher callbacks call this for every message; take the condition's lock only when someone
        # waits. A waiter registers before checking its predicate, so no wake-up is lost.
        if self._waiters:
            with self._changed:
                self._changed.notify_all()

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        with self._changed:
            self._waiters += 1
            try:
                return self._changed.wait_for(predicate, timeout=max(0.0, timeout))
            finally:
                self._waiters -= 1

    def _run(self) -> None:
        while True:
            with self._wakeup:
                while not self._queue or self._queue[0].at > time.monotonic():
                    wait = None if not self._queue else self._queue[0].at - time.monotonic()
                    self._wakeup.wait(timeout=wait)
                call = heapq.heappop(self._queue)
            if call.cancelled:
                continue
            try:
                call.fn()
            except Exception:  # a failing callback must not kill every later timer
                log.exception("scheduled_call_failed")
            self.notify()
