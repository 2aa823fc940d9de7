"""Load schema files and migrations from disk: the built-in ``schemas/`` package, then a user directory.

Layout (both places): ``<type>/<version>.json`` (JSON Schema 2020-12) and optionally
``<type>/migrations.py`` defining ``register(migrator)``. A version present in both places comes from
the user directory. Every problem is one line naming the file and what to do about it.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
from importlib import resources
from pathlib import Path

from domain.json_types import JsonObject
from domain.migration import SchemaMigrator
from domain.schema_registry import SchemaDefinitionError, SchemaRegistry


class SchemaLoadError(Exception):
    """A schema or migration file that cannot be used."""


def builtin_directory() -> Path:
    return Path(str(resources.files("schemas")))


def load_schema_directory(path: Path) -> dict[str, dict[str, JsonObject]]:
    """``{type: {version: schema}}`` from ``path``; ignores files that are not ``<type>/<version>.json``."""
    if not path.is_dir():
        raise SchemaLoadError(f"schema directory {path} does not exist; fix schemas.directory")
    found: dict[str, dict[str, JsonObject]] = {}
    for file in sorted(path.glob("*/*.json")):
        try:
            schema = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise SchemaLoadError(
                f"{file}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); fix the file"
            ) from None
        if not isinstance(schema, dict):
            raise SchemaLoadError(f"{file}: a schema must be a JSON object, not {type(schema).__name__}")
        found.setdefault(file.parent.name, {})[file.stem] = schema
    return found


def _load_migrations(path: Path, migrator: SchemaMigrator) -> None:
    for file in sorted(path.glob("*/migrations.py")):
        name = "connector_migrations_" + hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            raise SchemaLoadError(f"{file}: cannot be imported")
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            raise SchemaLoadError(
                f"{file}: failed to import ({type(error).__name__}: {error}); fix the module"
            ) from None
        register = getattr(module, "register", None)
        if not callable(register):
            raise SchemaLoadError(
                f"{file}: defines no register(migrator) function; add one that registers its migrations"
            )
        try:
            register(migrator)
        except Exception as error:
            raise SchemaLoadError(f"{file}: register() raised {type(error).__name__}: {error}") from None


def load_registry(*, extra_directory: Path | None = None) -> tuple[SchemaRegistry, SchemaMigrator]:
    """The registry and migrator from the built-in schemas plus ``extra_directory``."""
    directories = [builtin_directory()] + ([extra_directory] if extra_directory is not None else [])
    schemas: dict[str, dict[str, JsonObject]] = {}
    migrator = SchemaMigrator()
    migrator.include(SchemaMigrator.default())
    for directory in directories:
        for document_type, versions in load_schema_directory(directory).items():
            schemas.setdefault(document_type, {}).update(versions)
        _load_migrations(directory, migrator)
    try:
        registry = SchemaRegistry.from_schemas(schemas)
    except SchemaDefinitionError as error:
        raise SchemaLoadError(str(error)) from None
    for document_type, source, target in migrator.edges():
        for version in (source, target):
            if not registry.has(document_type, version):
                raise SchemaLoadError(
                    f"migration {document_type} {source}->{target} refers to version {version}, which has no "
                    f"schema file; add {document_type}/{version}.json or remove the migration"
                )
    return registry, migrator
