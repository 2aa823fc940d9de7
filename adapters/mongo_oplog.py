"""The oplog window and the resume margin, sampled once a minute: the early warning before 286.

A change stream can resume only from a token still in the oplog. When the connector falls behind
(or stays stopped) longer than the oplog window, the stored token falls off and the stream fails
with ChangeStreamHistoryLost (286). Two gauges show that coming:
- ``connector_oplog_window_seconds``: newest minus oldest oplog entry;
- ``connector_resume_margin_seconds``: the stream's read position minus the oldest entry, i.e. how
  long until that position falls off. The read position runs at most ``max_in_flight_messages``
  events ahead of the stored checkpoint (reading pauses beyond that), so it stands for it.

Reading ``local.oplog.rs`` needs a role such as ``clusterMonitor``; a user without it gets one line
saying so, and the connector goes on without the gauges. The sampling runs on a thread of its own:
a slow server must never delay the pipeline's checkpoint timers.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

import structlog
from pymongo import errors as pymongo_errors

from application.ports import Metrics
from domain.change_event import ClusterTime
from domain.redaction import redact

log = structlog.get_logger("connector.mongodb")

UNAUTHORIZED = 13
SAMPLE_DEADLINE_MS = 5_000


class OplogGauges:
    """Samples both gauges every ``interval_s`` until :meth:`stop`, or until reading is refused."""

    def __init__(
        self,
        *,
        client: Any,
        metrics: Metrics,
        position: Callable[[], ClusterTime | None],
        interval_s: float = 60.0,
    ) -> None:
        self._client = client
        self._metrics = metrics
        self._position = position
        self._interval_s = interval_s
        self._stopped = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> OplogGauges:
        self._thread = threading.Thread(target=self._run, name="oplog-gauges", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()

    def _run(self) -> None:
        while self.sample() and not self._stopped.wait(self._interval_s):
            pass

    def _edge(self, direction: int) -> int:
        oplog = self._client.local["oplog.rs"]
        cursor = oplog.find({}, {"ts": 1}).sort("$natural", direction).limit(1).max_time_ms(SAMPLE_DEADLINE_MS)
        for entry in cursor:
            return int(entry["ts"].time)
        raise LookupError("the oplog is empty")

    def sample(self) -> bool:
        """One sample; False when the user may not read the oplog (then sampling ends)."""
        try:
            oldest, newest = self._edge(1), self._edge(-1)
        except pymongo_errors.OperationFailure as error:
            if error.code == UNAUTHORIZED:
                structlog.get_logger("connector.mongodb").warning(  # once per process: bound at use
                    "oplog_gauges_unavailable",
                    reason="the user may not read local.oplog.rs",
                    fix="grant the clusterMonitor role to get connector_oplog_window_seconds and "
                    "connector_resume_margin_seconds; streaming is not affected",
                )
                return False
            log.info("oplog_sample_failed", error=redact(str(error)))
            return True
        except (pymongo_errors.PyMongoError, LookupError) as error:
            log.info("oplog_sample_failed", error=redact(str(error)))  # unreachable now: the next minute may do
            return True
        self._metrics.oplog_window(seconds=float(newest - oldest))
        position = self._position()
        if position is not None:
            self._metrics.resume_margin(seconds=float(position.seconds - oldest))
        return True
