"""A harness for pipeline tests on the simulated clock: events, fakes, and the facts to check."""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

import orjson
from attrs import define, field

from adapters.memory.metrics import RecordingMetrics
from adapters.memory.publisher import Faults, InMemoryPublisher
from adapters.memory.scripted_source import ScriptedSource
from adapters.memory.simulated_clock import SimulatedClock
from adapters.memory.token_store import InMemoryTokenStore
from adapters.schema_files import load_registry
from application.pipeline import Pipeline, PipelineSettings, RunResult
from application.ports import StartPosition
from application.processing import ProcessingSettings, ProcessingStep, StreamRoute
from domain.change_event import ChangeEvent, parse_change_event
from domain.envelope import OrderingStrategy, OutboundMessage

STREAM = "warehouse"
ROUTES = {"inventory": StreamRoute(collection="inventory", topic="inventory-changes", document_type="inventory")}
_REGISTRY = load_registry()


def token_data(n: int) -> str:
    return f"82{1_735_689_600 + n // 4:08X}{n % 4 + 1:08X}2B0429{n:012X}04"


def event(n: int, *, doc: int, seq_no: int, operation: str = "update", valid: bool = True) -> ChangeEvent:
    document: dict[str, Any] | None = {
        "_id": f"doc-{doc}",
        "_schema_version": "v2",
        "product_id": f"PRD-{doc}",
        "warehouse_id": "WH-1",
        "quantity": seq_no if valid else -1,
        "reserved_quantity": 0,
        "last_updated": "2025-01-01T00:00:00.000Z",
        "seq_no": seq_no,
    }
    raw: dict[str, Any] = {
        "_id": {"_data": token_data(n)},
        "operationType": operation,
        "clusterTime": {"t": 1_735_689_600 + n // 4, "i": n % 4 + 1},
        "wallTime": "2025-01-01T00:00:00.000Z",
        "ns": {"db": "warehouse", "coll": "inventory"},
        "documentKey": {"_id": f"doc-{doc}"},
    }
    if operation != "delete":
        raw["fullDocument"] = document
    return parse_change_event(raw)


def workload(rng: random.Random, *, count: int, documents: int, invalid_rate: float = 0.0) -> list[ChangeEvent]:
    seq: dict[int, int] = {}
    events = []
    for n in range(count):
        doc = rng.randrange(documents)
        seq[doc] = seq.get(doc, 0) + 1
        events.append(event(n, doc=doc, seq_no=seq[doc], valid=rng.random() >= invalid_rate))
    return events


def step(
    *,
    ordering: OrderingStrategy = OrderingStrategy.BUCKETED,
    buckets: int = 4,
    dead_letter: str | None = None,
) -> ProcessingStep:
    registry, migrator = _REGISTRY
    settings = ProcessingSettings(
        routes=ROUTES,
        database="warehouse",
        ordering=ordering,
        ordering_buckets=buckets,
        dead_letter_topic=dead_letter,
    )
    return ProcessingStep(settings=settings, registry=registry, migrator=migrator)


def data_of(message: OutboundMessage) -> dict[str, Any]:
    return orjson.loads(message.data)  # type: ignore[no-any-return]


@define
class World:
    """One simulated deployment: a clock, a Pub/Sub, a token store; processes come and go."""

    clock: SimulatedClock = field(factory=SimulatedClock)
    store: InMemoryTokenStore = field(default=None)
    delivered: list[OutboundMessage] = field(factory=list)
    metrics: RecordingMetrics = field(factory=RecordingMetrics)

    def __attrs_post_init__(self) -> None:
        if self.store is None:
            self.store = InMemoryTokenStore(clock=self.clock)

    def publisher(self, faults: Faults | None = None, seed: int = 0) -> InMemoryPublisher:
        publisher = InMemoryPublisher(clock=self.clock, faults=faults, seed=seed)
        publisher.delivered = self.delivered  # one Pub/Sub server across process lives
        return publisher

    def start(self) -> StartPosition:
        stored = self.store.checkpoints.get(STREAM)
        return StartPosition(resume_after=stored.token) if stored else StartPosition()

    def pipeline(
        self,
        events: Sequence[ChangeEvent],
        *,
        publisher: InMemoryPublisher | None = None,
        settings: PipelineSettings | None = None,
        processing: ProcessingStep | None = None,
        interval: float = 0.001,
        source: ScriptedSource | None = None,
    ) -> Pipeline:
        return Pipeline(
            source=source or ScriptedSource(events, advance=self.clock.advance, interval=interval),
            step=processing or step(),
            publisher=publisher or self.publisher(),
            token_store=self.store,
            clock=self.clock,
            metrics=self.metrics,
            settings=settings or PipelineSettings(stream_id=STREAM),
        )

    def run(self, events: Sequence[ChangeEvent], **kwargs: Any) -> RunResult:
        return self.pipeline(events, **kwargs).run(self.start())


def first_delivery_order_kept(delivered: Sequence[OutboundMessage]) -> bool:
    """Per document, the first delivery of each event comes in source (seq_no) order."""
    seen: set[str] = set()
    last: dict[str, int] = {}
    for message in delivered:
        if message.event_id in seen:
            continue
        seen.add(message.event_id)
        data = data_of(message)
        document = data["document"]
        if document is None:
            continue
        key = str(data["document_key"])
        if document["seq_no"] <= last.get(key, 0):
            return False
        last[key] = document["seq_no"]
    return True


def saved_tokens_monotone(store: InMemoryTokenStore) -> bool:
    tokens = [checkpoint.token.data for _, checkpoint, _ in store.saves if checkpoint.token is not None]
    return tokens == sorted(tokens) and not store.refused
