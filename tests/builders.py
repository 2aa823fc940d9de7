"""Our own change-event fixtures, built the way pymongo yields them (real bson types).

Tests build exactly the event they need instead of depending on the shared corpus, which users'
clones do not have. Tokens increase with a counter so order checks are meaningful.
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime
from typing import Any

from bson import ObjectId, Timestamp

_counter = itertools.count(1)
BASE_SECONDS = 1_735_689_600  # 2025-01-01T00:00:00Z


def token(n: int | None = None) -> dict[str, Any]:
    n = next(_counter) if n is None else n
    return {"_data": f"82{BASE_SECONDS + n:08X}{n:08X}2B042C0100296E5A1004{n:032X}04"}


def inventory_doc(**overrides: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "_id": ObjectId("65f1a2b3c4d5e6f708192a3b"),
        "_schema_version": "v1",
        "product_id": "PRD-1",
        "warehouse_id": "WH-BER-01",
        "quantity": 5,
        "last_updated": "2025-01-01T00:00:00.000Z",
    }
    doc.update(overrides)
    return {k: v for k, v in doc.items() if v is not _DROP}


_DROP = object()
DROP = _DROP


def change(
    operation: str,
    *,
    n: int | None = None,
    db: str = "warehouse",
    coll: str | None = "inventory",
    document: dict[str, Any] | object | None = _DROP,
    document_key: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    n = next(_counter) if n is None else n
    event: dict[str, Any] = {
        "_id": token(n),
        "operationType": operation,
        "clusterTime": Timestamp(BASE_SECONDS + n, 1),
        "wallTime": datetime.fromtimestamp(BASE_SECONDS + n, tz=UTC).replace(tzinfo=None),
    }
    if document is not _DROP:
        event["fullDocument"] = document
    if coll is not None or db:
        event["ns"] = {"db": db, "coll": coll} if coll is not None else {"db": db}
    if operation in {"insert", "update", "replace", "delete"}:
        key_id = document["_id"] if isinstance(document, dict) and "_id" in document else ObjectId()
        event["documentKey"] = document_key or {"_id": key_id}
    event.update(extra)
    return event
