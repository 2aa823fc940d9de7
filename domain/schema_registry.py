"""Versioned JSON Schemas per document type: validate, detect a version, order versions naturally.

A compiled validator (jsonschema-rs, well under a microsecond) decides; only a failing document pays
for jsonschema's full error report (every error with its JSON Pointer). The two must agree, so both
assert ``format: date-time`` (and ``time``) by the same rules: jsonschema-rs's built-in check, which
follows RFC 3339 as the JSON Schema Test Suite reads it, and a Python copy of it for jsonschema
(``is_date_time``). jsonschema's own check (rfc3339-validator) differs: it rejects leap seconds and
year 0000 and accepts a trailing newline; and without that package it would skip the check.
"""

from __future__ import annotations

import calendar
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NoReturn

import jsonschema
import jsonschema_rs
from attrs import frozen

from domain.json_types import JsonObject

DRAFT_2020_12 = "https://json-schema.org/draft/2020-12/schema"

_DIGITS = re.compile(r"(\d+)")
_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(?:\.\d+)?(?:[Zz]|([+-])(\d{2}):(\d{2}))", re.ASCII
)
_DAYS_IN_MONTH = (31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
_LAST_MINUTE_OF_DAY = 23 * 60 + 59


class SchemaDefinitionError(ValueError):
    """A schema that is not a usable JSON Schema 2020-12 document; names the type and version."""

    def __init__(self, *, document_type: str, version: str, problem: str) -> None:
        super().__init__(f"schema {document_type} {version} {problem}; fix the schema file")
        self.document_type = document_type
        self.version = version
        self.problem = problem


class UnknownSchemaError(KeyError):
    """A type or version the registry does not have."""

    def __str__(self) -> str:  # KeyError would repr() the message, quotes and all
        return str(self.args[0]) if self.args else "unknown schema"


@frozen
class SchemaViolation:
    """One validation error: where and what.

    ``path`` is a JSON Pointer to the failing value ("" for the whole document). A missing required
    property is reported at its parent (so ``""`` for a top-level one), as JSON Schema's output
    format and the shared corpus have it; the message names the property.
    """

    path: str
    message: str


def version_key(version: str) -> tuple[Any, ...]:
    """Natural order: ``v2`` < ``v10``; digit runs compare as numbers, the rest as text."""
    return tuple(int(part) if part.isdigit() else part for part in _DIGITS.split(version))


def is_date_time(value: object) -> bool:
    """RFC 3339 ``date-time`` exactly as jsonschema-rs checks it (the JSON Schema Test Suite's reading).

    ``T``/``Z`` in either case, any number of fraction digits, offsets up to ±23:59, calendar-checked
    days, year 0000 allowed, and a leap second (``:60``) only at 23:59 UTC. Non-strings pass: a
    format applies to strings only.
    """
    if not isinstance(value, str):
        return True
    match = _DATE_TIME.fullmatch(value)
    if match is None:
        return False
    year, month, day, hour, minute, second = (int(part) for part in match.group(1, 2, 3, 4, 5, 6))
    sign, offset_hours, offset_minutes = match.group(7, 8, 9)
    offset = 0
    if sign is not None:
        if int(offset_hours) > 23 or int(offset_minutes) > 59:
            return False
        offset = (int(offset_hours) * 60 + int(offset_minutes)) * (1 if sign == "+" else -1)
    if not 1 <= month <= 12 or not 1 <= day <= _days_in_month(year, month):
        return False
    if hour > 23 or minute > 59 or second > 60:
        return False
    return second < 60 or (hour * 60 + minute - offset) % 1440 == _LAST_MINUTE_OF_DAY


def is_time(value: object) -> bool:
    """RFC 3339 ``full-time``, by the same rules as ``is_date_time``."""
    return not isinstance(value, str) or is_date_time("1970-01-01T" + value)


def _days_in_month(year: int, month: int) -> int:
    return 29 if month == 2 and calendar.isleap(year) else _DAYS_IN_MONTH[month - 1]


def _format_checker() -> jsonschema.FormatChecker:
    checker = jsonschema.FormatChecker(formats=())
    checker.checkers = dict(jsonschema.Draft202012Validator.FORMAT_CHECKER.checkers)
    checker.checks("date-time")(is_date_time)
    checker.checks("time")(is_time)
    return checker


FORMAT_CHECKER = _format_checker()
"""jsonschema's 2020-12 format checker with ``date-time`` and ``time`` made to match jsonschema-rs."""


def _pointer(parts: Iterable[object]) -> str:
    return "".join("/" + str(part).replace("~", "~0").replace("/", "~1") for part in parts)


def _refuse_remote(uri: str) -> NoReturn:
    """Schemas are self-contained: compiling one must not fetch anything over the network."""
    raise LookupError(f"remote $ref {uri} is not supported; inline it under $defs")


class _CompiledSchema:
    __slots__ = ("fast", "full", "schema")

    def __init__(self, document_type: str, version: str, schema: object) -> None:
        def broken(problem: str) -> SchemaDefinitionError:
            return SchemaDefinitionError(document_type=document_type, version=version, problem=problem)

        if not isinstance(schema, dict):
            raise broken(f"must be a JSON object, not {type(schema).__name__}")
        declared = schema.get("$schema", DRAFT_2020_12)
        if declared != DRAFT_2020_12:
            raise broken(f'declares "$schema": {declared!r}; this registry uses {DRAFT_2020_12}')
        try:
            jsonschema.Draft202012Validator.check_schema(schema)
        except jsonschema.SchemaError as error:
            where = _pointer(error.absolute_path) or "/"
            raise broken(f"is not valid JSON Schema 2020-12 at {where}: {error.message}") from None
        try:
            self.fast = jsonschema_rs.validator_for(schema, validate_formats=True, retriever=_refuse_remote)
        except ValueError as error:
            raise broken(f"does not compile: {str(error).splitlines()[0]}") from None
        self.full = jsonschema.Draft202012Validator(schema, format_checker=FORMAT_CHECKER)
        self.schema: JsonObject = schema

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
        return tuple(sorted(found, key=lambda violation: (violation.path, violation.message)))


class SchemaRegistry:
    """Schemas by type and version, compiled once; immutable after construction, so safe to share."""

    def __init__(self, compiled: Mapping[str, Mapping[str, _CompiledSchema]]) -> None:
        self._compiled = {str(t): dict(versions) for t, versions in compiled.items()}
        self._versions = {t: tuple(sorted(v, key=version_key)) for t, v in self._compiled.items()}

    @classmethod
    def from_schemas(cls, schemas: Mapping[str, Mapping[str, JsonObject]]) -> SchemaRegistry:
        """Compile ``{type: {version: schema}}``; a broken schema raises ``SchemaDefinitionError``."""
        return cls(
            {
                document_type: {
                    version: _CompiledSchema(document_type, version, schema) for version, schema in versions.items()
                }
                for document_type, versions in schemas.items()
            }
        )

    def types(self) -> tuple[str, ...]:
        return tuple(sorted(self._compiled))

    def versions(self, document_type: str) -> tuple[str, ...]:
        """Oldest first, in natural order."""
        self._type(document_type)
        return self._versions[document_type]

    def newest(self, document_type: str) -> str:
        return self.versions(document_type)[-1]

    def has(self, document_type: str, version: str) -> bool:
        return version in self._compiled.get(document_type, {})

    def schema(self, document_type: str, version: str) -> JsonObject:
        return self._get(document_type, version).schema

    def validate(self, *, document_type: str, version: str, document: JsonObject) -> tuple[SchemaViolation, ...]:
        """Every violation of ``document`` against the version's schema, sorted by path; empty when valid."""
        return self._get(document_type, version).violations(document)

    def is_valid(self, *, document_type: str, version: str, document: JsonObject) -> bool:
        return bool(self._get(document_type, version).fast.is_valid(document))

    def checker(self, *, document_type: str, version: str) -> Callable[[JsonObject], bool]:
        """The compiled validator's ``is_valid`` for one version: for callers that check many documents
        against it and want neither the look-ups nor the wrappers per document."""
        check: Callable[[JsonObject], bool] = self._get(document_type, version).fast.is_valid
        return check

    def detect_version(self, *, document_type: str, document: JsonObject) -> str | None:
        """The newest version the document satisfies when its ``_schema_version`` is ignored, else None.

        Ignoring means claiming each version in turn, so schemas need no special case for the field.
        """
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
            raise UnknownSchemaError(
                f"unknown type: no schemas for document type {document_type!r} (known: {known}); "
                "add <type>/<version>.json"
            ) from None

    def _get(self, document_type: str, version: str) -> _CompiledSchema:
        versions = self._type(document_type)
        try:
            return versions[version]
        except KeyError:
            known = ", ".join(self._versions[document_type])
            raise UnknownSchemaError(
                f"unknown version: {document_type} has no version {version!r} (known: {known})"
            ) from None
