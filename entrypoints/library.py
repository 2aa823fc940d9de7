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
from attrs import field, frozen

from adapters.schema_files import load_registry
from application.backfill import snapshot_event
from application.outcomes import Publish, Reject, RejectReason
from application.processing import DocumentRejected, ProcessingSettings, ProcessingStep, StreamRoute
from domain.bson_json import bson_to_json
from domain.change_event import ABSENT
from domain.envelope import OrderingStrategy, OutboundMessage
from domain.event_codec import decode_event_line
from domain.json_types import JsonObject, JsonValue
from domain.migration import SchemaMigrator
from domain.schema_registry import SchemaRegistry, SchemaViolation


class InvalidDocument(ValueError):
    """The document cannot be brought to the requested version; ``reason`` is the connector's reject
    reason (``validation_failed``, ``unknown_schema_version``, ...) and ``problems`` the details."""

    def __init__(self, message: str, problems: tuple[SchemaViolation, ...] = (), reason: str = "") -> None:
        super().__init__(message)
        self.problems = problems
        self.reason = reason


@frozen
class Toolkit:
    registry: SchemaRegistry
    migrator: SchemaMigrator
    _step: ProcessingStep = field(init=False, repr=False, eq=False)

    @_step.default
    def _connector_step(self) -> ProcessingStep:
        """The connector's own processing step: the schema rules live there and only there."""
        settings = ProcessingSettings(routes={})
        return ProcessingStep(settings=settings, registry=self.registry, migrator=self.migrator, quiet=True)

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
        """The version the connector reads the document as: its ``_schema_version`` when that is a
        registered version, the newest version it satisfies when it has none, else None."""
        declared = document.get("_schema_version", ABSENT)
        if declared is ABSENT:
            return self.registry.detect_version(document_type=document_type, document=document)
        return declared if isinstance(declared, str) and self.registry.has(document_type, declared) else None

    def validate(
        self, document_type: str, document: JsonObject, version: str | None = None
    ) -> tuple[SchemaViolation, ...]:
        """Every violation against ``version``; without one, what the connector would reject the
        document for (``()`` exactly when it would publish it)."""
        if version is not None:
            return self.registry.validate(document_type=document_type, version=version, document=document)
        try:
            self._step.conform(document_type, document)
        except DocumentRejected as rejected:
            return rejected.violations or tuple(SchemaViolation(path="", message=error) for error in rejected.errors)
        return ()

    def migrate(self, document_type: str, document: JsonObject, to_version: str | None = None) -> JsonObject:
        """Validate, migrate along the shortest path, validate the result; raise InvalidDocument."""
        try:
            migrated, _ = self._step.conform(document_type, document, to_version)
        except DocumentRejected as rejected:
            raise _invalid(document_type, rejected) from None
        return migrated

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
            raise InvalidDocument(
                f"{outcome.reason.value}: {'; '.join(outcome.errors)}", outcome.violations, outcome.reason.value
            )
        assert isinstance(outcome, Publish)
        return outcome.messages[0]

    @staticmethod
    def message_json(message: OutboundMessage) -> JsonObject:
        """A message as replay prints it: ``{"topic", "ordering_key", "attributes", "data"}``."""
        return {"topic": message.topic, "ordering_key": message.ordering_key,
                "attributes": dict(message.attributes), "data": orjson.loads(message.data)}  # fmt: skip


def _invalid(document_type: str, rejected: DocumentRejected) -> InvalidDocument:
    """``<reason>: <summary>``, the schema violations (if any) in ``problems``."""
    if rejected.reason is RejectReason.SCHEMA_UNDETECTED:
        summary = f"no {document_type} version matches"
    elif rejected.violations:
        summary = f"invalid {document_type} {rejected.source_version}"
    else:
        summary = "; ".join(rejected.errors)
    return InvalidDocument(f"{rejected.reason.value}: {summary}", rejected.violations, rejected.reason.value)
