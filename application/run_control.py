"""What the parts of one pipeline run share: settings, stop requests, the first fatal error, counters.

The reader loop, the dispatcher's completions (publish threads) and the checkpointer (clock and store
threads) all report here. One lock guards the fatal slot and the counters, so a failure seen on two
threads at once is reported once and no count is lost; it is held only for those few assignments.
"""

from __future__ import annotations

import enum
import threading
from collections.abc import Callable

import structlog
from attrs import define, field, frozen

from application.backoff import RetryPolicy
from application.health import HealthState
from domain.change_event import ResumeToken

log = structlog.get_logger("connector.pipeline")


class StopReason(enum.StrEnum):
    END_OF_SOURCE = "end_of_source"
    STOP_REQUESTED = "stop_requested"
    INVALID_DOCUMENT = "invalid_document"
    FATAL = "fatal"


@frozen
class PipelineSettings:
    stream_id: str
    max_in_flight_messages: int = 10_000
    checkpoint_interval_s: float = 1.0
    checkpoint_deadline_s: float = 10.0  # a save still running this long marks readiness failing
    stop_deadline_s: float = 10.0
    fail_on_invalid: bool = False
    retry: RetryPolicy = field(factory=RetryPolicy)
    generation: int = 0
    summary_interval_s: float = 30.0
    stall_after_s: float = 5.0  # readiness fails when nothing was acknowledged this long with messages in flight
    batch_max_messages: int = 1000  # per Publish request
    event_log_level: str = "debug"  # the per-event line's level (logging.events): debug or info


@frozen
class RunResult:
    reason: StopReason
    events: int
    checkpoint: ResumeToken | None
    error: str | None = None
    recovery: str | None = None
    drained: bool = True
    usage_error: bool = False  # the deployment, not the data, is wrong (e.g. a server below the floor)


@define
class Counters:
    events: int = 0
    checkpoints: int = 0
    published: int = 0
    rejected: int = 0
    skipped: int = 0


class RunControl:
    """Stop requests (first: graceful, second: at once) and the first fatal error of a run."""

    def __init__(self, *, health: HealthState, on_fatal: Callable[[], None]) -> None:
        self._health = health
        self._on_fatal = on_fatal  # interrupt the source and wake waiters
        self._lock = threading.Lock()
        self.stop = threading.Event()
        self.hard_stop = threading.Event()
        self.fatal: tuple[str, str] | None = None
        self.usage_error = False
        self.drain_pointless = False  # publishing or checkpointing itself is what failed
        self.counters = Counters()

    def stopping(self) -> bool:
        return self.stop.is_set() or self.fatal is not None

    def request_stop(self) -> None:
        if self.stop.is_set():
            self.hard_stop.set()
        self.stop.set()

    def set_fatal(self, message: str, recovery: str, *, drain: bool = True, usage: bool = False) -> None:
        """``usage``: the deployment is wrong (a server below the floor), so the command exits 2."""
        with self._lock:
            if not drain:
                self.drain_pointless = True
            first = self.fatal is None
            if first:
                self.fatal = (message, recovery)
                self.usage_error = usage
        if first:
            log.error("worker_stopping", error=message, recovery=recovery or None)
            self._health.died(message)  # /health is 503 from now on, while draining too
            self._on_fatal()

    def count(self, *, events: int = 0, published: int = 0, rejected: int = 0, skipped: int = 0) -> None:
        with self._lock:
            counters = self.counters
            counters.events += events
            counters.published += published
            counters.rejected += rejected
            counters.skipped += skipped

    def count_checkpoint(self) -> None:
        with self._lock:
            self.counters.checkpoints += 1
