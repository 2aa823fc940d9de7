"""The document types that ship with the connector. Types are open: any ``str`` names a type, and
users add types by dropping schema files in ``schemas.directory``."""

from __future__ import annotations

import enum


class DocumentType(enum.StrEnum):
    """The built-in types, for code that names them; members are ``str``, so every API accepts either."""

    INVENTORY = "inventory"
    TRANSACTION = "transaction"
