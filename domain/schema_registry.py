"""Versioned JSON Schemas per document type: validate, detect a version, order versions naturally.

Validation runs twice as fast as it needs to be *correct*: a compiled validator (jsonschema-rs,
~0.4 µs) decides, and only a failing document pays for jsonschema's full error report (every error
with its JSON Pointer). Both assert ``format: date-time``; jsonschema needs ``rfc3339-validator``
installed for that, so the registry refuses to start without it instead of silently accepting
"yesterday".
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

import jsonschema
import jsonschema_rs
from attrs import frozen

from domain.json_types import JsonObject

_DIGITS = re.compile(r"(\d+)")


class SchemaDefinitionError(ValueError):
    """A schema that is not a valid JSON Schema 2020-12 document."""


class UnknownSchemaError(KeyError):
    """A type or version the registry does not have."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "unknown schema"


@frozen
class SchemaViolation:
    """One validation error: where (a JSON Pointer to the failing value, "" for the whole document,
    as JSON Schema's own output format has it: a missing property is reported at its parent) and what."""

    path: str
    message: str


def version_key(version: str) -> tuple[Any, ...]:
    """Natural order: ``v2`` < ``v10``; digits compare as numbers, the rest as text."""
    return tuple(int(part) if part.isdigit() else part for part in _DIGITS.split(version))


def _pointer(parts: Iterable[object]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def _require_rfc3339() -> None:
    try:
        import rfc3339_validator  # noqa: F401
    except ImportError:  # pragma: no cover - a packaging error, not a runtime state
        raise SchemaDefinitionError(
            "rfc3339-validator is not installed, so jsonschema would skip format: date-time; "
            "install it (pip install rfc3339-validator)"
        ) from None


class _CompiledSchema:
    __slots__ = ("fast", "full", "schema")

    def __init__(self, document_type: str, version: str, schema: JsonObject) -> None:
        if not isinstance(schema, dict):
            raise SchemaDefinitionError(f"schema {document_type} {version} must be a JSON object")
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as error:
            where = _pointer(error.absolute_path) or "/"
            raise SchemaDefinitionError(
                f"schema {document_type} {version} is not valid JSON Schema 2020-12 at {where}: {error.message}; "
                "fix the schema file"
            ) from None
        self.schema = schema
        self.fast = jsonschema_rs.validator_for(schema, validate_formats=True)
        self.full = jsonschema.Draft202012Validator(
            schema, format_checker=jsonschema.Draft202012Validator.FORMAT_CHECKER
        )

    def violations(self, document: JsonObject) -> tuple[SchemaViolation, ...]:
        if self.fast.is_valid(document):
            return ()
        found = [
            SchemaViolation(path=_pointer(error.absolute_path), message=error.message)
            for error in self.full.iter_errors(document)
        ]
        if not found:  # the two validators disagree: report the compiled one's view, never nothing
            found = [
                SchemaViolation(path=_pointer(error.instance_path), message=error.message)
                for error in self.fast.iter_errors(document)
            ]
        return tuple(sorted(found, key=lambda v: (v.path, v.message)))


class SchemaRegistry:
    """Immutable after construction; safe to share across threads."""

    def __init__(self, compiled: Mapping[str, Mapping[str, _CompiledSchema]]) -> None:
        self._compiled = {t: dict(versions) for t, versions in compiled.items()}
        self._versions = {t: tuple(sorted(v, key=version_key)) for t, v in self._compiled.items()}

    @classmethod
    def from_schemas(cls, schemas: Mapping[str, Mapping[str, JsonObject]]) -> SchemaRegistry:
        _require_rfc3339()
        compiled = {
            document_type: {
                version: _CompiledSchema(document_type, version, schema) for version, schema in versions.items()
            }
            for document_type, versions in schemas.items()
        }
        return cls(compiled)

    def types(self) -> tuple[str, ...]:
        return tuple(sorted(self._compiled))

    def versions(self, document_type: str) -> tuple[str, ...]:
        self._type(document_type)
        return self._versions[document_type]

    def newest(self, document_type: str) -> str:
        return self.versions(document_type)[-1]

    def has(self, document_type: str, version: str) -> bool:
        return version in self._compiled.get(document_type, {})

    def schema(self, document_type: str, version: str) -> JsonObject:
        return self._get(document_type, version).schema

    def validate(self, *, document_type: str, version: str, document: JsonObject) -> tuple[SchemaViolation, ...]:
        """Every violation of ``document`` against the version's schema; empty when valid."""
        return self._get(document_type, version).violations(document)

    def is_valid(self, *, document_type: str, version: str, document: JsonObject) -> bool:
        return bool(self._get(document_type, version).fast.is_valid(document))

    def detect_version(self, *, document_type: str, document: JsonObject) -> str | None:
        """The newest version the document satisfies when its ``_schema_version`` is ignored."""
        compiled = self._type(document_type)
        for version in reversed(self._versions[document_type]):
            if compiled[version].fast.is_valid({**document, "_schema_version": version}):
                return version
        return None

    def _type(self, document_type: str) -> dict[str, _CompiledSchema]:
        try:
            return self._compiled[document_type]
        except KeyError:
            known = ", ".join(self.types()) or "none"
            raise UnknownSchemaError(f"no schemas for document type {document_type!r} (known: {known})") from None

    def _get(self, document_type: str, version: str) -> _CompiledSchema:
        versions = self._type(document_type)
        try:
            return versions[version]
        except KeyError:
            known = ", ".join(self._versions[document_type])
            raise UnknownSchemaError(f"{document_type} has no version {version!r} (known: {known})") from None
