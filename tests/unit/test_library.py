"""The domain as a library: what a batch script gets equals what the connector does."""

from __future__ import annotations

import pytest

from entrypoints.library import InvalidDocument, Toolkit

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
        ({"_schema_version": "v9"}, "no version 'v9'"),
        ({"_schema_version": "v1", "quantity": -1}, "invalid inventory v1"),
        ({"quantity": "x"}, "no inventory version matches"),
    ],
)
def test_invalid_documents_raise_with_their_problems(document: dict, reason: str) -> None:
    with pytest.raises(InvalidDocument, match=reason):
        KIT.migrate("inventory", document)
    assert KIT.to_json({"a": 1}) == {"a": 1}
