"""Fuzzing the processing step: arbitrary BSON documents inside arbitrary change events never raise,
and every event ends as published, rejected or skipped. Plus the bad-input shapes that have bitten
other connectors: deep nesting, ``$``/``.`` keys, giant documents, odd types where strings belong."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from bson import Int64, ObjectId, Timestamp, json_util
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters.schema_files import load_registry
from application.event_flow import EventInputError, whole_events
from application.outcomes import Publish, Reject, RejectReason, Skip
from application.processing import ProcessingSettings, ProcessingStep, StreamRoute
from domain.bson_json import bson_to_json
from domain.change_event import MalformedEventError, parse_change_event
from domain.event_codec import decode_event_line
from tests.strategies import bson_documents, scalars

REGISTRY, MIGRATOR = load_registry()
ROUTES = {
    "inventory": StreamRoute("inventory", "inventory-changes", "inventory"),
    "transactions": StreamRoute("transactions", "transaction-changes", "transaction"),
    "notes": StreamRoute("notes", "notes-changes"),
}
STEP = ProcessingStep(
    settings=ProcessingSettings(routes=ROUTES, database="warehouse", include_before=True, dead_letter_topic="dlq"),
    registry=REGISTRY,
    migrator=MIGRATOR,
)
OPERATIONS = ["insert", "update", "replace", "delete", "drop", "rename", "dropDatabase", "invalidate",
              "endOfTransaction", "createIndexes", "somethingNew"]  # fmt: skip


@st.composite
def change_events(draw: st.DrawFn) -> dict[str, Any]:
    operation = draw(st.sampled_from(OPERATIONS))
    document = draw(bson_documents())
    if draw(st.booleans()):  # sometimes look like a domain document
        document.update(
            _schema_version=draw(st.sampled_from(["v1", "v2", "v9", 2, None])),
            product_id=draw(st.one_of(st.text(max_size=5), scalars)),
            warehouse_id="WH-1",
            quantity=draw(st.one_of(st.integers(-3, 3), scalars)),
            last_updated=draw(st.sampled_from(["2024-03-20T10:00:00Z", "yesterday", None])),
        )
    event: dict[str, Any] = {
        "_id": {"_data": draw(st.text(alphabet="0123456789ABCDEF", min_size=2, max_size=40))},
        "operationType": operation,
        "clusterTime": Timestamp(draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1))),
        "ns": {
            "db": draw(st.sampled_from(["warehouse", "other"])),
            "coll": draw(st.sampled_from([*ROUTES, "x"])),
        },
        "documentKey": {"_id": draw(st.one_of(st.builds(ObjectId), scalars))},
    }
    if draw(st.booleans()):
        event["fullDocument"] = draw(st.one_of(st.none(), st.just(document)))
    if draw(st.booleans()):
        event["fullDocumentBeforeChange"] = draw(st.one_of(st.none(), bson_documents()))
    if operation == "update" and draw(st.booleans()):
        event["updateDescription"] = {"updatedFields": draw(bson_documents()), "removedFields": ["a"]}
    return event


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(change_events())
def test_every_event_ends_published_rejected_or_skipped(raw: dict[str, Any]) -> None:
    for text in (json_util.dumps(raw, json_options=json_util.CANONICAL_JSON_OPTIONS), json_util.dumps(raw)):
        outcome = STEP.process(parse_change_event(decode_event_line(text)))
        assert isinstance(outcome, Publish | Reject | Skip)
        if isinstance(outcome, Publish):
            for message in outcome.messages:
                orjson.loads(message.data)
                assert all(isinstance(v, str) for v in message.attributes.values())
    mapped = bson_to_json(raw)
    assert isinstance(mapped, dict)
    assert isinstance(STEP.process(parse_change_event(mapped)), Publish | Reject | Skip)


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.sampled_from(["_id", "operationType", "ns", "documentKey", "splitEvent", "x"]), scalars))
def test_garbage_events_raise_only_named_input_errors(raw: dict[str, Any]) -> None:
    text = json_util.dumps(raw)
    try:
        for _, event in whole_events([("line 1", decode_event_line(text))]):
            assert isinstance(STEP.process(event), Publish | Reject | Skip)
    except EventInputError as error:
        assert str(error).startswith("line 1: ")


def nested(depth: int) -> dict[str, Any]:
    value: dict[str, Any] = {"leaf": Int64(1)}
    for level in range(depth):
        value = {f"level{level}": value, "a.b": 1, "$c": [value] if level == 0 else 2}
    return value


def inventory(**extra: Any) -> dict[str, Any]:
    return {"_id": ObjectId(), "_schema_version": "v2", "product_id": "p", "warehouse_id": "w", "quantity": 1,
            "reserved_quantity": 0, "last_updated": "2024-03-20T10:00:00Z", **extra}  # fmt: skip


def event_with(document: dict[str, Any]) -> Any:
    raw = {"_id": {"_data": "8265AA"}, "operationType": "insert", "clusterTime": Timestamp(1, 1),
           "ns": {"db": "warehouse", "coll": "inventory"}, "documentKey": {"_id": document["_id"]},
           "fullDocument": document}  # fmt: skip
    return parse_change_event(decode_event_line(json_util.dumps(raw)))


def test_deeply_nested_documents_are_published() -> None:
    outcome = STEP.process(event_with(inventory(deep=nested(200))))
    assert isinstance(outcome, Publish)
    data = orjson.loads(outcome.messages[0].data)
    assert "level199" in data["document"]["deep"]


def test_keys_with_dollar_and_dot_survive() -> None:
    outcome = STEP.process(event_with(inventory(attributes={"size.cm": 14, "$price": {"amount": 1}})))
    assert isinstance(outcome, Publish)
    assert orjson.loads(outcome.messages[0].data)["document"]["attributes"] == {"size.cm": 14, "$price": {"amount": 1}}


def test_a_document_over_the_message_limit_is_rejected_too_large() -> None:
    outcome = STEP.process(event_with(inventory(notes="x" * 10_000_000)))
    assert isinstance(outcome, Reject) and outcome.reason is RejectReason.TOO_LARGE
    assert outcome.dead_letter is not None and len(outcome.dead_letter.data) < 10_000


@pytest.mark.parametrize("missing", ["_id", "operationType"])
def test_events_missing_essentials_are_named_errors(missing: str) -> None:
    raw = {
        "_id": {"_data": "82AA"},
        "operationType": "insert",
        "ns": {"db": "w", "coll": "c"},
        "documentKey": {"_id": 1},
    }
    del raw[missing]
    with pytest.raises(MalformedEventError):
        parse_change_event(decode_event_line(json_util.dumps(raw)))
