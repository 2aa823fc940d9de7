"""Token-store calls on a thread of their own (the StoreCalls port).

Checkpoint saves are Firestore transactions: tens of milliseconds when healthy, up to their deadline
when not. Run on the clock's scheduler thread they would hold up every publish retry and lease
renewal queued behind them; here they queue behind each other only (one thread: saves stay in order).
"""

from __future__ import annotations

from collections.abc import Callable

from adapters.daemon_pool import DaemonPool


class StoreThread:
    """Implements the StoreCalls port."""

    def __init__(self) -> None:
        self._pool = DaemonPool(workers=1, name="token-store")

    def submit(self, call: Callable[[], None]) -> None:
        self._pool.submit(call)

    def close(self) -> None:
        self._pool.close()
