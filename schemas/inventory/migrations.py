"""Inventory migrations. Every ``<type>/migrations.py`` defines ``register(migrator)``."""

from __future__ import annotations

from domain.document_types import DocumentType
from domain.json_types import JsonObject
from domain.migration import SchemaMigrator


def v1_to_v2(document: JsonObject) -> JsonObject:
    """v2 adds ``reserved_quantity``; documents from before it had nothing reserved."""
    migrated = dict(document)
    migrated.setdefault("reserved_quantity", 0)
    migrated["_schema_version"] = "v2"
    return migrated


def register(migrator: SchemaMigrator) -> None:
    migrator.register_migration(DocumentType.INVENTORY, "v1", "v2", v1_to_v2)
