"""The processing step decides publish / reject / skip exactly as CONTRACT §5–§7 say."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from adapters.schema_files import load_registry
from application.outcomes import Publish, Reject, RejectReason, Skip, SkipReason
from application.processing import ProcessingSettings, ProcessingStep, StreamRoute
from domain.bson_json import bson_to_json
from domain.change_event import ChangeEvent, parse_change_event
from domain.envelope import MAX_MESSAGE_BYTES, OrderingStrategy, event_id
from domain.migration import SchemaMigrator
from tests.builders import DROP, change, inventory_doc

ROUTES = {
    "inventory": StreamRoute(collection="inventory", topic="inventory-changes", document_type="inventory"),
    "transactions": StreamRoute(collection="transactions", topic="transaction-changes", document_type="transaction"),
    "notes": StreamRoute(collection="notes", topic="notes-changes"),
}


def make_step(**overrides: Any) -> ProcessingStep:
    registry, migrator = load_registry()
    settings = ProcessingSettings(routes=ROUTES, database="warehouse", **overrides)
    return ProcessingStep(settings=settings, registry=registry, migrator=migrator)


def event(raw: dict) -> ChangeEvent:
    mapped = bson_to_json(raw)
    assert isinstance(mapped, dict)
    return parse_change_event(mapped)


def published(outcome: object) -> dict:
    assert isinstance(outcome, Publish), outcome
    (message,) = outcome.messages
    return orjson.loads(message.data)


def test_v1_document_is_migrated_to_v2_with_full_envelope() -> None:
    raw = change("insert", document=inventory_doc(correlation_id="req-42"))
    outcome = make_step().process(event(raw))
    data = published(outcome)
    assert isinstance(outcome, Publish)
    message = outcome.messages[0]
    assert data["document"]["reserved_quantity"] == 0
    assert data["document"]["_schema_version"] == "v2"
    assert data["schema"] == {"type": "inventory", "version": "v2", "source_version": "v1"}
    assert data["event_id"] == event_id(raw["_id"]["_data"]) == message.event_id
    assert data["resume_token"] == raw["_id"]["_data"]
    assert data["correlation_id"] == "req-42"
    assert data["cluster_time"].endswith("Z") and len(data["cluster_time"]) == 20
    assert set(data) == {
        "event_id", "operation", "database", "collection", "document_key", "document",
        "update_description", "schema", "cluster_time", "wall_time", "resume_token", "correlation_id",
    }  # fmt: skip
    assert message.topic == "inventory-changes"
    assert message.ordering_key.startswith("inventory:")
    assert message.attributes == {
        "event_id": data["event_id"],
        "operation": "insert",
        "database": "warehouse",
        "collection": "inventory",
        "document_type": "inventory",
        "schema_version": "v2",
        "source_schema_version": "v1",
        "correlation_id": "req-42",
        "content_type": "application/json",
    }


def test_unversioned_document_gets_detected_version() -> None:
    doc = inventory_doc(_schema_version=DROP, reserved_quantity=3)
    data = published(make_step().process(event(change("insert", document=doc))))
    assert data["schema"] == {"type": "inventory", "version": "v2", "source_version": "v2"}
    assert data["document"]["_schema_version"] == "v2"


@pytest.mark.parametrize(
    ("doc", "reason", "path"),
    [
        (inventory_doc(quantity=-1), RejectReason.VALIDATION_FAILED, "/quantity"),
        (inventory_doc(last_updated="yesterday"), RejectReason.VALIDATION_FAILED, "/last_updated"),
        (inventory_doc(_schema_version="v9"), RejectReason.UNKNOWN_SCHEMA_VERSION, None),
        (inventory_doc(_schema_version=DROP, quantity="many"), RejectReason.SCHEMA_UNDETECTED, "/quantity"),
    ],
)
def test_rejections_carry_reason_and_paths(doc: dict, reason: RejectReason, path: str | None) -> None:
    outcome = make_step().process(event(change("insert", document=doc)))
    assert isinstance(outcome, Reject)
    assert outcome.reason is reason
    if path is not None:
        assert any(error.startswith(path) or f": {path}" in error for error in outcome.errors), outcome.errors
    assert outcome.dead_letter is None


def test_dead_letter_carries_reason_and_error() -> None:
    outcome = make_step(dead_letter_topic="dlq").process(event(change("insert", document=inventory_doc(quantity=-1))))
    assert isinstance(outcome, Reject) and outcome.dead_letter is not None
    assert outcome.dead_letter.topic == "dlq"
    assert outcome.dead_letter.attributes["reason"] == "validation_failed"
    assert "/quantity" in outcome.dead_letter.attributes["error"]
    assert orjson.loads(outcome.dead_letter.data)["document"]["quantity"] == -1


def test_migration_failures_have_distinct_reasons() -> None:
    registry, _ = load_registry()
    settings = ProcessingSettings(routes=ROUTES)
    raw = event(change("insert", document=inventory_doc()))

    empty = SchemaMigrator()
    outcome = ProcessingStep(settings=settings, registry=registry, migrator=empty).process(raw)
    assert isinstance(outcome, Reject) and outcome.reason is RejectReason.MIGRATION_PATH_MISSING

    raising = SchemaMigrator()
    raising.register_migration("inventory", "v1", "v2", lambda d: 1 / 0)  # type: ignore[arg-type,return-value]
    outcome = ProcessingStep(settings=settings, registry=registry, migrator=raising).process(raw)
    assert isinstance(outcome, Reject) and outcome.reason is RejectReason.MIGRATION_FAILED

    invalid = SchemaMigrator()
    invalid.register_migration("inventory", "v1", "v2", lambda d: {**d, "reserved_quantity": -5})
    outcome = ProcessingStep(settings=settings, registry=registry, migrator=invalid).process(raw)
    assert isinstance(outcome, Reject) and outcome.reason is RejectReason.MIGRATION_RESULT_INVALID


def test_too_large_message_is_rejected_and_dead_letter_has_no_document() -> None:
    big = inventory_doc(notes="x" * 2000)
    outcome = make_step(max_message_bytes=1000, dead_letter_topic="dlq").process(event(change("insert", document=big)))
    assert isinstance(outcome, Reject) and outcome.reason is RejectReason.TOO_LARGE
    assert outcome.dead_letter is not None
    assert orjson.loads(outcome.dead_letter.data)["document"] is None


def test_an_invalid_document_over_the_limit_dead_letters_without_its_content() -> None:
    # Sent whole, Pub/Sub would answer InvalidArgument: fatal, and the worker would crash-loop on it.
    big = inventory_doc(quantity="many", notes="x" * MAX_MESSAGE_BYTES)
    raw = change("update", document=big, fullDocumentBeforeChange=big,
                 updateDescription={"updatedFields": {"notes": big["notes"]}, "removedFields": []})  # fmt: skip
    outcome = make_step(dead_letter_topic="dlq", include_before=True).process(event(raw))
    assert isinstance(outcome, Reject) and outcome.reason is RejectReason.VALIDATION_FAILED
    assert outcome.dead_letter is not None and len(outcome.dead_letter.data) <= MAX_MESSAGE_BYTES
    data = orjson.loads(outcome.dead_letter.data)
    assert data["document"] is None and data["update_description"] is None and "document_before" not in data
    assert data["document_key"] == {"_id": "65f1a2b3c4d5e6f708192a3b"}
    assert outcome.dead_letter.attributes["reason"] == "validation_failed"
    assert "document omitted" in outcome.dead_letter.attributes["error"]


def test_a_small_invalid_document_dead_letters_whole() -> None:
    outcome = make_step(dead_letter_topic="dlq").process(event(change("insert", document=inventory_doc(quantity="x"))))
    assert isinstance(outcome, Reject) and outcome.dead_letter is not None
    assert orjson.loads(outcome.dead_letter.data)["document"]["quantity"] == "x"
    assert "document omitted" not in outcome.dead_letter.attributes["error"]


def test_delete_and_null_lookup_publish_without_document() -> None:
    for raw in (change("delete"), change("update", document=None)):
        data = published(make_step().process(event(raw)))
        assert data["document"] is None and data["schema"] is None


def test_update_description_and_unvalidated_collection() -> None:
    raw = change("update", coll="notes", document={"_id": 1, "anything": True},
                 updateDescription={"updatedFields": {"anything": True}, "removedFields": []})  # fmt: skip
    data = published(make_step().process(event(raw)))
    assert data["update_description"]["updatedFields"] == {"anything": True}
    assert data["schema"] is None and data["document"] == {"_id": 1, "anything": True}


def test_ddl_goes_to_the_collection_topic_and_drop_database_to_all() -> None:
    drop = make_step().process(event(change("drop")))
    assert isinstance(drop, Publish) and [m.topic for m in drop.messages] == ["inventory-changes"]
    assert orjson.loads(drop.messages[0].data)["document"] is None
    everything = make_step().process(event(change("dropDatabase", coll=None)))
    assert isinstance(everything, Publish)
    assert sorted(m.topic for m in everything.messages) == sorted(r.topic for r in ROUTES.values())


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (change("invalidate", coll=None), SkipReason.INVALIDATE),
        (change("endOfTransaction", coll=None), SkipReason.END_OF_TRANSACTION),
        (change("brandNewOp"), SkipReason.UNKNOWN_OPERATION_TYPE),
        (change("insert", coll="audit", document={"_id": 1}), SkipReason.COLLECTION_NOT_CONFIGURED),
        (change("insert", db="other", document={"_id": 1}), SkipReason.DATABASE_NOT_CONFIGURED),
    ],
)
def test_skips(raw: dict, reason: SkipReason) -> None:
    outcome = make_step().process(event(raw))
    assert isinstance(outcome, Skip) and outcome.reason is reason


def test_before_image_only_when_configured() -> None:
    raw = change("delete", fullDocumentBeforeChange={"_id": 1, "quantity": -3})
    assert "document_before" not in published(make_step().process(event(raw)))
    data = published(make_step(include_before=True).process(event(raw)))
    assert data["document_before"] == {"_id": 1, "quantity": -3}


def test_ordering_strategies() -> None:
    raw = event(change("insert", document=inventory_doc()))
    none = make_step(ordering=OrderingStrategy.NONE).process(raw)
    document = make_step(ordering=OrderingStrategy.DOCUMENT).process(raw)
    assert isinstance(none, Publish) and none.messages[0].ordering_key == ""
    assert isinstance(document, Publish)
    assert document.messages[0].ordering_key == 'inventory:{"_id":"65f1a2b3c4d5e6f708192a3b"}'
