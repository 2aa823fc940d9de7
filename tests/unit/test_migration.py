"""Migrations: shortest registered path (checked against brute force), the seed's spelling, failures."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.document_types import DocumentType
from domain.json_types import JsonObject
from domain.migration import MigrationFailed, MigrationPathMissing, SchemaMigrator
from schemas.inventory.migrations import v1_to_v2

VERSIONS = [f"v{n}" for n in range(1, 9)]


def identity(document: JsonObject) -> JsonObject:
    return dict(document)


def simple_paths(edges: set[tuple[str, str]], source: str, target: str) -> Iterator[list[str]]:
    def walk(path: list[str]) -> Iterator[list[str]]:
        if path[-1] == target:
            yield path
            return
        for a, b in sorted(edges):
            if a == path[-1] and b not in path:
                yield from walk([*path, b])

    yield from walk([source])


@settings(max_examples=200, deadline=None)
@given(
    edges=st.sets(st.tuples(st.sampled_from(VERSIONS), st.sampled_from(VERSIONS)).filter(lambda e: e[0] != e[1])),
    source=st.sampled_from(VERSIONS),
    target=st.sampled_from(VERSIONS),
)
def test_shortest_path_matches_brute_force(edges: set[tuple[str, str]], source: str, target: str) -> None:
    migrator = SchemaMigrator()
    for a, b in edges:
        migrator.register_migration("t", a, b, identity)
    candidates = list(simple_paths(edges, source, target))
    if not candidates:
        with pytest.raises(MigrationPathMissing):
            migrator.find_path(document_type="t", from_version=source, to_version=target)
        return
    path = migrator.find_path(document_type="t", from_version=source, to_version=target)
    assert len(path) == min(len(p) for p in candidates)
    assert path[0] == source and path[-1] == target
    assert all((a, b) in edges or a == b for a, b in itertools.pairwise(path))
    assert path == migrator.find_path(document_type="t", from_version=source, to_version=target)


def test_multi_step_migration_sets_versions_and_never_mutates_the_input() -> None:
    migrator = SchemaMigrator()
    migrator.register_migration("t", "v1", "v2", lambda d: {**d, "a": 1})
    migrator.register_migration("t", "v2", "v3", lambda d: {**d, "b": 2})
    migrator.register_migration("t", "v3", "v1", lambda d: d)  # cycles are fine
    document: JsonObject = {"_schema_version": "v1", "nested": {"x": [1]}}
    result = migrator.migrate(document_type="t", document=document, from_version="v1", to_version="v3")
    assert result.path == ("v1", "v2", "v3")
    assert result.document == {"_schema_version": "v3", "nested": {"x": [1]}, "a": 1, "b": 2}
    assert document == {"_schema_version": "v1", "nested": {"x": [1]}}
    result.document["nested"]["x"].append(2)  # type: ignore[index,union-attr]
    assert document["nested"] == {"x": [1]}


def test_failing_migration_names_the_step_and_keeps_the_cause() -> None:
    migrator = SchemaMigrator()

    @migrator.migration("t", "v1", "v2")
    def broken(document: JsonObject) -> JsonObject:
        raise KeyError("sku")

    with pytest.raises(MigrationFailed, match=r"t v1->v2 raised KeyError") as error:
        migrator.migrate(document_type="t", document={}, from_version="v1", to_version="v2")
    assert isinstance(error.value.__cause__, KeyError)


def test_missing_path_names_type_and_versions() -> None:
    with pytest.raises(MigrationPathMissing, match="inventory from v1 to v3"):
        SchemaMigrator().find_path(document_type="inventory", from_version="v1", to_version="v3")


def test_seed_spelling_registers_into_the_default_migrator() -> None:
    default = SchemaMigrator.default()
    before = set(default.edges())
    try:
        SchemaMigrator.register_migration(DocumentType.INVENTORY, "v1", "v9", identity)
        assert ("inventory", "v1", "v9") in default.edges()
        assert ("inventory", "v1", "v9") not in SchemaMigrator().edges()
    finally:
        default._edges["inventory"]["v1"].pop("v9")
    assert set(default.edges()) == before


def test_last_registration_of_an_edge_wins() -> None:
    migrator = SchemaMigrator()
    migrator.register_migration("t", "v1", "v2", lambda d: {**d, "n": 1})
    migrator.register_migration("t", "v1", "v2", lambda d: {**d, "n": 2})
    assert migrator.migrate(document_type="t", document={}, from_version="v1", to_version="v2").document["n"] == 2


def test_inventory_v1_to_v2() -> None:
    assert v1_to_v2({"_schema_version": "v1", "quantity": 1}) == {
        "_schema_version": "v2",
        "quantity": 1,
        "reserved_quantity": 0,
    }
    assert v1_to_v2({"_schema_version": "v1", "reserved_quantity": 4})["reserved_quantity"] == 4
