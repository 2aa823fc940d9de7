"""A few daemon threads running submitted calls: where publish RPCs and token-store saves block.

Not ``ThreadPoolExecutor``: it joins its threads when the interpreter exits, so one RPC hung on a
frozen server would hold the process past its stop deadline (and past Cloud Run's SIGKILL), and it
builds a Future per call that nobody reads. Calls answer through their own callbacks instead.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Any

import structlog

log = structlog.get_logger("connector.pool")


class DaemonPool:
    """``workers`` daemon threads taking calls from one queue in submission order."""

    def __init__(self, *, workers: int, name: str) -> None:
        self._queue: queue.SimpleQueue[tuple[Callable[..., None], tuple[Any, ...]] | None] = queue.SimpleQueue()
        self._threads = [
            threading.Thread(target=self._work, name=f"{name}-{index}", daemon=True) for index in range(workers)
        ]
        for thread in self._threads:
            thread.start()

    def submit(self, call: Callable[..., None], *args: Any) -> None:
        self._queue.put((call, args))

    def close(self) -> None:
        """Threads end after the calls already queued (no waiting here)."""
        for _ in self._threads:
            self._queue.put(None)

    def _work(self) -> None:
        while (item := self._queue.get()) is not None:
            call, args = item
            try:
                call(*args)
            except Exception:  # the call answers its own errors; this is a bug, keep the thread alive
                log.exception("pool_call_failed")
