"""The one composition root: configuration in, wired services out.

Configuration reaches services only through ``Container.config`` (strict: a missing key is an
error, not a silent None), filled from the already validated ``ConnectorConfig``. Adapters are
chosen here by ``source``, ``pubsub.backend`` and ``token_store.backend``; nothing else in the
code base knows which implementation of a port it talks to.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import attrs
import cattrs
from dependency_injector import containers, providers

from adapters.jsonl_source import JsonlSource
from adapters.memory.publisher import InMemoryPublisher
from adapters.memory.token_store import InMemoryTokenStore
from adapters.prometheus_metrics import PrometheusMetrics
from adapters.schema_files import load_registry
from adapters.simulated_source import SimulatedSource
from adapters.simulator import WorkloadSpec
from adapters.store_thread import StoreThread
from adapters.system_clock import SystemClock
from application.backoff import RetryPolicy
from application.balancer import Balancer, BalancerSettings, StartUnit
from application.health import HealthState
from application.owned_events import OwnedEventsSource
from application.pipeline import Pipeline, PipelineSettings, RunResult
from application.ports import ChangeSource, Clock, Lease, Metrics, Publisher, StoreCalls, TokenStore
from application.processing import ProcessingSettings, ProcessingStep, StreamRoute
from application.unit_thread import UnitThread
from application.worker import StreamWorker, WorkerSettings
from domain.change_event import ClusterTime
from domain.envelope import OrderingStrategy
from domain.migration import SchemaMigrator
from domain.partitions import StreamUnit, plan_units
from domain.redaction import redact
from domain.schema_registry import SchemaRegistry
from entrypoints.config import ConfigError, ConnectorConfig

SourceFactory = Callable[[StreamUnit], ChangeSource]
"""The change source of one stream unit (``streams[].partitions``; without them, the one unit)."""


def _registry_and_migrator(directory: str | None) -> tuple[SchemaRegistry, SchemaMigrator]:
    return load_registry(extra_directory=Path(directory) if directory else None)


def _processing_settings(
    *,
    database: str,
    streams: list[dict[str, Any]],
    ordering: str,
    ordering_buckets: int,
    before_change: str,
    dead_letter_topic: str | None,
    on_invalid: str,
) -> ProcessingSettings:
    routes = {
        s["collection"]: StreamRoute(collection=s["collection"], topic=s["topic"], document_type=s.get("document_type"))
        for s in streams
    }
    return ProcessingSettings(
        routes=routes,
        database=database,
        ordering=OrderingStrategy(ordering),
        ordering_buckets=ordering_buckets,
        include_before=before_change != "off",
        dead_letter_topic=dead_letter_topic if on_invalid != "fail" else None,
    )


def _check_document_types(registry: SchemaRegistry, streams: list[dict[str, Any]]) -> SchemaRegistry:
    known = set(registry.types())
    for stream in streams:
        document_type = stream.get("document_type")
        if document_type is not None and document_type not in known:
            raise ConfigError(
                f"streams: collection {stream['collection']} names document_type {document_type!r}, which has no "
                f"schema (known: {', '.join(sorted(known))}); add {document_type}/v1.json to schemas.directory "
                "or fix the name"
            )
    return registry


def _retry_policy(retry: dict[str, Any]) -> RetryPolicy:
    return RetryPolicy(
        initial_backoff_s=retry["initial_backoff_ms"] / 1000,
        max_backoff_s=retry["max_backoff_ms"] / 1000,
        multiplier=retry["multiplier"],
        max_elapsed_s=retry["max_elapsed_s"],
    )


def _units(database: str, streams: list[dict[str, Any]]) -> tuple[StreamUnit, ...]:
    return plan_units(database=database, partitions=[(s["collection"], s.get("partitions", 1)) for s in streams])


def mongo_client(uri: str, *, server_selection_ms: int | None = None, **options: Any) -> Any:
    """A MongoClient; a URI that pymongo cannot parse is a configuration error (exit 2) naming the key.

    ``server_selection_ms`` is the deadline unless the URI sets its own (a keyword would override it)."""
    from pymongo import MongoClient
    from pymongo.errors import ConfigurationError as MongoConfigurationError

    if server_selection_ms is not None and "serverselectiontimeoutms=" not in uri.lower():
        options["serverSelectionTimeoutMS"] = server_selection_ms
    try:
        return MongoClient(uri, **options)
    # InvalidURI is a ConfigurationError; pymongo reports a port that is not a number as a ValueError
    except (MongoConfigurationError, ValueError) as error:
        raise ConfigError(f"mongodb.uri: {redact(str(error))}; fix mongodb.uri") from None


def _mongo_source(mongodb: dict[str, Any], batch_latency_ms: int, metrics: Metrics) -> SourceFactory:
    """Every remote call has a deadline: server selection (MongoDB down: a warning within seconds, a stop
    within them too), connecting, and each reply (a getMore waits up to max_await_time_ms by design)."""
    batch_latency_s = batch_latency_ms / 1000
    from adapters.mongo_oplog import OplogGauges
    from adapters.mongo_source import MongoChangeSource

    client: Any = mongo_client(
        mongodb["uri"],
        server_selection_ms=mongodb["server_selection_timeout_ms"],
        appname="mongo-pubsub-connector",
        tz_aware=False,
        connectTimeoutMS=mongodb["server_selection_timeout_ms"],
        socketTimeoutMS=mongodb["max_await_time_ms"] + 30_000,
    )
    sources: list[MongoChangeSource] = []

    def for_unit(unit: StreamUnit) -> ChangeSource:
        source = MongoChangeSource(
            client=client,
            database=mongodb["database"],
            full_document=mongodb["full_document"],
            full_document_before_change=mongodb["full_document_before_change"],
            batch_size=mongodb["batch_size"],
            max_await_time_ms=mongodb["max_await_time_ms"],
            unit=unit,
            batch_latency_s=batch_latency_s,
        )
        if not sources:  # one sampler per deployment, measuring the stream this instance reads
            OplogGauges(client=client, metrics=metrics, position=lambda: sources[-1].position).start()
        sources.append(source)
        return source

    return for_unit


def _filtered(source: Callable[[], ChangeSource]) -> SourceFactory:
    """Sources holding every unit's events: one unit keeps its own (the base unit alone: everything)."""

    def for_unit(unit: StreamUnit) -> ChangeSource:
        if unit.partition is None and not unit.partitioned:
            return source()
        return OwnedEventsSource(source(), unit=unit)

    return for_unit


def _simulated_source(simulated: dict[str, Any], database: str, clock: Clock) -> ChangeSource:
    start = simulated["start_time"]
    if start == "now":
        start_seconds = int(clock.now().timestamp())
    elif start:
        moment = _start_time(start)
        start_seconds = moment.seconds if moment is not None else WorkloadSpec.start_seconds
    else:
        start_seconds = WorkloadSpec().start_seconds
    rate = simulated["rate"]
    spec = WorkloadSpec(
        seed=simulated["seed"],
        count=simulated["count"],
        documents=simulated["documents"],
        database=database,
        start_seconds=start_seconds,
        events_per_second=max(1, int(rate)) if rate > 0 else 50,  # cluster time advances with the pace
    )
    return SimulatedSource(spec, rate=simulated["rate"], wait=clock.wait_until, monotonic=clock.monotonic)


def _pubsub_publisher(pubsub: dict[str, Any]) -> Publisher:
    from adapters.pubsub_publisher import PubSubPublisher

    return PubSubPublisher(project_id=pubsub["project_id"])


def _firestore_store(project_id: str, collection: str, timeout_s: float) -> TokenStore:
    from adapters.firestore_token_store import FirestoreTokenStore

    return FirestoreTokenStore(project_id=project_id, collection=collection, timeout_s=timeout_s)


def _start_time(start_at: str) -> ClusterTime | None:
    if start_at in ("resume", "now"):
        return None
    try:
        moment = datetime.fromisoformat(start_at.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(
            f"mongodb.start_at: {start_at!r} is not resume, now or an RFC 3339 time like 2024-03-20T10:00:00Z"
        ) from None
    if moment.tzinfo is None:
        raise ConfigError(f"mongodb.start_at: {start_at!r} needs a time zone (e.g. a trailing Z)")
    return ClusterTime(seconds=int(moment.timestamp()), increment=0)


def _pipeline_factory(
    *,
    source: SourceFactory,
    units: tuple[StreamUnit, ...],
    step: ProcessingStep,
    publisher: Publisher,
    token_store: TokenStore,
    clock: Clock,
    metrics: Metrics,
    health: HealthState,
    pubsub: dict[str, Any],
    token_config: dict[str, Any],
    on_invalid: str,
    retry: RetryPolicy,
    store_calls: StoreCalls,
    event_log_level: str = "debug",
) -> Any:
    by_id = {unit.stream_id: unit for unit in units}

    def build(generation: int, stream_id: str) -> Pipeline:
        settings = PipelineSettings(
            stream_id=stream_id,
            max_in_flight_messages=pubsub["max_in_flight_messages"],
            checkpoint_interval_s=token_config["checkpoint_interval_ms"] / 1000,
            fail_on_invalid=on_invalid == "fail",
            retry=retry,
            generation=generation,
            batch_max_messages=pubsub["batch_max_messages"],
            event_log_level=event_log_level,
        )
        return Pipeline(
            source=source(by_id[stream_id]),
            step=step,
            publisher=publisher,
            token_store=token_store,
            clock=clock,
            metrics=metrics,
            settings=settings,
            health=health,
            store_calls=store_calls,
        )

    return build


def _finite(source: str, follow: bool, count: int | None) -> bool:
    """Whether the source ends by itself (then ``run`` stops once every unit has reached the end)."""
    return (source == "jsonl" and not follow) or (source == "simulated" and count is not None)


def _start_unit(
    *,
    settings: WorkerSettings,
    token_store: TokenStore,
    clock: Clock,
    lease_clock: Clock,
    metrics: Metrics,
    health: HealthState,
    pipeline_factory: Callable[[int, str], Pipeline],
) -> StartUnit:
    """Serves a unit the balancer took: its own worker, health, pipeline and lease keeper, on a thread."""

    def start(lease: Lease) -> UnitThread:
        worker = StreamWorker(
            settings=attrs.evolve(settings, stream_id=lease.stream_id),
            token_store=token_store,
            clock=clock,
            metrics=metrics,
            health=health.unit(lease.stream_id),
            pipeline_factory=pipeline_factory,
            lease_clock=lease_clock,
        )

        def serve() -> RunResult:
            try:
                return worker.serve(lease)
            finally:
                health.drop_unit(lease.stream_id)

        return UnitThread(name=lease.stream_id, serve=serve, stop=worker.request_stop, clock=clock)

    return start


def _owner() -> str:
    return f"{socket.gethostname()}-{os.getpid()}-{uuid.uuid4().hex[:6]}"


class Container(containers.DeclarativeContainer):
    config = providers.Configuration(strict=True)

    clock = providers.Singleton(SystemClock)
    lease_clock = providers.Singleton(SystemClock)  # lease renewal's own timer thread: never behind a save
    health = providers.Singleton(HealthState)
    metrics = providers.Singleton(PrometheusMetrics, health=health)
    retry = providers.Singleton(_retry_policy, config.retry)

    schemas = providers.Singleton(_registry_and_migrator, config.schemas.directory)
    registry = providers.Singleton(
        _check_document_types, providers.Callable(lambda pair: pair[0], schemas), config.streams
    )
    migrator = providers.Callable(lambda pair: pair[1], schemas)

    processing_settings = providers.Singleton(
        _processing_settings,
        database=config.mongodb.database,
        streams=config.streams,
        ordering=config.pubsub.ordering,
        ordering_buckets=config.pubsub.ordering_buckets,
        before_change=config.mongodb.full_document_before_change,
        dead_letter_topic=config.pubsub.dead_letter_topic,
        on_invalid=config.schemas.on_invalid,
    )
    processing_step = providers.Singleton(
        ProcessingStep, settings=processing_settings, registry=registry, migrator=migrator
    )

    units = providers.Singleton(_units, config.mongodb.database, config.streams)
    source = providers.Selector(  # a ChangeSource per stream unit
        config.source,
        mongodb=providers.Singleton(_mongo_source, config.mongodb, config.pubsub.batch_max_latency_ms, metrics),
        jsonl=providers.Singleton(
            _filtered,
            providers.Factory(
                JsonlSource,
                providers.Callable(Path, config.jsonl.path),
                follow=config.jsonl.follow,
                wait=providers.Callable(lambda clock: clock.wait_until, clock),
            ).provider,
        ),
        simulated=providers.Singleton(
            _filtered,
            providers.Factory(_simulated_source, config.simulated, config.mongodb.database, clock).provider,
        ),
    )
    publisher = providers.Selector(
        config.pubsub.backend,
        pubsub=providers.Singleton(_pubsub_publisher, config.pubsub),
        memory=providers.Singleton(InMemoryPublisher, clock=clock),
    )
    token_store = providers.Selector(
        config.token_store.backend,
        firestore=providers.Singleton(
            _firestore_store,
            config.token_store.project_id,
            config.token_store.collection,
            config.token_store.timeout_s,
        ),
        memory=providers.Singleton(InMemoryTokenStore, clock=clock),
    )

    pipeline_factory = providers.Singleton(
        _pipeline_factory,
        source=source,
        units=units,
        step=processing_step,
        publisher=publisher,
        token_store=token_store,
        clock=clock,
        metrics=metrics,
        health=health,
        pubsub=config.pubsub,
        token_config=config.token_store,
        on_invalid=config.schemas.on_invalid,
        retry=retry,
        store_calls=providers.Singleton(StoreThread),
        event_log_level=config.logging.events,
    )
    worker_settings = providers.Singleton(
        WorkerSettings,
        stream_id=config.mongodb.database,
        owner=providers.Callable(_owner),
        lease_ttl_s=config.token_store.lease_seconds,
        start_at=config.mongodb.start_at,
        start_time=providers.Callable(_start_time, config.mongodb.start_at),
        retry=retry,
        units=units,
        pin_now=providers.Callable(lambda source: source == "mongodb", config.source),
    )
    start_unit = providers.Singleton(
        _start_unit,
        settings=worker_settings,
        token_store=token_store,
        clock=clock,
        lease_clock=lease_clock,
        metrics=metrics,
        health=health,
        pipeline_factory=pipeline_factory,
    )
    worker = providers.Singleton(  # the process's units: a fair share of the leases, each unit on its own thread
        Balancer,
        settings=providers.Singleton(
            BalancerSettings,
            instance=providers.Callable(lambda settings: settings.owner, worker_settings),
            units=providers.Callable(lambda units: tuple(unit.stream_id for unit in units), units),
            lease_ttl_s=config.token_store.lease_seconds,
            finite=providers.Callable(_finite, config.source, config.jsonl.follow, config.simulated.count),
        ),
        store=token_store,
        clock=clock,
        start_unit=start_unit,
        health=health,
        metrics=metrics,
    )


def build_container(config: ConnectorConfig) -> Container:
    container = Container()
    raw = cattrs.unstructure(config)
    raw["token_store"]["project_id"] = config.token_project_id
    container.config.from_dict(raw)
    return container
