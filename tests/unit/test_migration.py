"""Migrations: shortest registered path (checked against brute force), the seed's spelling, failures."""

from __future__ import annotations

import itertools
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.document_types import DocumentType
from domain.json_types import JsonObject
from domain.migration import MigrationError, MigrationFailed, MigrationPathMissing, MigrationResult, SchemaMigrator
from schemas.inventory.migrations import register, v1_to_v2

VERSIONS = [f"v{n}" for n in range(1, 9)]


def identity(document: JsonObject) -> JsonObject:
    return dict(document)


def simple_paths(edges: set[tuple[str, str]], source: str, target: str) -> Iterator[list[str]]:
    """Every cycle-free walk from source to target: a shortest path is always among them."""

    def walk(path: list[str]) -> Iterator[list[str]]:
        if path[-1] == target:
            yield path
            return
        for a, b in edges:
            if a == path[-1] and b not in path:
                yield from walk([*path, b])

    yield from walk([source])


def distance(edges: set[tuple[str, str]], source: str, target: str) -> int | None:
    """Steps of a shortest path by a second method: BFS over whole frontiers, no parents kept."""
    frontier, seen, steps = {source}, {source}, 0
    while frontier:
        if target in frontier:
            return steps
        frontier = {b for a, b in edges if a in frontier} - seen
        seen |= frontier
        steps += 1
    return None


@settings(max_examples=300, deadline=None)
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
    expected = distance(edges, source, target)
    assert (expected is None) == (not candidates)
    if not candidates:
        with pytest.raises(MigrationPathMissing):
            migrator.find_path(document_type="t", from_version=source, to_version=target)
        return
    path = migrator.find_path(document_type="t", from_version=source, to_version=target)
    assert len(path) - 1 == expected == min(len(p) for p in candidates) - 1
    assert path[0] == source and path[-1] == target
    assert all((a, b) in edges for a, b in itertools.pairwise(path))
    assert path == migrator.find_path(document_type="t", from_version=source, to_version=target)  # cached, same


def test_same_version_is_a_path_of_one() -> None:
    assert SchemaMigrator().find_path(document_type="t", from_version="v3", to_version="v3") == ("v3",)
    result = SchemaMigrator().migrate(document_type="t", document={"a": 1}, from_version="v3", to_version="v3")
    assert result == MigrationResult(document={"a": 1}, path=("v3",))


def test_ties_go_to_the_neighbour_first_in_natural_order() -> None:
    migrator = SchemaMigrator()
    for a, b in [("v1", "v10"), ("v1", "v2"), ("v10", "v4"), ("v2", "v4")]:
        migrator.register_migration("t", a, b, identity)
    assert migrator.find_path(document_type="t", from_version="v1", to_version="v4") == ("v1", "v2", "v4")


def test_registering_invalidates_cached_paths() -> None:
    migrator = SchemaMigrator()
    migrator.register_migration("t", "v1", "v2", identity)
    migrator.register_migration("t", "v2", "v3", identity)
    assert migrator.find_path(document_type="t", from_version="v1", to_version="v3") == ("v1", "v2", "v3")
    with pytest.raises(MigrationPathMissing):
        migrator.find_path(document_type="t", from_version="v3", to_version="v1")
    migrator.register_migration("t", "v1", "v3", identity)
    migrator.register_migration("t", "v3", "v1", identity)
    assert migrator.find_path(document_type="t", from_version="v1", to_version="v3") == ("v1", "v3")
    assert migrator.find_path(document_type="t", from_version="v3", to_version="v1") == ("v3", "v1")


def test_multi_step_migration_sets_versions_and_never_mutates_the_input() -> None:
    migrator = SchemaMigrator()
    migrator.register_migration("t", "v1", "v2", lambda d: {**d, "a": 1})
    migrator.register_migration("t", "v2", "v3", lambda d: {**d, "b": 2})
    migrator.register_migration("t", "v3", "v1", lambda d: d)  # cycles are fine

    @migrator.migration("t", "v0", "v1")
    def in_place(document: JsonObject) -> JsonObject:
        nested = document["nested"]
        assert isinstance(nested, dict) and isinstance(nested["x"], list)
        nested["x"].append(0)
        return document

    document: JsonObject = {"_schema_version": "v0", "nested": {"x": [1]}}
    result = migrator.migrate(document_type="t", document=document, from_version="v0", to_version="v3")
    assert result.path == ("v0", "v1", "v2", "v3")
    assert result.document == {"_schema_version": "v3", "nested": {"x": [1, 0]}, "a": 1, "b": 2}
    assert document == {"_schema_version": "v0", "nested": {"x": [1]}}


def test_a_step_that_sets_its_own_version_keeps_it() -> None:
    migrator = SchemaMigrator()
    migrator.register_migration("t", "v1", "v2", lambda d: {**d, "_schema_version": "v2-beta"})
    result = migrator.migrate(document_type="t", document={}, from_version="v1", to_version="v2")
    assert result.document == {"_schema_version": "v2-beta"}  # the caller's validation will judge it


def test_failing_migration_names_the_step_and_keeps_the_cause() -> None:
    migrator = SchemaMigrator()

    @migrator.migration("t", "v1", "v2")
    def broken(document: JsonObject) -> JsonObject:
        raise KeyError("sku")

    document: JsonObject = {"_schema_version": "v1"}
    with pytest.raises(MigrationFailed, match=r"t v1->v2 raised KeyError: 'sku'") as error:
        migrator.migrate(document_type="t", document=document, from_version="v1", to_version="v2")
    assert isinstance(error.value, MigrationError)
    assert isinstance(error.value.__cause__, KeyError)
    assert document == {"_schema_version": "v1"}


def test_a_step_returning_a_non_document_fails() -> None:
    migrator = SchemaMigrator()
    migrator.register_migration("t", "v1", "v2", lambda d: None)  # type: ignore[arg-type,return-value]
    with pytest.raises(MigrationFailed, match="t v1->v2 returned NoneType, not a document"):
        migrator.migrate(document_type="t", document={}, from_version="v1", to_version="v2")


def test_missing_path_names_type_and_versions() -> None:
    with pytest.raises(MigrationPathMissing, match="inventory from v1 to v3"):
        SchemaMigrator().find_path(document_type="inventory", from_version="v1", to_version="v3")
    with pytest.raises(MigrationError):
        SchemaMigrator().migrate(document_type="inventory", document={}, from_version="v1", to_version="v3")


def test_seed_spelling_registers_into_the_default_migrator(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(SchemaMigrator, "_default", None)  # a fresh default, restored after the test
    SchemaMigrator.register_migration(DocumentType.INVENTORY, "v1", "v2", v1_to_v2)
    assert SchemaMigrator.default().edges() == [("inventory", "v1", "v2")]
    assert SchemaMigrator.default() is SchemaMigrator.default()
    instance = SchemaMigrator()
    instance.register_migration(DocumentType.INVENTORY, "v2", "v3", identity)
    assert instance.edges() == [("inventory", "v2", "v3")]
    assert SchemaMigrator.default().edges() == [("inventory", "v1", "v2")]


def test_last_registration_of_an_edge_wins() -> None:
    migrator = SchemaMigrator()
    migrator.register_migration("t", "v1", "v2", lambda d: {**d, "n": 1})
    migrator.register_migration("t", "v1", "v2", lambda d: {**d, "n": 2})
    assert migrator.migrate(document_type="t", document={}, from_version="v1", to_version="v2").document["n"] == 2


def test_merged_and_include_combine_registries_later_ones_winning() -> None:
    first, second = SchemaMigrator(), SchemaMigrator()
    first.register_migration("t", "v1", "v2", lambda d: {**d, "by": "first"})
    first.register_migration("u", "v1", "v2", identity)
    second.register_migration("t", "v1", "v2", lambda d: {**d, "by": "second"})
    second.register_migration("t", "v2", "v3", identity)
    merged = first.merged(second)
    assert sorted(merged.edges()) == [("t", "v1", "v2"), ("t", "v2", "v3"), ("u", "v1", "v2")]
    assert merged.migrate(document_type="t", document={}, from_version="v1", to_version="v3").document["by"] == "second"
    assert len(first.edges()) == 2 and len(second.edges()) == 2  # neither is changed
    first.include(second)
    assert sorted(first.edges()) == sorted(merged.edges())


def test_inventory_v1_to_v2() -> None:
    document: JsonObject = {"_schema_version": "v1", "quantity": 1}
    assert v1_to_v2(document) == {"_schema_version": "v2", "quantity": 1, "reserved_quantity": 0}
    assert document == {"_schema_version": "v1", "quantity": 1}
    assert v1_to_v2({"_schema_version": "v1", "reserved_quantity": 4})["reserved_quantity"] == 4
    migrator = SchemaMigrator()
    register(migrator)
    assert migrator.edges() == [("inventory", "v1", "v2")]


def test_breadth_first_search_helper_is_sound() -> None:
    edges = {("v1", "v2"), ("v2", "v3"), ("v1", "v3")}
    assert distance(edges, "v1", "v3") == 1 and distance(edges, "v3", "v1") is None
    assert sorted(simple_paths(edges, "v1", "v3")) == [["v1", "v2", "v3"], ["v1", "v3"]]
