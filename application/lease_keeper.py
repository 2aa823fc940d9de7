"""Keeping one lease alive, on a timer of its own and with a deadline on every renewal.

Renewal used to run on the clock's one scheduler thread, behind checkpoint saves to the same
Firestore: under load a save took longer than the lease's time to live and an instance lost its own
lease. Here renewal has its own clock (a scheduler thread of its own in production) and each call
runs on the keeper's own worker thread, waited for at most a third of the lease's time (or what is
left of it). A call that misses its deadline is retried at the next tick; if the lease runs out
before any renewal succeeds, another instance may hold it now, so the keeper reports it lost and the
unit stops publishing at once (better than publishing beside the new owner until fenced out).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as CallTimeout

import structlog

from application.ports import Cancellable, Clock, Lease, LeaseLost, TokenStore

log = structlog.get_logger("connector.lease")


class LeaseKeeper:
    """Renews ``lease`` every third of ``ttl_s`` until :meth:`stop`; calls ``on_lost`` (once) when it is
    taken over or runs out. ``clock`` should be one no other I/O waits on."""

    def __init__(
        self,
        *,
        store: TokenStore,
        clock: Clock,
        lease: Lease,
        ttl_s: float,
        on_lost: Callable[[str], None],
    ) -> None:
        self._store = store
        self._clock = clock
        self._ttl = ttl_s
        self._on_lost = on_lost
        # One lock for the keeper's state: the lease, its local deadline and the timer, read by the
        # unit's thread (stop, lease) and written by the renewal tick. Never held across the store call.
        self._lock = threading.Lock()
        self._lease: Lease | None = lease
        self._valid_until = clock.monotonic() + ttl_s  # the lease was just taken or renewed
        self._timer: Cancellable | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"lease-{lease.stream_id}")

    @property
    def lease(self) -> Lease | None:
        """The current lease; None once lost."""
        with self._lock:
            return self._lease

    def start(self) -> LeaseKeeper:
        self._schedule(self._ttl / 3)
        return self

    def stop(self) -> Lease | None:
        """Stop renewing; returns the lease still held (to release), None if it was lost."""
        with self._lock:
            lease, self._lease = self._lease, None
            timer, self._timer = self._timer, None
        if timer is not None:
            timer.cancel()
        self._executor.shutdown(wait=False)
        return lease

    def _schedule(self, delay: float) -> None:
        with self._lock:
            if self._lease is not None:
                self._timer = self._clock.call_later(delay, self._tick)

    def _tick(self) -> None:
        with self._lock:
            lease, valid_until = self._lease, self._valid_until
        if lease is None:
            return
        started = self._clock.monotonic()
        try:
            future: Future[Lease] = self._executor.submit(self._store.renew_lease, lease, ttl_seconds=self._ttl)
        except RuntimeError:  # stopped meanwhile: the executor takes no more calls
            return
        try:
            renewed = future.result(timeout=self._ttl / 3)  # the deadline of this call
        except LeaseLost as error:
            self._lost(lease, str(error))
            return
        except (CallTimeout, Exception) as error:  # slow or unreachable store: keep trying, sooner
            log.warning("lease_renewal_failed", stream=lease.stream_id, error=str(error) or "no answer in time",
                        seconds_left=round(valid_until - started, 1))  # fmt: skip
            self._schedule(self._ttl / 6)
            return
        with self._lock:
            if self._lease is not None:
                self._lease, self._valid_until = renewed, started + self._ttl
        self._schedule(self._ttl / 3)

    def _lost(self, lease: Lease, reason: str) -> None:
        with self._lock:
            if self._lease is None:
                return
            self._lease = None
        log.error("lease_lost", stream=lease.stream_id, error=reason, recovery="this unit stops publishing")
        self._on_lost(reason)
