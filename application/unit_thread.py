"""A stream unit served on a thread of its own, so a slow unit never stalls the others in its process."""

from __future__ import annotations

import threading
from collections.abc import Callable

import structlog

from application.pipeline import RunResult, StopReason
from application.ports import Clock

log = structlog.get_logger("connector.balancer")


class UnitThread:
    """Implements UnitHandle: serves one unit on a thread of its own; the clock is notified when it ends."""

    def __init__(self, *, name: str, serve: Callable[[], RunResult], stop: Callable[[], None], clock: Clock) -> None:
        self._serve = serve
        self._stop = stop
        self._clock = clock
        self._result: RunResult | None = None
        self._finished_at: float | None = None
        self._thread = threading.Thread(target=self._run, name=f"unit-{name}", daemon=True)
        self._thread.start()

    @property
    def result(self) -> RunResult | None:
        return self._result

    @property
    def finished_at(self) -> float | None:
        return self._finished_at

    def request_stop(self) -> None:
        self._stop()

    def _run(self) -> None:
        try:
            result = self._serve()
        except Exception as error:  # a bug in one unit must not leave the balancer waiting forever
            log.exception("unit_crashed", error=str(error))
            result = RunResult(reason=StopReason.FATAL, events=0, checkpoint=None, error=str(error))
        self._finished_at = self._clock.monotonic()  # before the result: the balancer reads both once it is set
        self._result = result
        self._clock.notify()
