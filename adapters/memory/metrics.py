"""Metrics that only count (tests, replay) — the Prometheus adapter implements the same port."""

from __future__ import annotations

from collections import Counter
from datetime import datetime

from attrs import define, field


@define
class RecordingMetrics:
    read: Counter[tuple[str, str]] = field(factory=Counter)
    published: Counter[tuple[str, str]] = field(factory=Counter)
    rejected: Counter[tuple[str, str]] = field(factory=Counter)
    dead_letters: Counter[tuple[str, str]] = field(factory=Counter)
    skipped: Counter[str] = field(factory=Counter)
    retries: Counter[str] = field(factory=Counter)
    latencies: list[float] = field(factory=list)
    lags: list[float] = field(factory=list)
    max_in_flight: int = 0
    last_checkpoint: datetime | None = None
    owned: bool = False
    leases: dict[str, bool] = field(factory=dict)
    lease_history: list[tuple[str, bool, int | None]] = field(factory=list)
    oplog_windows: list[float] = field(factory=list)
    resume_margins: list[float] = field(factory=list)

    def event_read(self, *, collection: str, operation: str, count: int = 1) -> None:
        self.read[(collection, operation)] += count

    def events_published(self, *, collection: str, operation: str, count: int, latency_seconds: float) -> None:
        self.published[(collection, operation)] += count
        self.latencies.append(latency_seconds)

    def event_rejected(self, *, collection: str, operation: str, reason: str) -> None:
        self.rejected[(collection, str(reason))] += 1

    def event_skipped(self, *, reason: str) -> None:
        self.skipped[str(reason)] += 1

    def lag(self, *, seconds: float) -> None:
        self.lags.append(seconds)

    def checkpoint_saved(self, *, at: datetime) -> None:
        self.last_checkpoint = at

    def in_flight(self, *, messages: int) -> None:
        self.max_in_flight = max(self.max_in_flight, messages)

    def retried(self, *, kind: str) -> None:
        self.retries[kind] += 1

    def dead_lettered(self, *, collection: str, reason: str) -> None:
        self.dead_letters[(collection, str(reason))] += 1

    def lease_owned(self, *, unit: str, owned: bool, generation: int | None = None) -> None:
        self.leases[unit] = owned
        self.lease_history.append((unit, owned, generation))
        self.owned = any(self.leases.values())

    def oplog_window(self, *, seconds: float) -> None:
        self.oplog_windows.append(seconds)

    def resume_margin(self, *, seconds: float) -> None:
        self.resume_margins.append(seconds)
