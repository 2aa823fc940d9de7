"""Publishing that never gives up on a message and never reorders one ordering key.

Pub/Sub pauses an ordering key after a failed publish: every later message with that key fails
too until ``resume_publish``. So a failure blocks only its (topic, key): the failed message and
every later one for that key wait in a backlog in source order, and after a backoff the key is
resumed and the backlog re-sent in order. New messages for a blocked key join the backlog instead
of overtaking it. Other keys keep flowing. Unordered messages are retried one by one.
"""

from __future__ import annotations

import bisect
import itertools
import threading
from collections.abc import Callable

from attrs import define, field

from application.backoff import RetryPolicy
from application.ports import Cancellable, Clock, Metrics, Publisher, PublishError
from domain.envelope import OutboundMessage

Done = Callable[[float], None]
"""Called once when a message is published, with its publish latency in seconds."""


@define(order=True)
class _Pending:
    seq: int
    message: OutboundMessage = field(order=False)
    on_done: Done = field(order=False)
    started: float = field(order=False)
    first_failure: float | None = field(default=None, order=False)
    attempt: int = field(default=0, order=False)


@define
class _KeyState:
    blocked: bool = False
    attempt: int = 0
    first_failure: float | None = None
    backlog: list[_Pending] = field(factory=list)
    timer: Cancellable | None = None


class ReliablePublisher:
    """Wraps a :class:`Publisher` with ordered, per-key retries; reports fatal errors once."""

    def __init__(
        self,
        *,
        publisher: Publisher,
        clock: Clock,
        policy: RetryPolicy,
        metrics: Metrics,
        on_fatal: Callable[[PublishError], None],
    ) -> None:
        self._publisher = publisher
        self._clock = clock
        self._policy = policy
        self._metrics = metrics
        self._on_fatal = on_fatal
        self._lock = threading.RLock()
        self._seq = itertools.count()
        self._keys: dict[tuple[str, str], _KeyState] = {}
        self._timers: dict[int, Cancellable] = {}
        self._in_flight = 0
        self._closed = False

    @property
    def in_flight(self) -> int:
        """Messages handed to us and not yet published (including those waiting for a retry)."""
        return self._in_flight

    def publish(self, message: OutboundMessage, on_done: Done) -> None:
        pending = _Pending(next(self._seq), message, on_done, self._clock.monotonic())
        with self._lock:  # short: never held across the client call, which contends with its callbacks
            self._in_flight += 1
            in_flight = self._in_flight
            state = (
                self._keys.get((message.topic, message.ordering_key)) if message.ordering_key and self._keys else None
            )
            if state is not None and state.blocked:
                bisect.insort(state.backlog, pending)
                return
        self._metrics.in_flight(messages=in_flight)
        # Safe outside the lock: if the key fails between the check and this call, the client has paused
        # it, this publish fails too and joins the backlog in sequence order.
        self._send(pending)

    def close(self) -> None:
        """Cancel scheduled retries (shutdown); messages still pending are left unsettled."""
        with self._lock:
            self._closed = True
            for timer in self._timers.values():
                timer.cancel()
            self._timers.clear()

    def _send(self, pending: _Pending) -> None:
        self._publisher.publish(pending.message, lambda error: self._completed(pending, error))

    def _completed(self, pending: _Pending, error: PublishError | None) -> None:
        if error is None:
            with self._lock:
                self._in_flight -= 1
                in_flight = self._in_flight
                if self._keys:
                    key = (pending.message.topic, pending.message.ordering_key)
                    state = self._keys.get(key)
                    if state is not None and not state.blocked and not state.backlog:
                        del self._keys[key]  # the key recovered: forget its failure history
            self._metrics.in_flight(messages=in_flight)
            pending.on_done(self._clock.monotonic() - pending.started)
            self._clock.notify()
            return
        now = self._clock.monotonic()
        with self._lock:
            if self._closed:
                return
            self._metrics.retried(kind="publish")
            if not error.retryable:
                self._on_fatal(error)
                return
            if not pending.message.ordering_key:
                self._retry_unordered(pending, error, now)
                return
            state = self._keys.setdefault((pending.message.topic, pending.message.ordering_key), _KeyState())
            bisect.insort(state.backlog, pending)
            if state.blocked:
                return  # a retry of this key is already scheduled; it will re-send us in order
            state.blocked = True
            state.attempt += 1
            if state.first_failure is None:
                state.first_failure = now
            if self._policy.gave_up(state.first_failure, now):
                self._on_fatal(_gave_up(error, self._policy))
                return
            key = (pending.message.topic, pending.message.ordering_key)
            self._schedule(self._policy.delay(state.attempt), lambda: self._retry_key(key))

    def _retry_unordered(self, pending: _Pending, error: PublishError, now: float) -> None:
        pending.attempt += 1
        if pending.first_failure is None:
            pending.first_failure = now
        if self._policy.gave_up(pending.first_failure, now):
            self._on_fatal(_gave_up(error, self._policy))
            return
        self._schedule(self._policy.delay(pending.attempt), lambda: self._send(pending))

    def _retry_key(self, key: tuple[str, str]) -> None:
        with self._lock:
            state = self._keys.get(key)
            if state is None or self._closed:
                return
            backlog, state.backlog, state.blocked = state.backlog, [], False
            self._publisher.resume(*key)
            for index, pending in enumerate(backlog):
                if state.blocked:  # a re-send failed at once: the rest waits for the next round
                    for rest in backlog[index:]:
                        bisect.insort(state.backlog, rest)
                    break
                self._send(pending)

    def _schedule(self, delay: float, fn: Callable[[], None]) -> None:
        holder: list[Cancellable] = []

        def run() -> None:
            with self._lock:
                if holder:
                    self._timers.pop(id(holder[0]), None)
            fn()

        timer = self._clock.call_later(delay, run)
        holder.append(timer)
        self._timers[id(timer)] = timer


def _gave_up(error: PublishError, policy: RetryPolicy) -> PublishError:
    return PublishError(
        f"publishing failed for {policy.max_elapsed_s:g} s (retry.max_elapsed_s): {error}",
        retryable=False,
        recovery="check Pub/Sub availability and permissions, or set retry.max_elapsed_s: 0 to retry forever",
    )
