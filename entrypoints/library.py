"""The connector's domain as a library for batch scripts: the same schemas, migrations, JSON mapping
and message format as the running connector, without running it.

    from entrypoints.library import Toolkit

    kit = Toolkit.load()                                   # built-in schemas (+ a directory of yours)
    document = kit.from_extended_json(line)                # mongoexport line -> the JSON form
    problems = kit.validate("inventory", document)         # () when valid; else (path, message) pairs
    newest = kit.migrate("inventory", document)            # to the newest version (or to_version=...)
    message = kit.message(collection="inventory", topic="inventory-changes", document=newest)

Every result is exactly what the connector would validate, migrate and publish.
"""

from __future__ import annotations

from pathlib import Path

import orjson
from attrs import frozen

from adapters.schema_files import load_registry
from application.backfill import snapshot_event
from application.outcomes import Publish, Reject
from application.processing import ProcessingSettings, ProcessingStep, StreamRoute
from domain.bson_json import bson_to_json
from domain.envelope import OrderingStrategy, OutboundMessage
from domain.event_codec import decode_event_line
from domain.json_types import JsonObject, JsonValue
from domain.migration import MigrationError, SchemaMigrator
from domain.schema_registry import SchemaRegistry, SchemaViolation


class InvalidDocument(ValueError):
    """The document cannot be brought to the requested version; ``problems`` says why."""

    def __init__(self, message: str, problems: tuple[SchemaViolation, ...] = ()) -> None:
        super().__init__(message)
        self.problems = problems


@frozen
class Toolkit:
    registry: SchemaRegistry
    migrator: SchemaMigrator

    @classmethod
    def load(cls, schema_directory: str | Path | None = None) -> Toolkit:
        registry, migrator = load_registry(extra_directory=Path(schema_directory) if schema_directory else None)
        return cls(registry=registry, migrator=migrator)

    @staticmethod
    def to_json(value: object) -> JsonValue:
        """A BSON value (as pymongo returns it) in the JSON form consumers receive."""
        return bson_to_json(value)

    @staticmethod
    def from_extended_json(text: str | bytes) -> JsonObject:
        """One canonical or relaxed Extended JSON document (a mongoexport line) in the JSON form."""
        return decode_event_line(text)

    def detect_version(self, document_type: str, document: JsonObject) -> str | None:
        """The document's ``_schema_version``, or the newest version it satisfies when it has none."""
        declared = document.get("_schema_version")
        if isinstance(declared, str):
            return declared
        return self.registry.detect_version(document_type=document_type, document=document)

    def validate(
        self, document_type: str, document: JsonObject, version: str | None = None
    ) -> tuple[SchemaViolation, ...]:
        """Every violation against ``version`` (default: the document's own or detected version)."""
        target = version or self.detect_version(document_type, document)
        if target is None:
            newest = self.registry.newest(document_type)
            probe = {**document, "_schema_version": newest}
            return self.registry.validate(document_type=document_type, version=newest, document=probe) or (
                SchemaViolation(path="", message=f"no {document_type} version matches"),
            )
        return self.registry.validate(document_type=document_type, version=target, document=document)

    def migrate(self, document_type: str, document: JsonObject, to_version: str | None = None) -> JsonObject:
        """Validate, migrate along the shortest path, validate the result; raise InvalidDocument."""
        source = self.detect_version(document_type, document)
        if source is None:
            raise InvalidDocument(f"no {document_type} version matches", self.validate(document_type, document))
        if not self.registry.has(document_type, source):
            known = ", ".join(self.registry.versions(document_type))
            raise InvalidDocument(f"{document_type} has no version {source!r} (known: {known})")
        document = {**document, "_schema_version": source}
        problems = self.registry.validate(document_type=document_type, version=source, document=document)
        if problems:
            raise InvalidDocument(f"invalid {document_type} {source}", problems)
        target = to_version or self.registry.newest(document_type)
        try:
            result = self.migrator.migrate(
                document_type=document_type, document=document, from_version=source, to_version=target
            )
        except MigrationError as error:
            raise InvalidDocument(str(error)) from error
        problems = self.registry.validate(document_type=document_type, version=target, document=result.document)
        if problems:
            raise InvalidDocument(f"migrated document is invalid against {document_type} {target}", problems)
        return result.document

    def message(
        self,
        *,
        collection: str,
        topic: str,
        document: JsonObject,
        document_type: str | None = None,
        database: str = "warehouse",
        ordering: str = "bucketed",
        ordering_buckets: int = 16,
    ) -> OutboundMessage:
        """The Pub/Sub message the connector would publish for ``document`` as a ``snapshot`` event."""
        route = StreamRoute(collection=collection, topic=topic, document_type=document_type)
        step = ProcessingStep(
            settings=ProcessingSettings(
                routes={collection: route},
                database=database,
                ordering=OrderingStrategy(ordering),
                ordering_buckets=ordering_buckets,
            ),
            registry=self.registry,
            migrator=self.migrator,
        )
        outcome = step.process(snapshot_event(database=database, collection=collection, document=document))
        if isinstance(outcome, Reject):
            raise InvalidDocument(f"{outcome.reason.value}: {'; '.join(outcome.errors)}", outcome.violations)
        assert isinstance(outcome, Publish)
        return outcome.messages[0]

    @staticmethod
    def message_json(message: OutboundMessage) -> JsonObject:
        """A message as replay prints it: ``{"topic", "ordering_key", "attributes", "data"}``."""
        return {"topic": message.topic, "ordering_key": message.ordering_key,
                "attributes": dict(message.attributes), "data": orjson.loads(message.data)}  # fmt: skip
