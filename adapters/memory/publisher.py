"""A Pub/Sub stand-in at the Publish RPC level that keeps the real service's rules, and records everything.

The real API takes one ordering key per request and lands two concurrent requests of one key in any
order; the emulator accepts both mistakes silently. This fake refuses them (a fatal error, recorded
in ``refused``), so a test fails where production would reorder or be rejected. Faults come from a
seeded RNG per request: failures before delivery, lost acks (stored, but reported failed: a
duplicate after the retry) and hangs (very late answers); ``fail_request(key, k)`` fails exactly the
k-th request of a key. ``delivered`` is what a subscriber would receive, in order.
"""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable

from attrs import define

from application.ports import Clock, PublishError, PublishRequest, RequestDone
from domain.envelope import OutboundMessage


@define
class Faults:
    fail_rate: float = 0.0
    lost_ack_rate: float = 0.0
    hang_rate: float = 0.0
    hang_seconds: float = 20.0
    latency: tuple[float, float] = (0.001, 0.02)
    fatal_rate: float = 0.0


class InMemoryPublisher:
    """Implements the Publisher port on a :class:`Clock` (use ``SimulatedClock`` for determinism)."""

    def __init__(self, *, clock: Clock, faults: Faults | None = None, seed: int = 0) -> None:
        self._clock = clock
        self.faults = faults or Faults()
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._in_flight_keys: set[tuple[str, str]] = set()
        self._sent_per_key: Counter[tuple[str, str]] = Counter()
        self._fail: set[tuple[str, int]] = set()
        self.requests: list[PublishRequest] = []
        """Every request accepted, in the order it was sent (retries included)."""
        self.refused: list[tuple[PublishRequest, str]] = []
        self.delivered: list[OutboundMessage] = []
        self.in_flight = 0
        self.fail_next = 0
        self.gate: Callable[[OutboundMessage], bool] | None = None
        """While set and returning False for a message, its request fails (a stalled Pub/Sub)."""
        self.dead = False

    def fail_request(self, ordering_key: str, number: int) -> None:
        """Fail (retryably) the ``number``-th request (1-based, retries counted) of ``ordering_key``."""
        with self._lock:
            self._fail.add((ordering_key, number))

    def kill(self) -> None:
        """The process died: requests in transit may still reach the server (each with even odds), but
        nobody hears back."""
        with self._lock:
            self.dead = True

    def send(self, request: PublishRequest, on_done: RequestDone) -> None:
        with self._lock:
            name = (request.topic, request.ordering_key)
            problem = self._rule_broken(request, name)
            if problem is not None:
                self.refused.append((request, problem))
                error = PublishError(f"InvalidArgument: {problem}", retryable=False, recovery="a connector bug")
            else:
                error = None
                self.requests.append(request)
                self._sent_per_key[name] += 1
                if request.ordering_key:
                    self._in_flight_keys.add(name)
                self.in_flight += 1
                number = self._sent_per_key[name]
                self._clock.call_later(self._latency(), lambda: self._answer(request, on_done, number))
        if error is not None:
            on_done(error)

    def close(self) -> None:
        """Nothing to release."""

    def _rule_broken(self, request: PublishRequest, name: tuple[str, str]) -> str | None:
        if not request.messages:
            return "a request needs at least one message"
        if any(m.ordering_key != request.ordering_key or m.topic != request.topic for m in request.messages):
            return f"messages of one request carry different ordering keys or topics (request key {name[1]!r})"
        if request.ordering_key and name in self._in_flight_keys:
            return f"a second request for ordering key {name[1]!r} while one is in flight"
        return None

    def _latency(self) -> float:
        low, high = self.faults.latency
        if self._rng.random() < self.faults.hang_rate:
            return self.faults.hang_seconds
        return self._rng.uniform(low, high)

    def _answer(self, request: PublishRequest, on_done: RequestDone, number: int) -> None:
        with self._lock:
            self._in_flight_keys.discard((request.topic, request.ordering_key))
            self.in_flight -= 1
            if self.dead:
                if self._rng.random() < 0.5:
                    self.delivered.extend(request.messages)
                return
            error = self._fate(request, number)
        on_done(error)

    def _fate(self, request: PublishRequest, number: int) -> PublishError | None:
        if (request.ordering_key, number) in self._fail:
            return PublishError(f"injected failure of request {number} of {request.ordering_key}", retryable=True)
        if self.gate is not None and not all(self.gate(m) for m in request.messages):
            return PublishError("deadline exceeded (stalled)", retryable=True)
        if self.fail_next > 0:
            self.fail_next -= 1
            return PublishError("injected failure", retryable=True)
        draw = self._rng.random()
        faults = self.faults
        if draw < faults.fatal_rate:
            return PublishError("permission denied", retryable=False, recovery="grant roles/pubsub.publisher")
        if draw < faults.fatal_rate + faults.fail_rate:
            return PublishError("unavailable", retryable=True)
        self.delivered.extend(request.messages)
        if draw < faults.fatal_rate + faults.fail_rate + faults.lost_ack_rate:
            return PublishError("ack lost after delivery", retryable=True)
        return None
