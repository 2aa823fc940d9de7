"""The change-event model: every operation type parses, null and absent stay apart, bad input is named."""

from __future__ import annotations

import pytest

from domain.bson_json import bson_to_json
from domain.change_event import ABSENT, ClusterTime, MalformedEventError, OperationKind, parse_change_event
from tests.builders import DROP, change, inventory_doc


def parse(raw: dict) -> object:
    mapped = bson_to_json(raw)
    assert isinstance(mapped, dict)
    return parse_change_event(mapped)


@pytest.mark.parametrize(
    ("operation", "kind"),
    [
        ("insert", OperationKind.DATA),
        ("update", OperationKind.DATA),
        ("replace", OperationKind.DATA),
        ("delete", OperationKind.DATA),
        ("drop", OperationKind.DDL),
        ("rename", OperationKind.DDL),
        ("dropDatabase", OperationKind.DDL),
        ("create", OperationKind.DDL),
        ("modify", OperationKind.DDL),
        ("createIndexes", OperationKind.DDL),
        ("dropIndexes", OperationKind.DDL),
        ("shardCollection", OperationKind.DDL),
        ("reshardCollection", OperationKind.DDL),
        ("refineCollectionShardKey", OperationKind.DDL),
        ("invalidate", OperationKind.INVALIDATE),
        ("endOfTransaction", OperationKind.END_OF_TRANSACTION),
        ("someFutureType", OperationKind.UNKNOWN),
    ],
)
def test_every_operation_type_has_a_kind(operation: str, kind: OperationKind) -> None:
    event = parse(change(operation))
    assert event.kind is kind
    assert event.operation == operation


def test_null_and_absent_full_document_are_different() -> None:
    absent = parse(change("update", document=DROP))
    null = parse(change("update", document=None))
    present = parse(change("insert", document=inventory_doc()))
    assert absent.full_document is ABSENT
    assert null.full_document is None
    assert isinstance(present.full_document, dict)
    assert present.full_document["_id"] == "65f1a2b3c4d5e6f708192a3b"


def test_before_change_null_vs_absent() -> None:
    assert parse(change("delete", fullDocumentBeforeChange=None)).full_document_before_change is None
    assert parse(change("delete")).full_document_before_change is ABSENT


def test_cluster_time_and_token_with_type_bits() -> None:
    raw = change("shardCollection")
    raw["_id"]["_typeBits"] = b"\x82\x00\x04"
    event = parse(raw)
    assert event.token.type_bits == "ggAE"
    assert event.token.to_json() == {"_data": raw["_id"]["_data"], "_typeBits": "ggAE"}
    assert isinstance(event.cluster_time, ClusterTime)
    assert event.wall_time is not None and event.wall_time.endswith("Z")


def test_transaction_fields_before_id_are_kept() -> None:
    raw = {"txnNumber": 7, "lsid": {"id": "x"}, **change("insert", document=inventory_doc())}
    event = parse(raw)
    assert event.raw["txnNumber"] == 7
    assert event.kind is OperationKind.DATA


def test_rename_target_and_drop_database_without_collection() -> None:
    rename = parse(change("rename", to={"db": "warehouse", "coll": "inventory_2023"}))
    assert rename.rename_to == {"db": "warehouse", "coll": "inventory_2023"}
    drop_db = parse(change("dropDatabase", coll=None))
    assert drop_db.collection is None and drop_db.database == "warehouse"


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda e: e.pop("_id"), "no _id"),
        (lambda e: e.update(_id={"x": 1}), "string _data"),
        (lambda e: e.pop("operationType"), "no operationType"),
        (lambda e: e.pop("documentKey"), "lacks ns.coll or documentKey"),
        (lambda e: e.pop("ns"), "lacks ns.coll or documentKey"),
    ],
)
def test_malformed_events_are_named(mutate, message: str) -> None:  # type: ignore[no-untyped-def]
    raw = change("insert", document=inventory_doc())
    mutate(raw)
    with pytest.raises(MalformedEventError, match=message):
        parse(raw)
