"""Stopping ``connector run`` within Cloud Run's 10 s grace, however stuck a dependency is.

The worker runs on a thread of its own and the main thread only waits, because Python runs a signal
handler on the main thread between bytecodes: a main thread inside a hung gRPC call would hear the
signal only when the call gives up, a minute later.

The first SIGTERM or SIGINT asks the worker to stop: drain, final checkpoint, lease release. Those
talk to Pub/Sub and Firestore, which can hang (a frozen server, a network partition), so stopping
has a deadline; past it the process exits anyway with one warning line. Nothing is lost by that:
the next start resumes from the last stored checkpoint and re-publishes what came after it, and
the lease frees itself after ``token_store.lease_seconds``. A worker that dies of a fatal error gets
the same deadline. A second signal exits at once.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TypeVar

import orjson
import structlog

from domain.redaction import redact
from entrypoints import launch

log = structlog.get_logger("connector.run")

T = TypeVar("T")

STOP_DEADLINE_S = 9.0
"""From the first signal (or the worker's death) to exit: Cloud Run's grace is 10 s, and the
interpreter needs a moment to go."""

_POLL_S = 0.1  # how often the waiting main thread looks at the clock; a signal wakes nothing sooner


class GracefulStop:
    """The signal handlers of ``run`` and the deadline of its shutdown.

    ``listen`` first, before anything slow, so that an early signal still means "stop cleanly";
    ``attach`` the worker's stop request once the worker exists.
    """

    def __init__(
        self, *, deadline_s: float = STOP_DEADLINE_S, exit_process: Callable[[int], None] | None = None
    ) -> None:
        self._deadline_s = deadline_s
        self._exit = exit_process or _exit
        self._requested_at: float | None = None
        self._request_stop: Callable[[], None] | None = None

    @property
    def requested(self) -> bool:
        return self._requested_at is not None

    def listen(self) -> None:
        """Take over SIGTERM/SIGINT from :mod:`entrypoints.launch`, which remembered any that came early."""
        launch.listen(self.on_signal)

    def attach(self, request_stop: Callable[[], None]) -> None:
        self._request_stop = request_stop
        if self.requested:
            request_stop()

    def on_signal(self, signum: int) -> None:
        """The handler :func:`listen` installs (runs on the main thread)."""
        name = signal.Signals(signum).name
        if self.requested:
            _forced_line(name)
            self._exit(0)
        self._requested_at = time.monotonic()
        log.info("stop_requested", signal=name)
        if self._request_stop is not None:
            self._request_stop()

    def run(self, work: Callable[[], T], *, death: Callable[[], str | None]) -> T:
        """``work()`` on its own thread, returning its result; past the deadline, exit the process.

        ``death`` says why the worker died (a fatal error), or None while it lives: a dying worker
        also gets only the deadline to finish, and then the process exits 1 with that reason.
        """
        outcome: list[T] = []
        failure: list[BaseException] = []
        done = threading.Event()

        def target() -> None:
            try:
                outcome.append(work())
            except BaseException as error:  # re-raised on the main thread, where the CLI reports it
                failure.append(error)
            finally:
                done.set()

        threading.Thread(target=target, name="worker", daemon=True).start()
        died_at: float | None = None
        while not done.wait(_POLL_S):
            now = time.monotonic()
            if died_at is None and death() is not None:
                died_at = now
            began = [t for t in (self._requested_at, died_at) if t is not None]
            if began and now - min(began) >= self._deadline_s:
                self._abandon(death())
        if failure:
            raise failure[0]
        return outcome[0]

    def _abandon(self, death: str | None) -> None:
        log.warning(
            "shutdown_deadline_passed",
            seconds=self._deadline_s,
            unfinished="a Firestore or Pub/Sub call did not answer (final checkpoint, lease release or flush)",
            recovery="nothing is lost: the next start re-publishes from the last stored checkpoint, "
            "and waits up to token_store.lease_seconds for this instance's lease",
        )
        if death is not None and not self.requested:
            print(f"error: {redact(death)}", file=sys.stderr)
            self._exit(1)
        self._exit(0)


def _forced_line(signal_name: str) -> None:
    """The ``stop_forced`` line, written raw: the second signal may interrupt the first handler's own
    log line on this thread, and the logger's write lock would then never be released (a hang)."""
    line = {"event": "stop_forced", "signal": signal_name, "level": "WARNING", "severity": "WARNING",
            "recovery": "the next start resumes from the last stored checkpoint",
            "timestamp": datetime.now(UTC).isoformat()}  # fmt: skip
    os.write(sys.stdout.fileno(), b"\n" + orjson.dumps(line) + b"\n")


def _exit(code: int) -> None:
    """Exit now: threads stuck in a client call would keep a normal interpreter exit waiting."""
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
