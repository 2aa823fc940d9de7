"""Token-store calls on a thread of their own (the StoreCalls port).

Checkpoint saves are Firestore transactions: tens of milliseconds when healthy, up to their deadline
when not. Run on the clock's scheduler thread they would hold up every publish retry and lease
renewal queued behind them; here they queue behind each other only.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import structlog

log = structlog.get_logger("connector.store")


class StoreThread:
    """Implements the StoreCalls port with one worker thread (saves stay in order)."""

    def __init__(self) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="token-store")

    def submit(self, call: Callable[[], None]) -> None:
        self._pool.submit(self._guarded, call)

    @staticmethod
    def _guarded(call: Callable[[], None]) -> None:
        try:
            call()
        except Exception:  # the call reports its own errors; this is an adapter bug, keep the thread
            log.exception("store_call_failed")

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)
