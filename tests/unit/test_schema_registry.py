"""The registry: the corpus's rules, every error with its path, version detection, natural order."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.schema_files import load_registry
from domain.schema_registry import SchemaDefinitionError, SchemaRegistry, UnknownSchemaError, version_key

REGISTRY, _ = load_registry()


def inventory(**overrides: Any) -> dict[str, Any]:
    document = {
        "_schema_version": "v1",
        "product_id": "PRD-1",
        "warehouse_id": "WH-1",
        "quantity": 3,
        "last_updated": "2024-03-20T10:00:00.000Z",
    }
    document.update(overrides)
    return {k: v for k, v in document.items() if v is not None}


def transaction(**overrides: Any) -> dict[str, Any]:
    document = {
        "_schema_version": "v1",
        "transaction_id": "T-1",
        "product_id": "PRD-1",
        "warehouse_id": "WH-1",
        "quantity": -2,
        "transaction_type": "adjustment",
        "timestamp": "2024-03-20T10:00:00.123456+02:00",
    }
    document.update(overrides)
    return document


def paths(document_type: str, version: str, document: dict[str, Any]) -> list[str]:
    return [v.path for v in REGISTRY.validate(document_type=document_type, version=version, document=document)]


def test_builtin_types_and_versions() -> None:
    assert REGISTRY.types() == ("inventory", "transaction")
    assert REGISTRY.versions("inventory") == ("v1", "v2")
    assert REGISTRY.newest("transaction") == "v1"


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (inventory(), []),
        (inventory(quantity=0), []),
        (inventory(quantity=-1), ["/quantity"]),
        (inventory(quantity="5"), ["/quantity"]),
        (inventory(quantity=1.5), ["/quantity"]),
        (inventory(last_updated="yesterday"), ["/last_updated"]),
        (inventory(last_updated="2024-03-20 10:00:00"), ["/last_updated"]),
        (inventory(last_updated="2024-03-20T10:00:00.123456+02:00"), []),
        (inventory(last_updated=None), [""]),
        (inventory(brand=5), ["/brand"]),
        (inventory(quantity=-1, brand=5, last_updated="x"), ["/brand", "/last_updated", "/quantity"]),
    ],
)
def test_inventory_v1_rules(document: dict[str, Any], expected: list[str]) -> None:
    assert paths("inventory", "v1", document) == expected


def test_missing_property_is_reported_at_its_parent_naming_it() -> None:
    (violation,) = REGISTRY.validate(document_type="inventory", version="v1", document=inventory(product_id=None))
    assert violation.path == "" and "'product_id' is a required property" in violation.message


def test_v2_requires_non_negative_reserved_quantity() -> None:
    assert paths("inventory", "v2", inventory(_schema_version="v2", reserved_quantity=0)) == []
    assert paths("inventory", "v2", inventory(_schema_version="v2")) == [""]
    assert paths("inventory", "v2", inventory(_schema_version="v2", reserved_quantity=-1)) == ["/reserved_quantity"]


def test_transaction_rules() -> None:
    assert paths("transaction", "v1", transaction()) == []
    assert paths("transaction", "v1", transaction(transaction_type="gift")) == ["/transaction_type"]
    assert paths("transaction", "v1", transaction(quantity="3")) == ["/quantity"]


def test_detection_picks_the_newest_matching_version() -> None:
    unversioned = inventory(_schema_version=None)
    assert REGISTRY.detect_version(document_type="inventory", document=unversioned) == "v1"
    assert REGISTRY.detect_version(document_type="inventory", document={**unversioned, "reserved_quantity": 2}) == "v2"
    assert REGISTRY.detect_version(document_type="inventory", document={**unversioned, "quantity": -1}) is None


def test_natural_version_order() -> None:
    schema = {"type": "object"}
    registry = SchemaRegistry.from_schemas({"t": {"v10": schema, "v2": schema, "v1": schema}})
    assert registry.versions("t") == ("v1", "v2", "v10")
    assert registry.newest("t") == "v10"
    assert sorted(["v10", "v9", "v1.10", "v1.2"], key=version_key) == ["v1.2", "v1.10", "v9", "v10"]


def test_unknown_type_and_version_and_broken_schema() -> None:
    with pytest.raises(UnknownSchemaError, match="no schemas for document type 'order'"):
        REGISTRY.validate(document_type="order", version="v1", document={})
    with pytest.raises(UnknownSchemaError, match="inventory has no version 'v9'"):
        REGISTRY.validate(document_type="inventory", version="v9", document={})
    with pytest.raises(SchemaDefinitionError, match="schema t v1 is not valid JSON Schema 2020-12"):
        SchemaRegistry.from_schemas({"t": {"v1": {"type": "no-such-type"}}})


date_times = st.one_of(
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.from_regex(r"\A\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,6})?([Zz]|[+-]\d{2}:\d{2})?\Z"),
    st.sampled_from(["yesterday", "2024-02-29T00:00:00Z", "2023-02-29T00:00:00Z", "2024-03-20T24:00:00Z"]),
)


@settings(max_examples=400, deadline=None)
@given(
    quantity=st.one_of(st.integers(-5, 5), st.floats(-2, 2), st.text(max_size=2), st.none()),
    stamp=date_times,
    drop=st.sets(st.sampled_from(["product_id", "warehouse_id", "quantity", "last_updated"])),
)
def test_compiled_validator_and_jsonschema_agree(quantity: Any, stamp: str, drop: set[str]) -> None:
    document = inventory(quantity=quantity, last_updated=stamp)
    for key in drop:
        document.pop(key, None)
    compiled = REGISTRY.is_valid(document_type="inventory", version="v1", document=document)
    errors = list(REGISTRY._get("inventory", "v1").full.iter_errors(document))
    assert compiled == (not errors), (document, errors)
