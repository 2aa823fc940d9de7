"""Where backfills read existing documents: a MongoDB collection, or a ``mongoexport`` JSONL file.

Each yields ``(key, document)`` in a stable order; ``key`` is what the backfill stores to resume: the
``_id`` as canonical Extended JSON, so a resumed MongoDB scan can query ``_id > key`` with the exact
BSON type, and a resumed file read can find its place again.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
from bson import json_util

from domain.bson_json import bson_to_json
from domain.change_event import ClusterTime
from domain.event_codec import EventDecodeError, decode_event_line
from domain.json_types import JsonObject


class SnapshotReadError(Exception):
    """A document that cannot be read, or a resume key that is not there."""


def _file_key(raw_id: Any) -> str:
    return orjson.dumps(raw_id, option=orjson.OPT_SORT_KEYS).decode()


def count_lines(path: Path) -> int:
    with path.open("rb") as handle:
        return sum(1 for line in handle if line.strip())


def file_documents(path: Path, *, after: str | None) -> Iterator[tuple[str, JsonObject]]:
    """Documents of a mongoexport file (canonical or relaxed Extended JSON), after the one keyed ``after``."""
    skipping = after is not None
    with path.open("rb") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                raw = orjson.loads(line)
                document = decode_event_line(line)
            except (orjson.JSONDecodeError, EventDecodeError) as error:
                raise SnapshotReadError(f"{path}:{number}: {error}; each line must be one document") from None
            if not isinstance(raw, dict) or "_id" not in raw:
                raise SnapshotReadError(f"{path}:{number}: a document without _id; export with mongoexport")
            key = _file_key(raw["_id"])
            if skipping:
                skipping = key != after
                continue
            yield key, document
    if skipping:
        raise SnapshotReadError(
            f"the saved position {after} is not in {path}; use the same export, or "
            "connector admin tokens reset backfill:<database>.<collection> --yes to start over"
        )


def mongo_documents(collection: Any, *, after: str | None, batch_size: int = 1000) -> Iterator[tuple[str, JsonObject]]:
    """A collection in ``_id`` order from after ``after`` (canonical Extended JSON of an ``_id``)."""
    query: dict[str, Any] = {}
    if after is not None:
        query = {"_id": {"$gt": json_util.loads(after)["_id"]}}
    for document in collection.find(query).sort("_id", 1).batch_size(batch_size):
        key = json_util.dumps({"_id": document["_id"]}, json_options=json_util.CANONICAL_JSON_OPTIONS)
        mapped = bson_to_json(document)
        assert isinstance(mapped, dict)
        yield key, mapped


def cluster_time_now(client: Any) -> ClusterTime:
    """The deployment's current cluster time (``hello``'s operationTime), taken before a scan starts."""
    hello = client.admin.command("hello")
    stamp = hello.get("operationTime") or hello.get("$clusterTime", {}).get("clusterTime")
    if stamp is None:
        raise SnapshotReadError("MongoDB reported no cluster time: is it a replica set?")
    return ClusterTime(seconds=stamp.time, increment=stamp.inc)
