"""Load schema files and migrations from disk: the built-in ``schemas/`` package, then a user directory.

Layout (both places): ``<type>/<version>.json`` (JSON Schema 2020-12) and optionally
``<type>/migrations.py`` defining ``register(migrator)``. A version present in both places comes from
the user directory, and so does a migration edge registered in both. Every problem is one line naming
the file and what to do about it, because operators meet these at startup.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import sys
from importlib import resources
from pathlib import Path

from domain.json_types import JsonObject
from domain.migration import SchemaMigrator
from domain.schema_registry import SchemaDefinitionError, SchemaRegistry


class SchemaLoadError(Exception):
    """A schema or migration file that cannot be used; the message names the file and the fix."""


def builtin_directory() -> Path:
    return Path(str(resources.files("schemas")))


def load_schema_directory(path: Path) -> dict[str, dict[str, JsonObject]]:
    """``{type: {version: schema}}`` from ``path``; ignores files that are not ``<type>/<version>.json``."""
    return {
        document_type: {version: schema for version, (schema, _) in versions.items()}
        for document_type, versions in _read_schema_files(path).items()
    }


def load_registry(*, extra_directory: Path | None = None) -> tuple[SchemaRegistry, SchemaMigrator]:
    """The registry and migrator from the built-in schemas plus ``extra_directory``.

    The migrator also holds whatever was registered on ``SchemaMigrator.default()`` (the seed's
    class-level spelling), including registrations made while importing the migration files.
    """
    directories = [builtin_directory(), *([extra_directory] if extra_directory is not None else [])]
    found: dict[str, dict[str, tuple[JsonObject, Path]]] = {}
    migrations: list[tuple[Path, SchemaMigrator]] = []
    for directory in directories:
        for document_type, versions in _read_schema_files(directory).items():
            found.setdefault(document_type, {}).update(versions)
        migrations.extend(_load_migrations(directory))
    try:
        registry = SchemaRegistry.from_schemas(
            {t: {v: schema for v, (schema, _) in versions.items()} for t, versions in found.items()}
        )
    except SchemaDefinitionError as error:
        schema_file = found[error.document_type][error.version][1]
        raise SchemaLoadError(f"{schema_file}: {error}") from None
    sources: list[tuple[Path | None, SchemaMigrator]] = [*migrations, (None, SchemaMigrator.default())]
    for file, migrator in sources:
        origin = file or "SchemaMigrator.register_migration (the process-wide default)"
        for document_type, source, target in migrator.edges():
            for version in (source, target):
                if not registry.has(document_type, version):
                    raise SchemaLoadError(
                        f"{origin}: migration {document_type} {source}->{target} refers to version {version}, "
                        f"which has no schema file; add {document_type}/{version}.json or remove the migration"
                    )
    return registry, SchemaMigrator.default().merged(*(migrator for _, migrator in migrations))


def _read_schema_files(path: Path) -> dict[str, dict[str, tuple[JsonObject, Path]]]:
    if not path.is_dir():
        raise SchemaLoadError(f"schema directory {path} does not exist; fix schemas.directory")
    found: dict[str, dict[str, tuple[JsonObject, Path]]] = {}
    for file in sorted(path.glob("*/*.json")):
        if file.parent.name.startswith((".", "_")) or not file.is_file():
            continue
        try:
            schema = json.loads(file.read_text(encoding="utf-8"))
        except json.JSONDecodeError as error:
            raise SchemaLoadError(
                f"{file}: not valid JSON (line {error.lineno}, column {error.colno}: {error.msg}); fix the file"
            ) from None
        except (UnicodeDecodeError, OSError) as error:
            raise SchemaLoadError(f"{file}: cannot be read ({_one_line(error)}); save it as UTF-8 JSON") from None
        if not isinstance(schema, dict):
            raise SchemaLoadError(f"{file}: a schema must be a JSON object, not {type(schema).__name__}")
        found.setdefault(file.parent.name, {})[file.stem] = (schema, file)
    return found


def _load_migrations(path: Path) -> list[tuple[Path, SchemaMigrator]]:
    """Each ``<type>/migrations.py``'s registrations, in its own migrator so errors can name the file."""
    loaded = []
    for file in sorted(path.glob("*/migrations.py")):
        if file.parent.name.startswith((".", "_")):
            continue
        # A unique name per file: two types' migrations.py must not replace each other in sys.modules.
        name = "connector_migrations_" + hashlib.sha1(str(file.resolve()).encode()).hexdigest()[:12]
        spec = importlib.util.spec_from_file_location(name, file)
        if spec is None or spec.loader is None:
            raise SchemaLoadError(f"{file}: cannot be imported as a Python module")
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module  # dataclasses and pickling look modules up there
        try:
            spec.loader.exec_module(module)
        except Exception as error:
            del sys.modules[name]
            raise SchemaLoadError(f"{file}: failed to import ({_one_line(error)}); fix the module") from None
        register = getattr(module, "register", None)
        if not callable(register):
            raise SchemaLoadError(
                f"{file}: defines no register(migrator) function; add one that registers its migrations"
            )
        migrator = SchemaMigrator()
        try:
            register(migrator)
        except Exception as error:
            raise SchemaLoadError(f"{file}: register() raised {_one_line(error)}; fix the module") from None
        loaded.append((file, migrator))
    return loaded


def _one_line(error: BaseException) -> str:
    return " ".join(f"{type(error).__name__}: {error}".split())
