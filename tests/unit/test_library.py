"""The domain as a library: what a batch script gets equals what the connector does."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.schema_files import load_registry
from application.outcomes import Publish, Reject
from application.processing import ProcessingSettings, ProcessingStep, StreamRoute
from domain.bson_json import bson_to_json
from domain.change_event import parse_change_event
from entrypoints.library import InvalidDocument, Toolkit
from tests.builders import change

KIT = Toolkit.load()
LINE = (
    '{"_id": {"$oid": "65fab39ee1d2c3b4a5968701"}, "_schema_version": "v1", "product_id": "P", "warehouse_id": "W",'
    ' "quantity": {"$numberLong": "4"}, "last_updated": {"$date": {"$numberLong": "1710928806855"}}}'
)


def test_extended_json_validate_detect_migrate_and_message() -> None:
    document = KIT.from_extended_json(LINE)
    assert document["quantity"] == 4 and document["last_updated"] == "2024-03-20T10:00:06.855Z"
    assert KIT.validate("inventory", document) == ()
    assert KIT.detect_version("inventory", {k: v for k, v in document.items() if k != "_schema_version"}) == "v1"
    migrated = KIT.migrate("inventory", document)
    assert migrated["_schema_version"] == "v2" and migrated["reserved_quantity"] == 0
    message = KIT.message(
        collection="inventory", topic="inventory-changes", document=document, document_type="inventory"
    )
    replay_line = KIT.message_json(message)
    assert replay_line["data"]["operation"] == "snapshot"
    assert replay_line["data"]["document"] == migrated
    assert replay_line["ordering_key"].startswith("inventory:")


@pytest.mark.parametrize(
    ("document", "reason"),
    [
        ({"_schema_version": "v9"}, "unknown_schema_version: _schema_version 'v9' is not a registered"),
        ({"_schema_version": 2}, "unknown_schema_version: _schema_version 2 is not a registered"),
        ({"_schema_version": None}, "unknown_schema_version: _schema_version None is not a registered"),
        ({"_schema_version": "v1", "quantity": -1}, "validation_failed: invalid inventory v1"),
        ({"quantity": "x"}, "schema_undetected: no inventory version matches"),
    ],
)
def test_invalid_documents_raise_with_their_problems(document: dict, reason: str) -> None:
    with pytest.raises(InvalidDocument, match=reason):
        KIT.migrate("inventory", document)
    assert KIT.to_json({"a": 1}) == {"a": 1}


REGISTRY, MIGRATOR = load_registry()
CONNECTOR = ProcessingStep(
    settings=ProcessingSettings(
        routes={
            "inventory": StreamRoute("inventory", "inventory-changes", "inventory"),
            "transactions": StreamRoute("transactions", "transaction-changes", "transaction"),
        },
        database="warehouse",
    ),
    registry=REGISTRY,
    migrator=MIGRATOR,
)
COLLECTION = {"inventory": "inventory", "transaction": "transactions"}
_MISSING = object()
json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-3, 3), st.floats(-2, 2), st.text(max_size=4))


@st.composite
def domain_documents(draw: st.DrawFn) -> tuple[str, dict[str, Any]]:
    """Near-miss inventory and transaction documents: each field right, wrong-typed or missing."""
    document_type = draw(st.sampled_from(["inventory", "transaction"]))
    fields: dict[str, Any] = {
        "_id": "65f1a2b3c4d5e6f708192a3b",
        "_schema_version": st.sampled_from([_MISSING, "v1", "v2", "v9", "", 2, 1.0, None, True, ["v1"]]),
        "product_id": st.one_of(st.just("PRD-1"), json_scalars),
        "warehouse_id": st.one_of(st.just("WH-1"), json_scalars),
        "quantity": st.one_of(st.integers(-2, 5), json_scalars),
        "reserved_quantity": st.one_of(st.just(_MISSING), st.integers(-1, 2), json_scalars),
        "last_updated": st.sampled_from(["2025-01-01T00:00:00Z", "yesterday", _MISSING, 0]),
        "transaction_id": st.sampled_from(["T-1", _MISSING, 7]),
        "transaction_type": st.sampled_from(["sale", "restock", "theft", _MISSING]),
        "timestamp": st.sampled_from(["2025-01-01T00:00:00Z", "soon", _MISSING]),
    }
    document = {}
    for name, value in fields.items():
        drawn = draw(value) if isinstance(value, st.SearchStrategy) else value
        if drawn is not _MISSING and draw(st.integers(0, 9)) > 0:
            document[name] = drawn
    return document_type, document


@settings(max_examples=300, deadline=None)
@given(domain_documents())
def test_the_library_and_the_connector_judge_every_document_alike(case: tuple[str, dict[str, Any]]) -> None:
    document_type, document = case
    raw = change("insert", coll=COLLECTION[document_type], document=document)
    outcome = CONNECTOR.process(parse_change_event(bson_to_json(raw)))  # type: ignore[arg-type]
    problems = KIT.validate(document_type, document)
    if isinstance(outcome, Publish):
        published = orjson.loads(outcome.messages[0].data)
        assert KIT.migrate(document_type, document) == published["document"]
        assert KIT.detect_version(document_type, document) == published["schema"]["source_version"]
        assert problems == ()
    else:
        assert isinstance(outcome, Reject)
        with pytest.raises(InvalidDocument) as raised:
            KIT.migrate(document_type, document)
        assert raised.value.reason == outcome.reason.value
        assert raised.value.problems == outcome.violations
        assert problems != ()
