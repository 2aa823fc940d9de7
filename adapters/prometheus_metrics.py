"""The Metrics port as Prometheus series (CONTRACT §8), on a registry of its own (no global state).

Besides the port's series it exports what the shipped alerts and dashboard need (docker/prometheus,
docker/grafana): readiness as a gauge, the lease per stream unit with its generation, and the
process's own RSS and CPU (a private registry gets no process collector unless it asks for one).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector

from application.health import HealthState


class PrometheusMetrics:
    """Counters by collection/operation/reason, publish latency, lag, checkpoint age, in-flight, retries."""

    def __init__(
        self,
        registry: CollectorRegistry | None = None,
        *,
        health: HealthState | None = None,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.registry = registry or CollectorRegistry()
        self._now = now
        r = self.registry
        ProcessCollector(registry=r)  # process_resident_memory_bytes, process_cpu_seconds_total, …
        self._read = Counter(
            "connector_events_read", "Change events read from the stream.", ["collection", "operation"], registry=r
        )
        self._published = Counter(
            "connector_events_published", "Events published to Pub/Sub.", ["collection", "operation"], registry=r
        )
        self._rejected = Counter(
            "connector_events_rejected",
            "Events whose document was rejected (never published to the data topic).",
            ["collection", "operation", "reason"],
            registry=r,
        )
        self._skipped = Counter("connector_events_skipped", "Events skipped by design.", ["reason"], registry=r)
        self._latency = Histogram(
            "connector_publish_latency_seconds",
            "Per Publish request: from handing its oldest message to the publisher to Pub/Sub's acknowledgement.",
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self._lag = Gauge(
            "connector_lag_seconds",
            "Now minus the cluster time of the last published event, or of the last heartbeat when caught up.",
            registry=r,
        )
        self._lag_position: float | None = None  # the cluster time lag is measured from, as Unix time
        self._lag.set_function(self._lag_now)  # computed at scrape time: a stalled stream's lag grows
        self._oplog: dict[str, Gauge] = {}  # registered once sampled: absent, never a misleading 0
        self._checkpoint_time = Gauge(
            "connector_last_checkpoint_timestamp_seconds", "Unix time of the last checkpoint written.", registry=r
        )
        self._checkpoint_age = Gauge(
            "connector_checkpoint_age_seconds", "Seconds since the last checkpoint.", registry=r
        )
        self._checkpoint_age.set_function(self._age)
        self._in_flight = Gauge(
            "connector_in_flight_messages", "Messages handed to Pub/Sub, not yet acknowledged.", registry=r
        )
        self._retries = Counter("connector_retries", "Retries after transient errors.", ["kind"], registry=r)
        self._dead_letters = Counter(
            "connector_dead_letters_published",
            "Rejected events published to the dead-letter topic.",
            ["collection", "reason"],
            registry=r,
        )
        self._lease = Gauge(
            "connector_lease_owned", "1 while this instance holds the unit's lease, else 0.", ["unit"], registry=r
        )
        self._generation = Gauge(
            "connector_lease_generation", "Fencing generation of the lease this instance took.", ["unit"], registry=r
        )
        if health is not None:
            ready = Gauge("connector_ready", "1 while /readiness answers 200, else 0.", registry=r)
            ready.set_function(lambda: 1.0 if health.readiness()[0] else 0.0)
        self._last_checkpoint: float | None = None
        self._children: dict[tuple[str, str, str], Any] = {}  # labels() costs microseconds per call

    def _age(self) -> float:
        return 0.0 if self._last_checkpoint is None else max(0.0, time.time() - self._last_checkpoint)

    def event_read(self, *, collection: str, operation: str, count: int = 1) -> None:
        child = self._children.get(("read", collection, operation))
        if child is None:
            child = self._children[("read", collection, operation)] = self._read.labels(collection, operation)
        child.inc(count)

    def events_published(self, *, collection: str, operation: str, count: int, latency_seconds: float) -> None:
        child = self._children.get(("published", collection, operation))
        if child is None:
            child = self._children[("published", collection, operation)] = self._published.labels(collection, operation)
        child.inc(count)
        self._latency.observe(latency_seconds)

    def event_rejected(self, *, collection: str, operation: str, reason: str) -> None:
        self._rejected.labels(collection, operation, str(reason)).inc()

    def event_skipped(self, *, reason: str) -> None:
        self._skipped.labels(str(reason)).inc()

    def _lag_now(self) -> float:
        return 0.0 if self._lag_position is None else max(0.0, self._now() - self._lag_position)

    def lag(self, *, seconds: float) -> None:
        self._lag_position = self._now() - seconds

    def _oplog_gauge(self, name: str, text: str) -> Gauge:
        gauge = self._oplog.get(name)
        if gauge is None:
            gauge = self._oplog[name] = Gauge(name, text, registry=self.registry)
        return gauge

    def oplog_window(self, *, seconds: float) -> None:
        text = "Newest minus oldest oplog entry (MongoDB source, sampled every minute)."
        self._oplog_gauge("connector_oplog_window_seconds", text).set(seconds)

    def resume_margin(self, *, seconds: float) -> None:
        text = "How long until the stream's read position falls off the oplog (sampled every minute)."
        self._oplog_gauge("connector_resume_margin_seconds", text).set(seconds)

    def checkpoint_saved(self, *, at: datetime) -> None:
        self._last_checkpoint = at.timestamp()
        self._checkpoint_time.set(self._last_checkpoint)

    def in_flight(self, *, messages: int) -> None:
        self._in_flight.set(messages)

    def retried(self, *, kind: str) -> None:
        self._retries.labels(kind).inc()

    def dead_lettered(self, *, collection: str, reason: str) -> None:
        self._dead_letters.labels(collection, str(reason)).inc()

    def lease_owned(self, *, unit: str, owned: bool, generation: int | None = None) -> None:
        self._lease.labels(unit).set(1 if owned else 0)
        if generation is not None:
            self._generation.labels(unit).set(generation)
