"""The ports the pipeline needs. Adapters implement them; in-memory fakes implement them for tests.

Each port says what the pipeline relies on, not how an adapter does it: a source yields its natural
batches, a publisher answers every PublishRequest exactly once, a token store refuses to move a
checkpoint backwards,
a clock is the only way the pipeline waits (so tests can run thousands of fault scenarios on a
simulated clock in seconds).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Protocol

from attrs import frozen

from domain.change_event import ChangeEvent, ClusterTime, ResumeToken
from domain.envelope import OutboundMessage

# ---------------------------------------------------------------- change source


@frozen
class StartPosition:
    """Where a stream starts: after a stored token, after an invalidate, at a time, or now."""

    resume_after: ResumeToken | None = None
    start_after: ResumeToken | None = None
    at_time: ClusterTime | None = None

    @property
    def is_now(self) -> bool:
        return self.resume_after is None and self.start_after is None and self.at_time is None


@frozen
class SourceEvent:
    """A whole change event (split fragments already joined)."""

    event: ChangeEvent


@frozen
class Heartbeat:
    """No event, but the stream moved: the server's post-batch resume token. Checkpointing it keeps an
    idle stream's token from ageing out of the oplog."""

    token: ResumeToken
    cluster_time: ClusterTime | None = None


SourceItem = SourceEvent | Heartbeat
SourceBatch = Sequence[SourceItem]
"""Items in stream order as the source has them at hand: a getMore batch, the lines a file has now."""


class SourceError(Exception):
    """A source failure. ``retryable`` ones are retried with backoff; the others stop the worker and
    ``recovery`` says what an operator should do. ``usage``: the deployment is wrong, not the data
    (e.g. a server older than the supported floor), so the command exits as a usage error."""

    def __init__(self, message: str, *, retryable: bool, recovery: str = "", usage: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.recovery = recovery
        self.usage = usage


class ChangeSource(Protocol):
    """A change stream (or a stand-in for one) for one stream id.

    A source whose opening can fail remotely (MongoDB) has ``reports_open = True`` and yields a batch
    as soon as it is open: only then is the stream reported open (readiness). For the others the
    stream is open once :meth:`read` is called."""

    def read(self, start: StartPosition) -> Iterator[SourceBatch]:
        """Yield non-empty batches of items in stream order from ``start``, each as soon as the source
        has it (a batch never waits for more items than are at hand); the iterator ends only for finite
        sources (a JSONL file without follow). Raises :class:`SourceError`."""
        ...

    def close(self) -> None:
        """Interrupt a blocking read from another thread; the iterator then ends."""
        ...


# ---------------------------------------------------------------- publisher


class PublishError(Exception):
    """A publish that failed. ``retryable`` (unavailable, deadline, paused ordering key) are retried;
    the others (topic missing, permission denied) stop the worker with ``recovery`` advice."""

    def __init__(self, message: str, *, retryable: bool, recovery: str = "") -> None:
        super().__init__(message)
        self.retryable = retryable
        self.recovery = recovery


@frozen
class PublishRequest:
    """One Publish RPC: messages of one topic, all with ``ordering_key`` ("" = unordered), in order."""

    topic: str
    ordering_key: str
    messages: tuple[OutboundMessage, ...]


RequestDone = Callable[[PublishError | None], None]


class Publisher(Protocol):
    """Pub/Sub's Publish RPC, one request at a time per ordering key.

    The caller keeps the API's two rules: every message of a request carries the request's ordering
    key (the real service refuses mixed keys), and at most one request per (topic, non-empty key) is
    in flight (two concurrent requests of one key can land out of order). Unordered requests may
    overlap freely."""

    def send(self, request: PublishRequest, on_done: RequestDone) -> None:
        """Start sending; ``on_done`` is called exactly once, from any thread, with ``None`` when every
        message was stored, or the error (the whole request failed). Every send has a deadline: a hung
        server ends in a retryable error, never in silence."""
        ...

    def close(self) -> None:
        """Release the client; requests still in flight are not waited for."""
        ...


# ---------------------------------------------------------------- token store


@frozen
class Checkpoint:
    """A stream's resume position. The whole token is kept (``_typeBits`` included). A position set by
    time (``admin tokens set --at``) has no token, only ``cluster_time``: the stream then starts at it."""

    token: ResumeToken | None
    cluster_time: ClusterTime | None
    updated_at: datetime | None = None
    owner: str | None = None
    generation: int = 0


@frozen
class Lease:
    """The right to publish and checkpoint a stream, until ``expires_at``; ``generation`` fences
    out older owners (a checkpoint carrying a smaller generation is refused)."""

    stream_id: str
    owner: str
    generation: int
    expires_at: datetime


@frozen
class PlanStart:
    """Where a partition plan (``streams[].partitions``) took effect, recorded once when it was first
    applied: a unit of the plan with no checkpoint of its own starts here, never at a position another
    unit reached while filtering its events out. ``cluster_time`` None: the source's own beginning,
    the same for every unit (the top of a JSONL file)."""

    cluster_time: ClusterTime | None
    recorded_at: datetime | None = None


@frozen
class InstanceBeat:
    """A connector process's heartbeat in the lease table: it counts as live until ``expires_at``."""

    instance: str
    expires_at: datetime
    units: int = 0


class StaleCheckpoint(Exception):
    """The save would move the checkpoint backwards, or came from a fenced-out owner."""


class LeaseLost(Exception):
    """Another instance holds the stream's lease now; this one must stop publishing."""


class TokenStoreError(Exception):
    """The store could not be reached; retried with backoff."""


class TokenStore(Protocol):
    """Where resume positions and leases live (Firestore in production)."""

    def load(self, stream_id: str) -> Checkpoint | None:
        """The stored checkpoint, or None for a stream never checkpointed."""
        ...

    def save(self, stream_id: str, checkpoint: Checkpoint, *, generation: int) -> None:
        """Store atomically; raise :class:`StaleCheckpoint` for an older token or a generation older
        than the current lease's, :class:`TokenStoreError` when unreachable."""
        ...

    def acquire_lease(self, stream_id: str, *, owner: str, ttl_seconds: float) -> Lease | None:
        """Take the lease if it is free or expired (bumping the generation); None if someone holds it."""
        ...

    def renew_lease(self, lease: Lease, *, ttl_seconds: float) -> Lease:
        """Extend our lease; raise :class:`LeaseLost` if another owner took it."""
        ...

    def release_lease(self, lease: Lease) -> None:
        """Give the lease up so a standby can take over at once (graceful stop)."""
        ...

    def delete(self, stream_id: str) -> None:
        """Forget a stream's checkpoint (``admin tokens reset``)."""
        ...

    def set_position(self, stream_id: str, checkpoint: Checkpoint) -> None:
        """Overwrite the position, backwards too (``admin tokens set``). Bumps the generation and drops
        the lease, so a running owner is fenced out instead of overwriting it."""
        ...

    def leases(self) -> list[Lease]:
        """Every stream's lease that has an owner (expired ones too: the caller compares the time)."""
        ...

    def heartbeat(self, instance: str, *, ttl_seconds: float, units: int) -> None:
        """Say that ``instance`` lives (holding ``units``) for ``ttl_seconds``: live instances share the units."""
        ...

    def instances(self) -> list[InstanceBeat]:
        """Every instance's last heartbeat (expired ones too)."""
        ...

    def leave(self, instance: str) -> None:
        """Forget ``instance``'s heartbeat (graceful stop), so the others take its share at once."""
        ...

    def list(self) -> list[tuple[str, Checkpoint]]:
        """Every stored stream id with its checkpoint."""
        ...

    def plan_start(self, plan_id: str) -> PlanStart | None:
        """The recorded start of a partition plan, or None if it was never applied."""
        ...

    def record_plan(self, plan_id: str, start: PlanStart) -> PlanStart:
        """Create-if-absent, atomically: the first writer's record wins and is returned to everyone."""
        ...


class StoreCalls(Protocol):
    """Where blocking token-store calls run: off the clock's thread, so a slow store never delays a
    publish retry or a lease renewal scheduled there."""

    def submit(self, call: Callable[[], None]) -> None:
        """Run ``call`` soon (it handles its own errors)."""
        ...


# ---------------------------------------------------------------- clock


class Cancellable(Protocol):
    def cancel(self) -> None:
        """Do not run the scheduled call (no effect if it already ran)."""
        ...


class Clock(Protocol):
    """Time, scheduling and waiting. The pipeline never sleeps or waits any other way."""

    def now(self) -> datetime:
        """Wall-clock time, UTC (for lag and checkpoint timestamps)."""
        ...

    def monotonic(self) -> float:
        """Seconds for intervals and deadlines."""
        ...

    def call_later(self, delay: float, fn: Callable[[], None]) -> Cancellable:
        """Run ``fn`` after ``delay`` seconds (on a scheduler thread, or the simulated timeline)."""
        ...

    def wait_until(self, predicate: Callable[[], bool], timeout: float) -> bool:
        """Block until ``predicate()`` is true (re-checked on :meth:`notify`) or ``timeout`` passes."""
        ...

    def notify(self) -> None:
        """State changed: wake waiters so they re-check their predicates."""
        ...


# ---------------------------------------------------------------- metrics


class Metrics(Protocol):
    """What the pipeline reports; the Prometheus adapter turns it into /metrics."""

    def event_read(self, *, collection: str, operation: str, count: int = 1) -> None: ...
    def events_published(self, *, collection: str, operation: str, count: int, latency_seconds: float) -> None:
        """``count`` events acknowledged by one Publish request, ``latency_seconds`` after the oldest
        of them was handed to the publisher."""
        ...

    def event_rejected(self, *, collection: str, operation: str, reason: str) -> None: ...
    def event_skipped(self, *, reason: str) -> None: ...
    def lag(self, *, seconds: float) -> None: ...
    def checkpoint_saved(self, *, at: datetime) -> None: ...
    def in_flight(self, *, messages: int) -> None: ...
    def retried(self, *, kind: str) -> None: ...
    def dead_lettered(self, *, collection: str, reason: str) -> None: ...
    def lease_owned(self, *, unit: str, owned: bool, generation: int | None = None) -> None: ...
    def oplog_window(self, *, seconds: float) -> None: ...
    def resume_margin(self, *, seconds: float) -> None: ...
