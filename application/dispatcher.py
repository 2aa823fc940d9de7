"""The publish-and-settle core shared by ``run`` and ``backfill``: batches in, Publish requests out.

Pub/Sub's Publish RPC takes many messages per request but only one ordering key, and two requests of
one key in flight at once can land out of order. So messages queue per (topic, ordering key); a key
with nothing in flight sends everything queued at once (up to ``max_messages`` and the request size
limit) as one request, and while that request is out, newer messages gather behind it for the next
one. Unordered messages have no such rule: several requests of theirs may be in flight.

At most ``max_requests`` requests are with the publisher at once (its thread pool's size). Keys with
messages to send wait their turn in a first-come queue and a request is cut only when it can go: a
request cut earlier would just wait in the pool's queue while its key gathered more. Batching thus
grows with load (16 keys, 8 threads: 33 -> ~100 messages per request) and adds no latency when idle.

A failed request is retried whole, after the retry policy's backoff, before anything later of its key
goes out; other keys keep flowing. A fatal error (topic missing, permission denied) is reported once.
When a request succeeds its messages are settled together (``on_settled`` once per request).

One lock guards the key queues, the turn queue and the counters; it is never held across
``Publisher.send`` (whose completion may run on the calling thread) or the settle callback. A
completion on the sending thread only updates state: the sending loop picks up what it freed, so a
publisher that answers at once does not recurse once per request.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Sequence
from typing import NamedTuple

from attrs import define, field, frozen

from application.backoff import RetryPolicy
from application.ports import Cancellable, Clock, Metrics, Publisher, PublishError, PublishRequest
from domain.envelope import OutboundMessage

REQUEST_MAX_BYTES = 10_000_000
"""Pub/Sub's limit for one Publish request (data, attributes and keys of every message)."""


class Parcel(NamedTuple):
    """One message on its way, with what settling it needs."""

    message: OutboundMessage
    seq: int  # the event's sequence number in the watermark
    handed_at: float  # clock.monotonic() when it was handed over
    counted: bool  # counts as a published event when acknowledged (not a dead letter, not a fan-out copy)
    dead_letter: bool = False  # a rejected event's message to the dead-letter topic


Settled = Callable[[Sequence[Parcel], float], None]
"""Called once per successful request with its parcels and the clock's monotonic time."""


@frozen
class BatchLimits:
    max_messages: int = 1000
    max_bytes: int = REQUEST_MAX_BYTES
    max_requests: int = 8  # with the publisher at once: its pool's size (adapters.pubsub_publisher)


@define
class _Request:
    key: tuple[str, str]
    parcels: list[Parcel]
    attempt: int = 0
    first_failure: float | None = None


@define
class _Key:
    queue: deque[Parcel] = field(factory=deque)
    busy: bool = False  # ordered: a request of this key is in flight or waiting for its retry
    waiting: bool = False  # in the turn queue


def message_size(message: OutboundMessage) -> int:
    """Bytes the message adds to a request (data, key, attributes, a little framing)."""
    attributes = message.attributes
    return (
        len(message.data)
        + len(message.ordering_key)
        + sum(map(len, attributes))
        + sum(map(len, attributes.values()))
        + 4 * len(attributes)
        + 16
    )


class Dispatcher:
    """Sends parcels through a :class:`Publisher` in per-key order; settles each request at once."""

    def __init__(
        self,
        *,
        publisher: Publisher,
        clock: Clock,
        policy: RetryPolicy,
        metrics: Metrics,
        on_settled: Settled,
        on_fatal: Callable[[PublishError], None],
        limits: BatchLimits | None = None,
    ) -> None:
        self._publisher = publisher
        self._clock = clock
        self._policy = policy
        self._metrics = metrics
        self._on_settled = on_settled
        self._on_fatal = on_fatal
        self._limits = limits or BatchLimits()
        self._lock = threading.Lock()
        self._keys: dict[tuple[str, str], _Key] = {}
        self._turns: deque[tuple[str, str]] = deque()  # keys with messages that may go, first come first
        self._sending = 0  # requests with the publisher
        self._pumping = threading.local()  # this thread is in _pump: completions leave the sending to it
        self._timers: dict[int, Cancellable] = {}
        self._in_flight = 0
        self._closed = False
        self.last_ack_at = clock.monotonic()

    @property
    def in_flight(self) -> int:
        """Messages handed over and not yet acknowledged (queued, sent, or waiting for a retry)."""
        return self._in_flight

    def submit(self, parcels: Sequence[Parcel]) -> None:
        """Queue ``parcels`` (in source order) and send what their keys and the pool allow now."""
        if not parcels:
            return
        with self._lock:
            self._in_flight += len(parcels)
            in_flight = self._in_flight
            keys = self._keys
            touched: dict[tuple[str, str], _Key] = {}
            for parcel in parcels:
                message = parcel.message
                name = (message.topic, message.ordering_key)
                state = touched.get(name)
                if state is None:
                    state = keys.get(name)
                    if state is None:
                        state = keys[name] = _Key()
                    touched[name] = state
                state.queue.append(parcel)
            for name, state in touched.items():
                if not state.busy and not state.waiting:
                    state.waiting = True
                    self._turns.append(name)
        self._metrics.in_flight(messages=in_flight)
        self._pump()

    def close(self) -> None:
        """Cancel scheduled retries (shutdown); parcels still pending stay unsettled."""
        with self._lock:
            self._closed = True
            timers, self._timers = list(self._timers.values()), {}
        for timer in timers:
            timer.cancel()

    def _take(self, name: tuple[str, str], state: _Key) -> _Request:
        """The next request of a key from its queue's head (lock held)."""
        limits = self._limits
        queue = state.queue
        parcels = [queue.popleft()]
        size = message_size(parcels[0].message)
        while queue and len(parcels) < limits.max_messages:
            size += message_size(queue[0].message)
            if size > limits.max_bytes:
                break
            parcels.append(queue.popleft())
        return _Request(name, parcels)

    def _pump(self) -> None:
        """Send requests while the publisher has room and keys wait their turn."""
        if getattr(self._pumping, "active", False):
            return  # a completion inside our own send: the loop below picks up what it freed
        self._pumping.active = True
        try:
            while requests := self._next_requests():
                for request in requests:
                    self._send(request)
        finally:
            self._pumping.active = False

    def _next_requests(self) -> list[_Request]:
        """Cut one request per waiting key, in turn, while fewer than ``max_requests`` are out."""
        requests: list[_Request] = []
        with self._lock:
            if self._closed:
                return requests
            turns, keys, room = self._turns, self._keys, self._limits.max_requests - self._sending
            while turns and len(requests) < room:
                name = turns.popleft()
                state = keys[name]
                requests.append(self._take(name, state))
                if name[1]:
                    state.busy, state.waiting = True, False
                elif not state.queue:
                    state.waiting = False
                else:  # unordered: the rest goes in a later turn, maybe at the same time
                    turns.append(name)
            self._sending += len(requests)
        return requests

    def _send(self, request: _Request) -> None:
        topic, key = request.key
        messages = tuple(parcel.message for parcel in request.parcels)
        self._publisher.send(PublishRequest(topic, key, messages), lambda error: self._completed(request, error))

    def _completed(self, request: _Request, error: PublishError | None) -> None:
        if error is not None:
            with self._lock:
                self._sending -= 1
            self._failed(request, error)
            self._pump()
            return
        now = self._clock.monotonic()
        self._on_settled(request.parcels, now)
        with self._lock:
            self._sending -= 1
            self.last_ack_at = now
            self._in_flight -= len(request.parcels)
            in_flight = self._in_flight
            name = request.key
            state = self._keys.get(name)
            if state is not None:
                if name[1]:
                    state.busy = False
                if state.queue:
                    if not state.waiting:
                        state.waiting = True
                        self._turns.append(name)
                elif not state.busy and not state.waiting:
                    del self._keys[name]  # idle: one entry per live key, not per key ever seen
        self._metrics.in_flight(messages=in_flight)
        self._clock.notify()
        self._pump()

    def _failed(self, request: _Request, error: PublishError) -> None:
        now = self._clock.monotonic()
        with self._lock:
            if self._closed:
                return
        self._metrics.retried(kind="publish")
        if not error.retryable:
            self._on_fatal(error)
            return
        request.attempt += 1
        if request.first_failure is None:
            request.first_failure = now
        if self._policy.gave_up(request.first_failure, now):
            self._on_fatal(_gave_up(error, self._policy))
            return
        self._schedule(self._policy.delay(request.attempt), request)

    def _schedule(self, delay: float, request: _Request) -> None:
        holder: list[Cancellable] = []

        def retry() -> None:  # before anything later of its key (still busy); not held back by max_requests
            with self._lock:
                if holder:
                    self._timers.pop(id(holder[0]), None)
                if self._closed:
                    return
                self._sending += 1
            self._send(request)

        with self._lock:
            if self._closed:
                return
            timer = self._clock.call_later(delay, retry)
            holder.append(timer)
            self._timers[id(timer)] = timer


def _gave_up(error: PublishError, policy: RetryPolicy) -> PublishError:
    return PublishError(
        f"publishing failed for {policy.max_elapsed_s:g} s (retry.max_elapsed_s): {error}",
        retryable=False,
        recovery="check Pub/Sub availability and permissions, or set retry.max_elapsed_s: 0 to retry forever",
    )
