"""What /health and /readiness report, written by the worker and read by the HTTP thread."""

from __future__ import annotations

import threading
from datetime import datetime

from attrs import define, field


@define
class HealthState:
    """Readiness needs an open stream and no check failing; each failing check has a message."""

    alive: bool = True
    stream_open: bool = False
    failing: dict[str, str] = field(factory=dict)
    last_checkpoint_at: datetime | None = None
    _lock: threading.Lock = field(factory=threading.Lock, repr=False)
    _units: dict[str, HealthState] = field(factory=dict, repr=False)

    def unit(self, name: str) -> HealthState:
        """A stream unit's own state, when a process serves several: readiness merges them all (ready
        while any unit's stream is open and no check fails), naming the unit in each problem."""
        state = HealthState()
        with self._lock:
            self._units[name] = state
        return state

    def drop_unit(self, name: str) -> None:
        with self._lock:
            self._units.pop(name, None)

    def fail(self, check: str, message: str) -> None:
        with self._lock:
            self.failing[check] = message

    def ok(self, check: str) -> None:
        with self._lock:
            self.failing.pop(check, None)

    def set_stream_open(self, is_open: bool) -> None:
        with self._lock:
            self.stream_open = is_open

    def died(self, message: str) -> None:
        with self._lock:
            self.alive = False
            self.failing["worker"] = message

    def readiness(self) -> tuple[bool, dict[str, str]]:
        """(ready, problems): ready only when the stream is open and nothing is failing."""
        with self._lock:
            problems = dict(self.failing)
            stream_open = self.stream_open
            units = list(self._units.items())
        for name, unit in units:
            with unit._lock:
                stream_open = stream_open or unit.stream_open
                for check, message in unit.failing.items():
                    seen = problems.get(check)
                    problems[check] = f"{name}: {message}" if seen is None else f"{seen}; {name}: {message}"
        if not stream_open and "worker" not in problems:
            problems.setdefault("stream", "change stream not open yet")
        return not problems, problems
