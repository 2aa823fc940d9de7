"""The one composition root: configuration in, wired services out.

Configuration reaches services only through ``Container.config`` (strict: a missing key is an
error, not a silent None), filled from the already validated ``ConnectorConfig``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cattrs
from dependency_injector import containers, providers

from adapters.schema_files import load_registry
from application.processing import ProcessingSettings, ProcessingStep, StreamRoute
from domain.envelope import OrderingStrategy
from domain.migration import SchemaMigrator
from domain.schema_registry import SchemaRegistry
from entrypoints.config import ConnectorConfig


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
            raise ValueError(
                f"streams: collection {stream['collection']} names document_type {document_type!r}, "
                f"which has no schema (known: {', '.join(sorted(known))}); add schemas/{document_type}/v1.json "
                "to schemas.directory or fix the name"
            )
    return registry


class Container(containers.DeclarativeContainer):
    config = providers.Configuration(strict=True)

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


def build_container(config: ConnectorConfig) -> Container:
    container = Container()
    container.config.from_dict(cattrs.unstructure(config))
    return container
