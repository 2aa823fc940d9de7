"""Schema and migration files: built-ins, a user directory, and one clear line per broken file."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from adapters.schema_files import SchemaLoadError, load_registry

ORDER_V1 = {
    "type": "object",
    "required": ["_schema_version", "id"],
    "properties": {"_schema_version": {"enum": ["v1"]}},
}
ORDER_V2 = {"type": "object", "required": ["_schema_version", "id", "total"]}


def write(directory: Path, relative: str, content: str) -> Path:
    path = directory / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content)
    return path


def test_builtins_load_with_the_inventory_migration() -> None:
    registry, migrator = load_registry()
    assert registry.versions("inventory") == ("v1", "v2")
    assert ("inventory", "v1", "v2") in migrator.edges()


def test_extra_directory_adds_types_versions_and_migrations(tmp_path: Path) -> None:
    write(tmp_path, "order/v1.json", json.dumps(ORDER_V1))
    write(tmp_path, "order/v2.json", json.dumps(ORDER_V2))
    write(tmp_path, "order/README.txt", "ignored")
    write(
        tmp_path,
        "order/migrations.py",
        "def register(migrator):\n    migrator.register_migration('order', 'v1', 'v2', lambda d: {**d, 'total': 0})\n",
    )
    registry, migrator = load_registry(extra_directory=tmp_path)
    assert registry.types() == ("inventory", "order", "transaction")
    result = migrator.migrate(
        document_type="order", document={"_schema_version": "v1", "id": 1}, from_version="v1", to_version="v2"
    )
    assert registry.validate(document_type="order", version="v2", document=result.document) == ()


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({"order/v1.json": '{"type": "object",'}, r"order/v1.json: not valid JSON \(line 1"),
        ({"order/v1.json": "[1, 2]"}, "order/v1.json: a schema must be a JSON object"),
        ({"order/v1.json": '{"type": 12}'}, "schema order v1 is not valid JSON Schema 2020-12"),
        ({"order/v1.json": "{}", "order/migrations.py": "import nope\n"}, "order/migrations.py: failed to import"),
        ({"order/v1.json": "{}", "order/migrations.py": "x = 1\n"}, "defines no register"),
        (
            {
                "order/v1.json": "{}",
                "order/migrations.py": "def register(m):\n    m.register_migration('order', 'v1', 'v7', dict)\n",
            },
            "migration order v1->v7 refers to version v7, which has no schema file",
        ),
        (
            {"order/v1.json": "{}", "order/migrations.py": "def register(m):\n    raise RuntimeError('boom')\n"},
            r"register\(\) raised RuntimeError: boom",
        ),
    ],
)
def test_broken_files_name_the_file(tmp_path: Path, files: dict[str, str], message: str) -> None:
    for relative, content in files.items():
        write(tmp_path, relative, content)
    with pytest.raises(SchemaLoadError, match=message):
        load_registry(extra_directory=tmp_path)


def test_missing_directory(tmp_path: Path) -> None:
    with pytest.raises(SchemaLoadError, match=r"does not exist; fix schemas\.directory"):
        load_registry(extra_directory=tmp_path / "nope")
