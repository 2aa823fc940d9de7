"""An in-memory token store with the Firestore store's rules, and a record of every save."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

from application.ports import (
    Checkpoint,
    Clock,
    InstanceBeat,
    Lease,
    LeaseLost,
    PlanStart,
    StaleCheckpoint,
    TokenStoreError,
)


class InMemoryTokenStore:
    """Implements the TokenStore port. ``fail_next_saves``/``fail_next_loads`` inject outages."""

    def __init__(self, *, clock: Clock | None = None) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self.checkpoints: dict[str, Checkpoint] = {}
        self.held: dict[str, Lease] = {}  # stream id -> its lease
        self.generations: dict[str, int] = {}
        self.plans: dict[str, PlanStart] = {}
        self.beats: dict[str, InstanceBeat] = {}
        self.saves: list[tuple[str, Checkpoint, float]] = []
        self.refused: list[tuple[str, Checkpoint]] = []
        self.fail_next_saves = 0
        self.fail_next_loads = 0
        self.down = False

    def _now(self) -> datetime:
        from datetime import UTC

        return self._clock.now() if self._clock is not None else datetime.now(UTC)

    def load(self, stream_id: str) -> Checkpoint | None:
        with self._lock:
            if self.down or self.fail_next_loads > 0:
                self.fail_next_loads = max(0, self.fail_next_loads - 1)
                raise TokenStoreError("token store unavailable (injected)")
            return self.checkpoints.get(stream_id)

    def save(self, stream_id: str, checkpoint: Checkpoint, *, generation: int) -> None:
        with self._lock:
            if self.down or self.fail_next_saves > 0:
                self.fail_next_saves = max(0, self.fail_next_saves - 1)
                raise TokenStoreError("token store unavailable (injected)")
            current_generation = self.generations.get(stream_id, 0)
            if generation < current_generation:
                self.refused.append((stream_id, checkpoint))
                raise StaleCheckpoint(
                    f"generation {generation} is older than the lease's {current_generation} (fenced out)"
                )
            stored = self.checkpoints.get(stream_id)
            if stored is not None and _older(checkpoint, stored):
                self.refused.append((stream_id, checkpoint))
                raise StaleCheckpoint(f"token {checkpoint.token.data[:24]}… is older than the stored one")
            self.checkpoints[stream_id] = checkpoint
            at = self._clock.monotonic() if self._clock is not None else 0.0
            self.saves.append((stream_id, checkpoint, at))

    def acquire_lease(self, stream_id: str, *, owner: str, ttl_seconds: float) -> Lease | None:
        with self._lock:
            if self.down:
                raise TokenStoreError("token store unavailable (injected)")
            now = self._now()
            lease = self.held.get(stream_id)
            if lease is not None and lease.owner != owner and lease.expires_at > now:
                return None
            generation = self.generations.get(stream_id, 0) + 1
            self.generations[stream_id] = generation
            new = Lease(stream_id, owner, generation, now + timedelta(seconds=ttl_seconds))
            self.held[stream_id] = new
            return new

    def renew_lease(self, lease: Lease, *, ttl_seconds: float) -> Lease:
        with self._lock:
            if self.down:
                raise TokenStoreError("token store unavailable (injected)")
            current = self.held.get(lease.stream_id)
            if current is None or current.owner != lease.owner or current.generation != lease.generation:
                raise LeaseLost(f"stream {lease.stream_id} is now owned by {current.owner if current else 'nobody'}")
            renewed = Lease(
                lease.stream_id, lease.owner, lease.generation, self._now() + timedelta(seconds=ttl_seconds)
            )
            self.held[lease.stream_id] = renewed
            return renewed

    def release_lease(self, lease: Lease) -> None:
        with self._lock:
            current = self.held.get(lease.stream_id)
            if current is not None and current.owner == lease.owner and current.generation == lease.generation:
                del self.held[lease.stream_id]

    def set_position(self, stream_id: str, checkpoint: Checkpoint) -> None:
        with self._lock:
            self.generations[stream_id] = self.generations.get(stream_id, 0) + 1
            self.held.pop(stream_id, None)
            self.checkpoints[stream_id] = checkpoint

    def delete(self, stream_id: str) -> None:
        with self._lock:
            self.checkpoints.pop(stream_id, None)

    def list(self) -> list[tuple[str, Checkpoint]]:
        with self._lock:
            return sorted(self.checkpoints.items())

    def plan_start(self, plan_id: str) -> PlanStart | None:
        with self._lock:
            if self.down:
                raise TokenStoreError("token store unavailable (injected)")
            return self.plans.get(plan_id)

    def record_plan(self, plan_id: str, start: PlanStart) -> PlanStart:
        with self._lock:
            if self.down:
                raise TokenStoreError("token store unavailable (injected)")
            return self.plans.setdefault(plan_id, PlanStart(start.cluster_time, start.recorded_at or self._now()))

    def leases(self) -> list[Lease]:
        with self._lock:
            self._check_up()
            return sorted(self.held.values(), key=lambda lease: lease.stream_id)

    def heartbeat(self, instance: str, *, ttl_seconds: float, units: int) -> None:
        with self._lock:
            self._check_up()
            self.beats[instance] = InstanceBeat(instance, self._now() + timedelta(seconds=ttl_seconds), units)

    def instances(self) -> list[InstanceBeat]:
        with self._lock:
            self._check_up()
            return sorted(self.beats.values(), key=lambda beat: beat.instance)

    def leave(self, instance: str) -> None:
        with self._lock:
            self._check_up()
            self.beats.pop(instance, None)

    def _check_up(self) -> None:
        if self.down:
            raise TokenStoreError("token store unavailable (injected)")


def _older(new: Checkpoint, stored: Checkpoint) -> bool:
    if new.token is not None and stored.token is not None:
        return new.token.data < stored.token.data
    return False
