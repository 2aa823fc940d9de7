"""Splitting one hot collection across instances: which *stream unit* owns which change event.

One change stream per database is one worker's ceiling. ``streams[].partitions: N`` splits a
collection's document events by a hash of ``documentKey._id`` into N units, each with its own
change stream (filtered server-side), resume token and lease, so N + 1 instances share the load.
The *base unit* (stream id = the database name, as without partitions) keeps everything else: the
unpartitioned collections, events without a document key (DDL of any configured collection,
``dropDatabase``) and ``invalidate``, which every unit receives because it ends every stream.

A document always hashes to the same unit, so its events stay in order (CONTRACT §1); events of
different documents in different units have no relative order, which CONTRACT §1 never promised.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from attrs import frozen

from domain.change_event import ChangeEvent, OperationKind
from domain.envelope import bucket_of
from domain.json_types import JsonValue

MAX_PARTITIONS = 64


@frozen
class Partition:
    """Documents of ``collection`` whose ``_id`` hashes to ``index`` modulo ``count``."""

    collection: str
    index: int
    count: int


@frozen
class StreamUnit:
    """One change stream with its own token and lease. ``partition`` None = the database's base unit."""

    stream_id: str
    database: str
    partition: Partition | None
    unpartitioned: tuple[str, ...]  # the collections whose every event this (base) unit owns
    partitioned: tuple[str, ...]  # the collections split into partition units

    def inherits_from(self, stream_id: str) -> bool:
        """Whether a partition unit that has never checkpointed starts no later than ``stream_id``'s
        position: the base unit's, and every *other* split of its collection (its siblings in this
        split have positions of their own). Going from 1 to N partitions, or from N to M, so re-reads
        a little and loses nothing."""
        partition = self.partition
        if partition is None:
            return False
        if stream_id == self.database:
            return True
        prefix = f"{self.database}.{partition.collection}.p"
        return stream_id.startswith(prefix) and not stream_id.endswith(f"of{partition.count}")

    def owns(self, event: ChangeEvent) -> bool:
        """Client-side twin of the server-side filter (for the file and simulated sources)."""
        if event.kind is OperationKind.INVALIDATE:
            return True
        partition = self.partition
        key = event.document_key
        has_id = key is not None and "_id" in key
        if partition is None:
            if event.collection is None:
                return True  # dropDatabase and the like: database-wide
            if event.collection in self.partitioned:
                return not has_id
            return event.collection in self.unpartitioned
        if event.collection != partition.collection or not has_id:
            return False
        assert key is not None
        return partition_of(key["_id"], partition.count) == partition.index


def partition_stream_id(database: str, partition: Partition) -> str:
    return f"{database}.{partition.collection}.p{partition.index}of{partition.count}"


def plan_units(*, database: str, partitions: Iterable[tuple[str, int]]) -> tuple[StreamUnit, ...]:
    """The base unit first, then each partitioned collection's units in index order.

    ``partitions`` is ``(collection, count)`` per configured stream; count 1 = not partitioned.
    """
    pairs = list(partitions)
    unpartitioned = tuple(collection for collection, count in pairs if count == 1)
    partitioned = tuple(collection for collection, count in pairs if count > 1)
    units = [StreamUnit(database, database, None, unpartitioned, partitioned)]
    for collection, count in pairs:
        for index in range(count if count > 1 else 0):
            partition = Partition(collection=collection, index=index, count=count)
            units.append(
                StreamUnit(partition_stream_id(database, partition), database, partition, unpartitioned, partitioned)
            )
    return tuple(units)


def plan_id(units: Sequence[StreamUnit]) -> str:
    """Names a partition plan: its database and each split collection's count, e.g.
    ``warehouse|inventory=3``. Units of one plan agree on it; changing any count makes a new plan."""
    counts = sorted({(u.partition.collection, u.partition.count) for u in units if u.partition is not None})
    return units[0].database + "".join(f"|{collection}={count}" for collection, count in counts)


def taken_over_by(units: Sequence[StreamUnit], stream_id: str) -> bool:
    """Whether ``stream_id``'s checkpoint is one a unit of this plan takes over from (see
    :meth:`StreamUnit.inherits_from`): a position written under the previous plan."""
    return any(unit.inherits_from(stream_id) for unit in units)


def partition_of(document_id: JsonValue, count: int) -> int:
    """Client-side partition of a document ``_id``: the ordering-key bucket of ``{"_id": id}`` modulo
    ``count``. So with ``ordering_buckets`` a multiple of ``count`` and a document key of only
    ``_id``, no two units publish to the same ordering key. (MongoDB's server-side split uses
    ``$toHashedIndexKey`` instead, which has no Python twin; each side is only ever compared with itself.)"""
    return bucket_of({"_id": document_id}, count)
