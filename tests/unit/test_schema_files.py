"""Schema and migration files: built-ins, a user directory, and one clear line per broken file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.schema_files import SchemaLoadError, builtin_directory, load_registry, load_schema_directory
from domain.json_types import JsonObject
from domain.migration import SchemaMigrator

ORDER_V1 = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "required": ["_schema_version", "id"],
    "properties": {"_schema_version": {"enum": ["v1"]}},
}
ORDER_V2 = {"type": "object", "required": ["_schema_version", "id", "total"]}


def write(directory: Path, relative: str, content: str | bytes) -> Path:
    path = directory / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(content, bytes):
        path.write_bytes(content)
    else:
        path.write_text(content)
    return path


def test_builtins_load_with_the_inventory_migration() -> None:
    registry, migrator = load_registry()
    assert registry.types() == ("inventory", "transaction")
    assert registry.versions("inventory") == ("v1", "v2")
    assert registry.versions("transaction") == ("v1",)
    assert ("inventory", "v1", "v2") in migrator.edges()
    document: JsonObject = {"_schema_version": "v1", "product_id": "P", "warehouse_id": "W", "quantity": 1}
    document["last_updated"] = "2024-03-20T10:00:00Z"
    result = migrator.migrate(document_type="inventory", document=document, from_version="v1", to_version="v2")
    assert result.document["reserved_quantity"] == 0
    assert registry.validate(document_type="inventory", version="v2", document=result.document) == ()


def test_load_schema_directory_reads_type_and_version_from_the_path() -> None:
    schemas = load_schema_directory(builtin_directory())
    assert sorted((t, v) for t, versions in schemas.items() for v in versions) == [
        ("inventory", "v1"),
        ("inventory", "v2"),
        ("transaction", "v1"),
    ]
    assert schemas["inventory"]["v2"]["title"]


def test_extra_directory_adds_types_versions_and_migrations(tmp_path: Path) -> None:
    write(tmp_path, "order/v1.json", json.dumps(ORDER_V1))
    write(tmp_path, "order/v2.json", json.dumps(ORDER_V2))
    write(tmp_path, "order/README.txt", "ignored")
    write(tmp_path, "__pycache__/junk.json", "not even JSON")
    write(
        tmp_path,
        "order/migrations.py",
        "def register(migrator):\n    migrator.register_migration('order', 'v1', 'v2', lambda d: {**d, 'total': 0})\n",
    )
    registry, migrator = load_registry(extra_directory=tmp_path)
    assert registry.types() == ("inventory", "order", "transaction")
    assert registry.versions("order") == ("v1", "v2")
    assert ("inventory", "v1", "v2") in migrator.edges()
    result = migrator.migrate(
        document_type="order", document={"_schema_version": "v1", "id": 1}, from_version="v1", to_version="v2"
    )
    assert result.document == {"_schema_version": "v2", "id": 1, "total": 0}
    assert registry.validate(document_type="order", version="v2", document=result.document) == ()


def test_extra_directory_wins_for_a_version_and_an_edge_in_both(tmp_path: Path) -> None:
    write(tmp_path, "inventory/v2.json", json.dumps({**ORDER_V1, "title": "mine", "required": []}))
    write(
        tmp_path,
        "inventory/migrations.py",
        "def register(migrator):\n    migrator.register_migration('inventory', 'v1', 'v2', lambda d: {'mine': 1})\n",
    )
    registry, migrator = load_registry(extra_directory=tmp_path)
    assert registry.schema("inventory", "v2")["title"] == "mine"
    assert registry.schema("inventory", "v1")["title"] == "Inventory level v1"
    result = migrator.migrate(document_type="inventory", document={}, from_version="v1", to_version="v2")
    assert result.document == {"mine": 1, "_schema_version": "v2"}


def test_class_level_registrations_in_a_migrations_file_are_included(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SchemaMigrator, "_default", None)
    write(tmp_path, "order/v1.json", json.dumps(ORDER_V1))
    write(tmp_path, "order/v2.json", json.dumps(ORDER_V2))
    write(
        tmp_path,
        "order/migrations.py",
        "from domain.migration import SchemaMigrator\n"
        "SchemaMigrator.register_migration('order', 'v1', 'v2', dict)\n"
        "def register(migrator):\n    pass\n",
    )
    _, migrator = load_registry(extra_directory=tmp_path)
    assert ("order", "v1", "v2") in migrator.edges()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"order/v1.json": '{"type": "object",'}, r"order/v1\.json: not valid JSON \(line 1, column 19"),
        ({"order/v1.json": b"\xff{}"}, r"order/v1\.json: cannot be read \(UnicodeDecodeError"),
        ({"order/v1.json": "[1, 2]"}, r"order/v1\.json: a schema must be a JSON object, not list"),
        (
            {"order/v1.json": '{"type": 12}'},
            r"order/v1\.json: schema order v1 is not valid JSON Schema 2020-12 at /type: .*; fix the schema file",
        ),
        ({"order/v1.json": "{}", "order/migrations.py": "import nope\n"}, r"order/migrations\.py: failed to import"),
        ({"order/v1.json": "{}", "order/migrations.py": "def (:\n"}, r"order/migrations\.py: failed to import"),
        ({"order/v1.json": "{}", "order/migrations.py": "x = 1\n"}, r"order/migrations\.py: defines no register"),
        (
            {
                "order/v1.json": "{}",
                "order/migrations.py": "def register(m):\n    m.register_migration('order', 'v1', 'v7', dict)\n",
            },
            r"order/migrations\.py: migration order v1->v7 refers to version v7, which has no schema file; "
            r"add order/v7\.json",
        ),
        (
            {"order/v1.json": "{}", "order/migrations.py": "def register(m):\n    raise RuntimeError('boom\\nx')\n"},
            r"order/migrations\.py: register\(\) raised RuntimeError: boom x",
        ),
    ],
)
def test_broken_files_name_the_file_in_one_line(tmp_path: Path, files: dict[str, str | bytes], message: str) -> None:
    for relative, content in files.items():
        write(tmp_path, relative, content)
    with pytest.raises(SchemaLoadError, match=message) as error:
        load_registry(extra_directory=tmp_path)
    assert "\n" not in str(error.value)
    assert str(tmp_path) in str(error.value)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(SchemaLoadError, match=r"does not exist; fix schemas\.directory"):
        load_registry(extra_directory=tmp_path / "nope")
