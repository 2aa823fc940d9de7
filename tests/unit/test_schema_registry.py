"""The registry: the corpus's rules, every error with its path, version detection, natural order, and
the compiled validator agreeing with jsonschema (date-time included)."""

from __future__ import annotations

from typing import Any

import jsonschema
import jsonschema_rs
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.schema_files import load_registry
from domain.json_types import JsonObject
from domain.schema_registry import (
    FORMAT_CHECKER,
    SchemaDefinitionError,
    SchemaRegistry,
    SchemaViolation,
    UnknownSchemaError,
    is_date_time,
    version_key,
)

REGISTRY, _ = load_registry()


def inventory(**overrides: Any) -> dict[str, Any]:
    """A valid inventory v1 document; an override of None removes the field."""
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
    return {k: v for k, v in document.items() if v is not None}


def paths(document_type: str, version: str, document: dict[str, Any]) -> list[str]:
    return [v.path for v in REGISTRY.validate(document_type=document_type, version=version, document=document)]


def test_builtin_types_and_versions() -> None:
    assert REGISTRY.types() == ("inventory", "transaction")
    assert REGISTRY.versions("inventory") == ("v1", "v2")
    assert REGISTRY.newest("inventory") == "v2"
    assert REGISTRY.newest("transaction") == "v1"
    assert REGISTRY.has("inventory", "v2") and not REGISTRY.has("inventory", "v3") and not REGISTRY.has("x", "v1")
    for document_type in REGISTRY.types():
        for version in REGISTRY.versions(document_type):
            schema = REGISTRY.schema(document_type, version)
            assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
            assert schema["title"] and schema["description"] and schema["additionalProperties"] is True


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        (inventory(), []),
        (inventory(quantity=0), []),
        (inventory(_id="65fb081ae1d2c3b4a596870a", extra={"any": ["thing"]}, sku="S", threshold_min=1), []),
        (inventory(quantity=-1), ["/quantity"]),
        (inventory(quantity="5"), ["/quantity"]),
        (inventory(quantity=1.5), ["/quantity"]),
        (inventory(last_updated="yesterday"), ["/last_updated"]),
        (inventory(last_updated="2024-03-20 10:00:00"), ["/last_updated"]),
        (inventory(last_updated="2024-03-20T10:00:00.123456+02:00"), []),
        (inventory(last_updated=None), [""]),
        (inventory(brand=5), ["/brand"]),
        (inventory(threshold_max=1.5), ["/threshold_max"]),
        (inventory(_schema_version="v2"), ["/_schema_version"]),
    ],
)
def test_inventory_v1_rules(document: dict[str, Any], expected: list[str]) -> None:
    assert paths("inventory", "v1", document) == expected
    assert REGISTRY.is_valid(document_type="inventory", version="v1", document=document) == (not expected)


def test_every_error_is_reported_with_its_path() -> None:
    document = inventory(quantity=-1, brand=5, last_updated="x", product_id=None)
    violations = REGISTRY.validate(document_type="inventory", version="v1", document=document)
    assert [v.path for v in violations] == ["", "/brand", "/last_updated", "/quantity"]
    assert all(isinstance(v, SchemaViolation) and v.message for v in violations)


def test_missing_property_is_reported_at_its_parent_naming_it() -> None:
    # The shared corpus expects "" (JSON Schema's output format) for a missing required property.
    (violation,) = REGISTRY.validate(document_type="inventory", version="v1", document=inventory(product_id=None))
    assert violation == SchemaViolation(path="", message="'product_id' is a required property")


def test_v2_requires_non_negative_reserved_quantity() -> None:
    valid = inventory(_schema_version="v2", reserved_quantity=0)
    assert paths("inventory", "v2", valid) == []
    assert paths("inventory", "v2", inventory(_schema_version="v2")) == [""]
    assert paths("inventory", "v2", inventory(_schema_version="v2", reserved_quantity=-1)) == ["/reserved_quantity"]
    assert paths("inventory", "v2", {**valid, "_schema_version": "v1"}) == ["/_schema_version"]


def test_transaction_rules() -> None:
    assert paths("transaction", "v1", transaction()) == []
    assert paths("transaction", "v1", transaction(quantity=-40, order_id="O", customer_id="C", notes="n")) == []
    assert paths("transaction", "v1", transaction(transaction_type="gift")) == ["/transaction_type"]
    assert paths("transaction", "v1", transaction(quantity="3")) == ["/quantity"]
    assert paths("transaction", "v1", transaction(timestamp="2024-03-20 10:00:00")) == ["/timestamp"]
    assert paths("transaction", "v1", transaction(notes=1, order_id=2)) == ["/notes", "/order_id"]


@pytest.mark.parametrize(
    ("stamp", "valid"),
    [
        ("2024-03-20T10:00:00Z", True),
        ("2024-03-20t10:00:00z", True),
        ("2024-03-20T10:00:00.123456+02:00", True),
        ("2024-03-20T10:00:00-00:00", True),
        ("2024-02-29T00:00:00Z", True),
        ("2000-02-29T00:00:00Z", True),
        ("1998-12-31T23:59:60Z", True),  # leap second at 23:59 UTC (JSON Schema Test Suite)
        ("1998-12-31T15:59:60.123-08:00", True),
        ("0000-01-01T00:00:00Z", True),
        ("yesterday", False),
        ("2024-03-20 10:00:00", False),
        ("2024-03-20T10:00:00", False),
        ("2023-02-29T00:00:00Z", False),
        ("1900-02-29T00:00:00Z", False),
        ("2024-04-31T00:00:00Z", False),
        ("2024-03-20T24:00:00Z", False),
        ("1998-12-31T23:58:60Z", False),
        ("1998-12-31T23:59:60+01:00", False),
        ("2024-03-20T10:00:00+24:00", False),
        ("2024-03-20T10:00:00+0200", False),
        ("2024-03-20T10:00:00.Z", False),
        ("2024-03-20T10:00:00Z\n", False),  # rfc3339-validator (jsonschema's default) accepts this
        ("２０２４-03-20T10:00:00Z", False),
    ],
)
def test_date_time_is_asserted_the_same_way_by_both_validators(stamp: str, valid: bool) -> None:
    assert is_date_time(stamp) is valid
    assert REGISTRY.is_valid(document_type="inventory", version="v1", document=inventory(last_updated=stamp)) is valid
    assert bool(paths("inventory", "v1", inventory(last_updated=stamp))) is not valid


def test_detection_picks_the_newest_matching_version() -> None:
    unversioned = inventory(_schema_version=None)
    assert REGISTRY.detect_version(document_type="inventory", document=unversioned) == "v1"
    assert REGISTRY.detect_version(document_type="inventory", document={**unversioned, "reserved_quantity": 2}) == "v2"
    assert REGISTRY.detect_version(document_type="inventory", document={**unversioned, "quantity": -1}) is None
    # a wrong declared version does not stop detection: it is ignored
    assert REGISTRY.detect_version(document_type="inventory", document={**unversioned, "_schema_version": "v9"}) == "v1"
    assert REGISTRY.detect_version(document_type="transaction", document=transaction(_schema_version=None)) == "v1"


def test_natural_version_order() -> None:
    schema: JsonObject = {"type": "object"}
    registry = SchemaRegistry.from_schemas({"t": {"v10": schema, "v2": schema, "v1": schema}})
    assert registry.versions("t") == ("v1", "v2", "v10")
    assert registry.newest("t") == "v10"
    assert sorted(["v10", "v9", "v1.10", "v1.2", "v1"], key=version_key) == ["v1", "v1.2", "v1.10", "v9", "v10"]


def test_detection_tries_versions_newest_first_in_natural_order() -> None:
    def claims(version: str) -> JsonObject:
        return {"type": "object", "properties": {"_schema_version": {"const": version}}}

    registry = SchemaRegistry.from_schemas({"t": {v: claims(v) for v in ("v1", "v2", "v10")}})
    assert registry.detect_version(document_type="t", document={}) == "v10"


def test_unknown_type_and_version() -> None:
    with pytest.raises(UnknownSchemaError, match="no schemas for document type 'order'"):
        REGISTRY.validate(document_type="order", version="v1", document={})
    with pytest.raises(UnknownSchemaError, match=r"inventory has no version 'v9' \(known: v1, v2\)"):
        REGISTRY.validate(document_type="inventory", version="v9", document={})
    with pytest.raises(KeyError):
        REGISTRY.detect_version(document_type="order", document={})


@pytest.mark.parametrize(
    ("schema", "problem"),
    [
        ({"type": "no-such-type"}, r"schema t v1 is not valid JSON Schema 2020-12 at /type: .*; fix the schema file"),
        ([{"type": "object"}], "schema t v1 must be a JSON object, not list"),
        ({"$schema": "http://json-schema.org/draft-07/schema#"}, 'schema t v1 declares "\\$schema": .*draft-07'),
        ({"$ref": "https://example.invalid/x.json"}, "schema t v1 does not compile: .*remote \\$ref"),
    ],
)
def test_broken_schema_names_type_version_and_problem(schema: Any, problem: str) -> None:
    with pytest.raises(SchemaDefinitionError, match=problem) as error:
        SchemaRegistry.from_schemas({"t": {"v1": schema}})
    assert "\n" not in str(error.value)
    assert (error.value.document_type, error.value.version) == ("t", "v1")


def test_disagreeing_validators_still_report_errors(monkeypatch: pytest.MonkeyPatch) -> None:
    registry = SchemaRegistry.from_schemas({"t": {"v1": {"properties": {"n": {"type": "integer"}}}}})
    compiled = registry._get("t", "v1")
    monkeypatch.setattr(compiled, "full", jsonschema.Draft202012Validator({}))  # finds nothing
    (violation,) = registry.validate(document_type="t", version="v1", document={"n": "x"})
    assert violation.path == "/n" and "integer" in violation.message


# Near the inventory schema: every kind of quantity, date-time-ish strings built from parts that are
# each sometimes out of range (lowercase t/z, leap days and seconds, offsets, fractions), missing fields.
two_digits = st.integers(0, 99).map("{:02d}".format)
date_time_parts = st.tuples(
    st.sampled_from(["0000", "1900", "1998", "2000", "2023", "2024", "9999"])
    | st.integers(0, 9999).map("{:04d}".format),
    st.integers(0, 13).map("{:02d}".format),
    st.integers(0, 32).map("{:02d}".format),
    st.sampled_from(["T", "t", " ", "_", ""]),
    st.sampled_from(["23", "00", "15"]) | st.integers(0, 25).map("{:02d}".format) | two_digits,
    st.sampled_from(["59", "58", "00"]) | st.integers(0, 61).map("{:02d}".format),
    st.sampled_from(["60", "59", "00"]) | two_digits,
    st.sampled_from(["", ".", ".0", ".123456", ".1234567890123"]),
    st.sampled_from(["Z", "z", "", "+0200", "Z\n", " "])
    | st.tuples(st.sampled_from("+-"), st.integers(0, 25), st.integers(0, 61)).map(
        lambda o: f"{o[0]}{o[1]:02d}:{o[2]:02d}"
    ),
)
date_times = st.one_of(
    date_time_parts.map(lambda p: f"{p[0]}-{p[1]}-{p[2]}{p[3]}{p[4]}:{p[5]}:{p[6]}{p[7]}{p[8]}"),
    st.datetimes().map(lambda d: d.isoformat() + "Z"),
    st.text(alphabet="0123456789-:.TtZz+ ", max_size=30),
    st.text(max_size=10),
)
quantities = st.one_of(
    st.integers(-5, 5),
    st.integers(),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([1.0, -0.0, 2.0**64, True, None]),
    st.text(max_size=2),
)


@settings(max_examples=600, deadline=None)
@given(
    quantity=quantities,
    stamp=date_times,
    reserved=quantities,
    drop=st.sets(st.sampled_from(["_schema_version", "product_id", "warehouse_id", "quantity", "last_updated"])),
    version=st.sampled_from(["v1", "v2"]),
)
def test_compiled_validator_and_jsonschema_agree(
    quantity: Any, stamp: str, reserved: Any, drop: set[str], version: str
) -> None:
    document = inventory(_schema_version=version, quantity=quantity, last_updated=stamp, reserved_quantity=reserved)
    for key in drop:
        document.pop(key, None)
    schema = REGISTRY.schema("inventory", version)
    errors = list(jsonschema.Draft202012Validator(schema, format_checker=FORMAT_CHECKER).iter_errors(document))
    compiled = REGISTRY.is_valid(document_type="inventory", version=version, document=document)
    assert compiled == (not errors), (document, errors)
    assert bool(REGISTRY.validate(document_type="inventory", version=version, document=document)) is not compiled


DATE_TIME_RS = jsonschema_rs.validator_for({"format": "date-time"}, validate_formats=True)


@settings(max_examples=1000, deadline=None)
@given(stamp=date_times)
def test_date_time_check_matches_jsonschema_rs(stamp: str) -> None:
    assert is_date_time(stamp) == DATE_TIME_RS.is_valid(stamp), stamp
