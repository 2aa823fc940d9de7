"""The processing step: one change event in, one outcome out.

``replay``, ``run`` and ``backfill`` all call this, so a document is judged the same way whether it
comes from a file, a live stream or a snapshot. It validates against the declared (or detected)
version, migrates along the shortest path to the newest version, validates the result, and builds
the message; every rejection is logged here, once, as ``event=document_rejected``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import structlog
from attrs import frozen

from application.outcomes import Outcome, Publish, Reject, RejectReason, Skip, SkipReason
from domain.change_event import ABSENT, ChangeEvent, OperationKind
from domain.envelope import (
    MAX_MESSAGE_BYTES,
    OrderingKeys,
    OrderingStrategy,
    OutboundMessage,
    SchemaInfo,
    build_attributes,
    build_envelope,
    correlation_id_of,
    encode,
    event_id,
)
from domain.json_types import JsonObject
from domain.migration import MigrationFailed, MigrationPathMissing, SchemaMigrator
from domain.schema_registry import SchemaRegistry, SchemaViolation

log = structlog.get_logger("connector.processing")

MAX_ATTRIBUTE_CHARS = 1000
"""Pub/Sub attribute values are limited to 1024 bytes; error texts are cut to fit."""


@frozen
class StreamRoute:
    """Where one collection's events go, and which document type (if any) validates them."""

    collection: str
    topic: str
    document_type: str | None = None


@frozen
class ProcessingSettings:
    """Everything the step needs from configuration, already validated."""

    routes: Mapping[str, StreamRoute]
    database: str | None = None
    ordering: OrderingStrategy = OrderingStrategy.BUCKETED
    ordering_buckets: int = 16
    include_before: bool = False
    dead_letter_topic: str | None = None
    max_message_bytes: int = MAX_MESSAGE_BYTES


@frozen
class _Conformance:
    """What one (document type, declared version) resolves to, so documents skip the look-ups."""

    source: str
    target: str
    source_check: Callable[[JsonObject], bool]
    target_check: Callable[[JsonObject], bool]
    schema: SchemaInfo


class DocumentRejected(Exception):
    """Why the schema step refused a document: the reason consumers see and the errors behind it."""

    def __init__(
        self,
        reason: RejectReason,
        errors: tuple[str, ...],
        source_version: str | None,
        violations: tuple[SchemaViolation, ...] = (),
    ) -> None:
        super().__init__(reason.value)
        self.reason, self.errors, self.source_version = reason, errors, source_version
        self.violations = violations


class ProcessingStep:
    """Turns change events into outcomes; holds no per-event state (only look-ups resolved once), so it is
    safe to share."""

    def __init__(
        self, *, settings: ProcessingSettings, registry: SchemaRegistry, migrator: SchemaMigrator, quiet: bool = False
    ) -> None:
        """``quiet``: no DEBUG lines (the library's step: a batch script's stdout is its output)."""
        self._settings = settings
        self._registry = registry
        self._migrator = migrator
        # (document type, version) -> its resolved checks; bounded by the registry's versions. Filled by
        # whichever thread gets there first: a lost race only builds an equal entry twice.
        self._conformances: dict[tuple[str, object], _Conformance] = {}
        self._debug: Callable[..., object] | None = None
        self._debug_resolved = quiet
        self._ordering_keys = {
            route.collection: self._new_ordering_keys(route.collection) for route in settings.routes.values()
        }

    def process(self, event: ChangeEvent) -> Outcome:
        kind = event.kind
        settings = self._settings
        if kind is OperationKind.DATA:  # the hot case first
            if settings.database is not None and event.database != settings.database:
                return Skip(event=event, reason=SkipReason.DATABASE_NOT_CONFIGURED)
            route = settings.routes.get(event.collection or "")
            if route is None:
                return Skip(event=event, reason=SkipReason.COLLECTION_NOT_CONFIGURED)
            return self._process_data(event, route)
        if kind is OperationKind.INVALIDATE:
            return Skip(event=event, reason=SkipReason.INVALIDATE)
        if kind is OperationKind.END_OF_TRANSACTION:
            return self._skip(event, SkipReason.END_OF_TRANSACTION)
        if kind is OperationKind.UNKNOWN:
            return self._skip(event, SkipReason.UNKNOWN_OPERATION_TYPE)
        # DDL: the same database and collection rules, except that dropDatabase goes to every stream
        if settings.database is not None and event.database != settings.database:
            return Skip(event=event, reason=SkipReason.DATABASE_NOT_CONFIGURED)
        if event.operation == "dropDatabase":
            return self._publish_ddl(event, tuple(settings.routes.values()))
        route = settings.routes.get(event.collection or "")
        if route is None:
            return Skip(event=event, reason=SkipReason.COLLECTION_NOT_CONFIGURED)
        return self._publish_ddl(event, (route,))

    def _process_data(self, event: ChangeEvent, route: StreamRoute) -> Outcome:
        full = event.full_document
        document = None if full is ABSENT else full
        schema: SchemaInfo | None = None
        if document is not None and route.document_type is not None:
            try:
                document, schema = self.conform(route.document_type, document)
            except DocumentRejected as rejected:
                return self._reject(event, route, document, rejected)
        eid = event_id(event.token.data)
        correlation = correlation_id_of(document, eid)
        envelope = build_envelope(
            event=event,
            event_id_=eid,
            collection=route.collection,
            document=document,
            schema=schema,
            correlation_id=correlation,
            include_before=self._settings.include_before,
        )
        data = encode(envelope)
        if len(data) > self._settings.max_message_bytes:
            too_large = DocumentRejected(
                RejectReason.TOO_LARGE,
                (f"message is {len(data)} bytes; the limit is {self._settings.max_message_bytes}",),
                None if schema is None else schema.source_version,
            )
            return self._reject(event, route, None, too_large)
        attributes = build_attributes(
            event=event,
            event_id_=eid,
            collection=route.collection,
            document_type=route.document_type,
            schema=schema,
            correlation_id=correlation,
        )
        message = OutboundMessage(
            topic=route.topic,
            data=data,
            ordering_key=self._ordering_key(event, route.collection),
            attributes=attributes,
            event_id=eid,
        )
        return Publish(event=event, messages=(message,))

    def conform(
        self, document_type: str, document: JsonObject, to_version: str | None = None
    ) -> tuple[JsonObject, SchemaInfo]:
        """Validate, migrate (to the newest version by default), validate again; raise ``DocumentRejected``.
        The library calls this too, so a batch script judges a document exactly as the connector does.

        A declared, registered version (nearly every document) takes the resolved ``_Conformance`` of
        its (type, version): compiled checks, target and ``SchemaInfo`` looked up once. Only a failing
        document pays for the full error report.
        """
        declared = document.get("_schema_version", ABSENT)
        conformance = self._conformances.get((document_type, declared)) if type(declared) is str else None
        if conformance is None:
            conformance, document = self._resolve(document_type, declared, document)
        source = conformance.source
        target = conformance.target if to_version is None else to_version
        if not conformance.source_check(document):  # (a detected version passes: detection checked it)
            violations = self._registry.validate(document_type=document_type, version=source, document=document)
            raise DocumentRejected(RejectReason.VALIDATION_FAILED, _texts(violations), source, violations)
        if source != target:
            try:
                plan = self._migrator.plan(document_type=document_type, from_version=source, to_version=target)
                document = plan.apply(document)
            except MigrationPathMissing as error:
                raise DocumentRejected(RejectReason.MIGRATION_PATH_MISSING, (str(error),), source) from None
            except MigrationFailed as error:
                raise DocumentRejected(RejectReason.MIGRATION_FAILED, (str(error),), source) from None
            if not (target == conformance.target and conformance.target_check(document)):
                violations = self._registry.validate(document_type=document_type, version=target, document=document)
                if violations:
                    raise DocumentRejected(
                        RejectReason.MIGRATION_RESULT_INVALID, _texts(violations), source, violations
                    )
            debug = self._debug if self._debug_resolved else self._resolve_debug()
            if debug is not None:
                debug("document_migrated", document_type=document_type, from_version=source, to_version=target)
        if target == conformance.target:
            return document, conformance.schema
        return document, SchemaInfo(document_type=document_type, version=target, source_version=source)

    def _resolve(self, document_type: str, declared: object, document: JsonObject) -> tuple[_Conformance, JsonObject]:
        """The slow path: detect a missing version, refuse an unknown one, validate against the
        declared one, and remember the resolved (type, version) for the next document."""
        registry = self._registry
        if declared is ABSENT:
            detected = registry.detect_version(document_type=document_type, document=document)
            if detected is None:
                errors = _violations(registry, document_type, registry.newest(document_type), document)
                raise DocumentRejected(RejectReason.SCHEMA_UNDETECTED, _texts(errors), None, errors)
            return self._conformance(document_type, detected), {**document, "_schema_version": detected}
        if not isinstance(declared, str) or not registry.has(document_type, declared):
            known = ", ".join(registry.versions(document_type))
            message = f"_schema_version {declared!r} is not a registered {document_type} version ({known})"
            raise DocumentRejected(RejectReason.UNKNOWN_SCHEMA_VERSION, (message,), None)
        return self._conformance(document_type, declared), document

    def _conformance(self, document_type: str, source: str) -> _Conformance:
        key = (document_type, source)
        conformance = self._conformances.get(key)
        if conformance is None:
            registry = self._registry
            target = registry.newest(document_type)
            conformance = self._conformances[key] = _Conformance(
                source=source,
                target=target,
                source_check=registry.checker(document_type=document_type, version=source),
                target_check=registry.checker(document_type=document_type, version=target),
                schema=SchemaInfo(document_type=document_type, version=target, source_version=source),
            )
        return conformance

    def _resolve_debug(self) -> Callable[..., object] | None:
        """The bound logger's ``debug`` when DEBUG lines are written, else None; resolved on first use, as
        the logging set-up caches its loggers on first use. The lazy proxy costs about half a microsecond
        per call, which would otherwise be a good part of a migrated event's cost."""
        bound = log.bind()
        enabled = getattr(bound, "is_enabled_for", None)
        self._debug = bound.debug if enabled is None or enabled(logging.DEBUG) else None
        self._debug_resolved = True
        return self._debug

    def _publish_ddl(self, event: ChangeEvent, routes: tuple[StreamRoute, ...]) -> Outcome:
        eid = event_id(event.token.data)
        data = encode(  # the same body on every topic (dropDatabase fans out to all of them)
            build_envelope(
                event=event,
                event_id_=eid,
                collection=event.collection,
                document=None,
                schema=None,
                correlation_id=eid,
                include_before=self._settings.include_before,
            )
        )
        messages = []
        for route in routes:
            collection = event.collection if event.collection is not None else route.collection
            attributes = build_attributes(
                event=event,
                event_id_=eid,
                collection=event.collection,
                document_type=route.document_type,
                schema=None,
                correlation_id=eid,
            )
            messages.append(
                OutboundMessage(
                    topic=route.topic,
                    data=data,
                    ordering_key=self._ordering_key(event, collection),
                    attributes=attributes,
                    event_id=eid,
                )
            )
        return Publish(event=event, messages=tuple(messages))

    def _ordering_key(self, event: ChangeEvent, collection: str) -> str:
        keys = self._ordering_keys.get(collection)
        if keys is None:  # not a configured stream's collection (a DDL event's own): one-off
            keys = self._new_ordering_keys(collection)
        return keys(event.document_key)

    def _new_ordering_keys(self, collection: str) -> OrderingKeys:
        settings = self._settings
        return OrderingKeys(strategy=settings.ordering, collection=collection, buckets=settings.ordering_buckets)

    def _reject(
        self, event: ChangeEvent, route: StreamRoute, document: JsonObject | None, rejected: DocumentRejected
    ) -> Reject:
        eid = event_id(event.token.data)
        correlation = correlation_id_of(document, eid)
        document_id = event.document_id
        log.warning(
            "document_rejected",
            reason=rejected.reason.value,
            errors=list(rejected.errors),
            document_id=document_id,
            correlation_id=correlation,
            collection=route.collection,
            operation=event.operation,
            document_type=route.document_type,
            schema_version=rejected.source_version,
            warehouse_id=None if document is None else document.get("warehouse_id"),
            event_id=eid,
        )
        dead_letter = None
        topic = self._settings.dead_letter_topic
        if topic is not None:
            dead_letter = self._dead_letter(event, route, document, rejected, topic, eid, correlation)
        return Reject(
            event=event,
            reason=rejected.reason,
            errors=rejected.errors,
            source_version=rejected.source_version,
            dead_letter=dead_letter,
            violations=rejected.violations,
        )

    def _dead_letter(
        self,
        event: ChangeEvent,
        route: StreamRoute,
        document: JsonObject | None,
        rejected: DocumentRejected,
        topic: str,
        eid: str,
        correlation: str,
    ) -> OutboundMessage:
        too_large = rejected.reason is RejectReason.TOO_LARGE
        envelope = build_envelope(
            event=event,
            event_id_=eid,
            collection=route.collection,
            document=None if too_large else document,
            schema=None,
            correlation_id=correlation,
            include_before=self._settings.include_before and not too_large,
        )
        if too_large:
            _strip(envelope)
        data = encode(envelope)
        oversized = len(data) > self._settings.max_message_bytes
        if oversized:  # Pub/Sub refuses it (InvalidArgument, fatal): send it as a too_large one is sent
            _strip(envelope)
            data = encode(envelope)
        attributes = build_attributes(
            event=event,
            event_id_=eid,
            collection=route.collection,
            document_type=route.document_type,
            schema=None,
            correlation_id=correlation,
        )
        if rejected.source_version is not None:
            attributes["source_schema_version"] = rejected.source_version
        attributes["reason"] = rejected.reason.value
        errors = rejected.errors + (("document omitted: over the message size limit",) if oversized else ())
        attributes["error"] = "; ".join(errors)[:MAX_ATTRIBUTE_CHARS]
        return OutboundMessage(
            topic=topic,
            data=data,
            ordering_key=self._ordering_key(event, route.collection),
            attributes=attributes,
            event_id=eid,
        )

    def _skip(self, event: ChangeEvent, reason: SkipReason) -> Skip:
        log.info(
            "event_skipped",
            reason=reason.value,
            operation=event.operation,
            correlation_id=event_id(event.token.data),
            resume_token=event.token.data,
        )
        return Skip(event=event, reason=reason)


def _strip(envelope: JsonObject) -> None:
    """A dead letter without the document's content: what still fits when the whole one would not."""
    envelope["document"] = None
    envelope["update_description"] = None
    envelope.pop("document_before", None)


def _texts(violations: tuple[SchemaViolation, ...]) -> tuple[str, ...]:
    """``<JSON Pointer>: <message>``; ``(root)`` for the document itself (its pointer is "")."""
    return tuple(f"{v.path or '(root)'}: {v.message}" for v in violations)


def _violations(
    registry: SchemaRegistry, document_type: str, version: str, document: JsonObject
) -> tuple[SchemaViolation, ...]:
    """Errors against the newest version (ignoring ``_schema_version``), to explain a detection miss."""
    probe = {**document, "_schema_version": version}
    return registry.validate(document_type=document_type, version=version, document=probe)
