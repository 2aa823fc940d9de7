"""A Pub/Sub stand-in that behaves like the real client where it matters, and records everything.

Per ordering key, messages are sent one after another and acknowledged in order; a failure fails
the rest of the key's queue and pauses the key until ``resume`` (the client's semantics). Across
keys and for unordered messages, acks come back in any order. Faults are drawn from a seeded RNG:
failures before delivery, lost acks (delivered, but reported failed: a duplicate after retry), and
hangs (very late acks). ``delivered`` is what a subscriber would receive, in order.
"""

from __future__ import annotations

import random
import threading
from collections import deque
from collections.abc import Callable

from attrs import define, field

from application.ports import Clock, PublishCallback, PublishError
from domain.envelope import OutboundMessage


@define
class Faults:
    fail_rate: float = 0.0
    lost_ack_rate: float = 0.0
    hang_rate: float = 0.0
    hang_seconds: float = 20.0
    latency: tuple[float, float] = (0.001, 0.02)
    fatal_rate: float = 0.0


@define
class _Key:
    queue: deque[tuple[OutboundMessage, PublishCallback]] = field(factory=deque)
    busy: bool = False
    paused: bool = False


class InMemoryPublisher:
    """Implements the Publisher port on a :class:`Clock` (use ``SimulatedClock`` for determinism)."""

    def __init__(self, *, clock: Clock, faults: Faults | None = None, seed: int = 0) -> None:
        self._clock = clock
        self.faults = faults or Faults()
        self._rng = random.Random(seed)
        self._lock = threading.RLock()
        self._keys: dict[tuple[str, str], _Key] = {}
        self.delivered: list[OutboundMessage] = []
        self.attempts = 0
        self.pending = 0
        self.resumed: list[tuple[str, str]] = []
        self.fail_next = 0
        self.gate: Callable[[OutboundMessage], bool] | None = None
        """While set and returning False for a message, its publish fails (a stalled Pub/Sub)."""
        self.dead = False

    def kill(self) -> None:
        """The process died: queued messages are gone; those already in transit may still arrive
        at the server (each with even odds), but nobody hears back."""
        with self._lock:
            self.dead = True
            for key in self._keys.values():
                while len(key.queue) > 1:
                    key.queue.pop()

    def publish(self, message: OutboundMessage, on_done: PublishCallback) -> None:
        with self._lock:
            self.attempts += 1
            if not message.ordering_key:
                self.pending += 1
                self._clock.call_later(self._latency(), lambda: self._finish(message, on_done, None))
                return
            key = self._keys.setdefault((message.topic, message.ordering_key), _Key())
            if key.paused:
                on_done(PublishError(f"ordering key {message.ordering_key} is paused", retryable=True))
                return
            self.pending += 1
            key.queue.append((message, on_done))
            if not key.busy:
                self._send_next((message.topic, message.ordering_key))

    def resume(self, topic: str, ordering_key: str) -> None:
        with self._lock:
            self.resumed.append((topic, ordering_key))
            key = self._keys.get((topic, ordering_key))
            if key is not None:
                key.paused = False

    def flush(self, timeout: float) -> bool:
        return self._clock.wait_until(lambda: self.pending == 0, timeout)

    def close(self) -> None:
        """Nothing to release."""

    def _latency(self) -> float:
        low, high = self.faults.latency
        if self._rng.random() < self.faults.hang_rate:
            return self.faults.hang_seconds
        return self._rng.uniform(low, high)

    def _send_next(self, name: tuple[str, str]) -> None:
        key = self._keys[name]
        if not key.queue:
            key.busy = False
            return
        key.busy = True
        message, on_done = key.queue[0]
        self._clock.call_later(self._latency(), lambda: self._finish_keyed(name, message, on_done))

    def _finish_keyed(self, name: tuple[str, str], message: OutboundMessage, on_done: PublishCallback) -> None:
        with self._lock:
            if self._died_in_transit(message):
                return
            key = self._keys[name]
            key.queue.popleft()
            error = self._fate(message)
            self._complete(message, on_done, error)
            if error is not None:
                key.paused = True
                failed = list(key.queue)
                key.queue.clear()
                key.busy = False
                for _, callback in failed:
                    self.pending -= 1
                    callback(PublishError(f"ordering key {name[1]} paused by an earlier failure", retryable=True))
                return
            self._send_next(name)

    def _died_in_transit(self, message: OutboundMessage) -> bool:
        if self.dead and self._rng.random() < 0.5:
            self.delivered.append(message)
        return self.dead

    def _finish(self, message: OutboundMessage, on_done: PublishCallback, _: object) -> None:
        with self._lock:
            if self._died_in_transit(message):
                return
            self._complete(message, on_done, self._fate(message))

    def _fate(self, message: OutboundMessage) -> PublishError | None:
        if self.gate is not None and not self.gate(message):
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
        if draw < faults.fatal_rate + faults.fail_rate + faults.lost_ack_rate:
            self.delivered.append(message)
            return PublishError("ack lost after delivery", retryable=True)
        self.delivered.append(message)
        return None

    def _complete(self, message: OutboundMessage, on_done: PublishCallback, error: PublishError | None) -> None:
        self.pending -= 1
        on_done(error)
