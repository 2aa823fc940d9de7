"""The built-in change feed: a seeded, realistic warehouse workload, as a change stream would yield it.

It backs ``connector simulate`` (JSONL on stdout), ``source: simulated`` (``make run``) and the
benchmarks, so it has to look like the real thing and be fast. Events are built directly as
canonical Extended JSON dicts (``{"$numberInt": "5"}``, ``{"$date": {"$numberLong": …}}``) in the
server's field order, as ``watch(full_document="updateLookup")`` on a database yields them:

- 80 % of events on ``inventory``, a third of those on the hottest 5 % of its keys; 20 % on
  ``transactions``. A key's first event is an insert; then updates (with ``updateDescription`` and
  the looked-up document), replaces and deletes; after a delete the key is inserted again.
- ~1 % of deletes come right after an update whose lookup found nothing (``fullDocument: null``).
- ~6 % of events are two-statement transactions (an inventory update and a sale), sharing the
  cluster time, with ``txnNumber``/``lsid`` before ``_id``.
- Documents are v1 or v2 inventory (v2 has ``reserved_quantity``) and v1 transactions, with Int64,
  datetime and Decimal128 values; ``unversioned_rate`` of them have no ``_schema_version`` (still
  valid) and ``invalid_rate`` break a rule (negative or string or 1.5 quantity, missing
  ``product_id``, ``last_updated: "yesterday"``, ``_schema_version: "v9"``, ``transaction_type: "gift"``).
- Every document carries ``seq_no``: +1 per event of its key, so consumers can check order.

Resume tokens are ``82`` + cluster time + a transaction-op index + the event number, fixed width,
so they increase as strings exactly as events are generated. Deterministic for a seed.
"""

from __future__ import annotations

import itertools
import random
import time
from collections.abc import Callable, Iterator
from typing import Any, BinaryIO

import orjson
from attrs import define, frozen

WAREHOUSES = ("WH-BER-01", "WH-HAM-02", "WH-MUC-03", "WH-MIL-01", "WH-LYS-02", "WH-MAD-04")
CATEGORIES = ("electronics", "tools", "home", "garden", "toys", "office")
BRANDS = ("Voltix", "Nordhaus", "Müller & Söhne", "Acme", "Kōgu", "Brightline")
INVALID_INVENTORY = ("negative", "string", "fraction", "no_product", "yesterday", "v9")
COLLECTION_UUIDS = {"inventory": "A3D9E1C27B644E0F8D2A5C6B7E8F9A03", "transactions": "F0E1D2C3B4A5469788796A5B4C3D2E1F"}


@frozen
class WorkloadSpec:
    seed: int = 7
    count: int | None = None
    documents: int = 1000
    invalid_rate: float = 0.02
    unversioned_rate: float = 0.05
    database: str = "warehouse"
    start_seconds: int = 1_735_689_600
    events_per_second: int = 50


@define
class _Key:
    collection: str
    oid: str
    number: int
    exists: bool = False
    seq_no: int = 0
    version: str = "v1"


def _int(value: int) -> dict[str, str]:
    return {"$numberInt": str(value)}


def _long(value: int) -> dict[str, str]:
    return {"$numberLong": str(value)}


def _date(ms: int) -> dict[str, dict[str, str]]:
    return {"$date": {"$numberLong": str(ms)}}


def token_of(event: dict[str, Any]) -> str:
    return str(event["_id"]["_data"])


class _Generator:
    def __init__(self, spec: WorkloadSpec) -> None:
        self.spec = spec
        self.rng = random.Random(spec.seed)
        inventory = max(1, int(spec.documents * 0.8))
        transactions = max(1, spec.documents - inventory)
        self.inventory = [self._key("inventory", n) for n in range(inventory)]
        self.transactions = [self._key("transactions", inventory + n) for n in range(transactions)]
        self.hot = max(1, inventory // 20)
        self.number = 0
        self.txn_number = 0

    def _key(self, collection: str, n: int) -> _Key:
        oid = f"{self.spec.start_seconds - 86_400 + n:08x}e1d2c3b4{n:08x}"
        return _Key(collection=collection, oid=oid, number=n)

    # ---------------------------------------------------------------- time and tokens

    def _clock(self) -> tuple[int, int]:
        per_second = self.spec.events_per_second
        return self.spec.start_seconds + self.number // per_second, self.number % per_second + 1

    def _envelope(self, key: _Key, operation: str, t: int, i: int, op_index: int) -> dict[str, Any]:
        data = (
            f"82{t:08X}{i:08X}2B04{op_index:04X}2C0100296E5A1004{COLLECTION_UUIDS[key.collection]}"
            f"46{self.number:012X}645F6964006464{key.oid.upper()}000004"
        )
        self.number += 1
        wall_ms = t * 1000 + (i * 37) % 1000
        return {
            "_id": {"_data": data},
            "operationType": operation,
            "clusterTime": {"$timestamp": {"t": t, "i": i}},
            "wallTime": _date(wall_ms),
        }

    # ---------------------------------------------------------------- documents

    def _inventory_document(self, key: _Key, wall_ms: int) -> dict[str, Any]:
        rng = self.rng
        n = key.number
        quantity = rng.randrange(0, 500)
        document: dict[str, Any] = {
            "_id": {"$oid": key.oid},
            "_schema_version": key.version,
            "product_id": f"PRD-{10000 + n:05d}",
            "warehouse_id": WAREHOUSES[n % len(WAREHOUSES)],
            "quantity": _long(quantity) if n % 3 == 0 else _int(quantity),
            "last_updated": _date(wall_ms) if n % 2 else f"{_iso(wall_ms)}",
            "category": CATEGORIES[n % len(CATEGORIES)],
            "brand": BRANDS[n % len(BRANDS)],
            "sku": f"SKU-{10000 + n:05d}",
            "threshold_min": _int(10),
            "threshold_max": _int(400),
        }
        if key.version == "v2":
            document["reserved_quantity"] = _int(rng.randrange(0, 20))
        if n % 4 == 0:
            document["unit_price"] = {"$numberDecimal": f"{rng.randrange(100, 99_999) / 100:.2f}"}
        return document

    def _transaction_document(self, key: _Key, wall_ms: int) -> dict[str, Any]:
        rng = self.rng
        n = key.number
        kind = rng.choice(("sale", "sale", "sale", "restock", "return", "adjustment"))
        quantity = rng.randrange(1, 20) * (-1 if kind == "adjustment" and rng.random() < 0.5 else 1)
        document: dict[str, Any] = {
            "_id": {"$oid": key.oid},
            "_schema_version": "v1",
            "transaction_id": f"TXN-{n:08d}",
            "product_id": f"PRD-{10000 + rng.randrange(self.spec.documents):05d}",
            "warehouse_id": WAREHOUSES[n % len(WAREHOUSES)],
            "quantity": _int(quantity),
            "transaction_type": kind,
            "timestamp": _date(wall_ms) if n % 2 else _iso(wall_ms),
        }
        if kind == "sale":
            document["order_id"] = f"ORD-{rng.randrange(10**7):07d}"
            document["customer_id"] = f"CUS-{rng.randrange(10**6):06d}"
        return document

    def _document(self, key: _Key, wall_ms: int) -> dict[str, Any]:
        key.seq_no += 1
        if key.collection == "inventory":
            document = self._inventory_document(key, wall_ms)
        else:
            document = self._transaction_document(key, wall_ms)
        rng = self.rng
        if rng.random() < 0.5:
            document["correlation_id"] = f"req-{key.number:05d}-{key.seq_no:04d}"
        draw = rng.random()
        if draw < self.spec.invalid_rate:
            self._break(document, key)
        elif draw < self.spec.invalid_rate + self.spec.unversioned_rate:
            del document["_schema_version"]
        document["seq_no"] = _int(key.seq_no)
        return document

    def _break(self, document: dict[str, Any], key: _Key) -> None:
        if key.collection == "transactions":
            document["transaction_type" if self.rng.random() < 0.5 else "quantity"] = (
                "gift" if self.rng.random() < 0.5 else "12"
            )
            return
        kind = self.rng.choice(INVALID_INVENTORY)
        if kind == "negative":
            document["quantity"] = _int(-self.rng.randrange(1, 50))
        elif kind == "string":
            document["quantity"] = "12"
        elif kind == "fraction":
            document["quantity"] = {"$numberDouble": "1.5"}
        elif kind == "no_product":
            del document["product_id"]
        elif kind == "yesterday":
            document["last_updated"] = "yesterday"
        else:
            document["_schema_version"] = "v9"

    # ---------------------------------------------------------------- events

    def _pick(self) -> _Key:
        rng = self.rng
        if rng.random() < 0.8:
            if rng.random() < 1 / 3:
                return self.inventory[rng.randrange(self.hot)]
            return self.inventory[rng.randrange(len(self.inventory))]
        return self.transactions[rng.randrange(len(self.transactions))]

    def _event(self, key: _Key, operation: str, t: int, i: int, op_index: int = 0) -> dict[str, Any]:
        event = self._envelope(key, operation, t, i, op_index)
        wall_ms = int(event["wallTime"]["$date"]["$numberLong"])
        ns = {"db": self.spec.database, "coll": key.collection}
        document_key = {"_id": {"$oid": key.oid}}
        if operation == "delete":
            key.seq_no += 1
            key.exists = False
            event["ns"], event["documentKey"] = ns, document_key
            return event
        if operation == "insert" and key.collection == "inventory":
            key.version = "v2" if self.rng.random() < 0.5 else "v1"
        document = self._document(key, wall_ms)
        event["fullDocument"] = document
        event["ns"], event["documentKey"] = ns, document_key
        if operation == "update":
            changed = {"quantity": document.get("quantity", _int(0)), "seq_no": document["seq_no"]}
            if "last_updated" in document:
                changed["last_updated"] = document["last_updated"]
            event["updateDescription"] = {"updatedFields": changed, "removedFields": [], "truncatedArrays": []}
        key.exists = True
        return event

    def events(self) -> Iterator[dict[str, Any]]:
        rng = self.rng
        while True:
            t, i = self._clock()
            if rng.random() < 0.03:  # a sale: inventory update and transaction insert in one transaction
                yield from self._transaction(t, i)
                continue
            key = self._pick()
            if not key.exists:
                yield self._event(key, "insert", t, i)
                continue
            draw = rng.random()
            if draw < 0.01:  # the lookup ran after a delete: null fullDocument, then the delete
                event = self._envelope(key, "update", t, i, 0)
                key.seq_no += 1
                event["fullDocument"] = None
                event["ns"] = {"db": self.spec.database, "coll": key.collection}
                event["documentKey"] = {"_id": {"$oid": key.oid}}
                event["updateDescription"] = {
                    "updatedFields": {"quantity": _int(0)},
                    "removedFields": [],
                    "truncatedArrays": [],
                }
                yield event
                yield self._event(key, "delete", *self._clock())
            elif draw < 0.10:
                yield self._event(key, "delete", t, i)
            elif draw < 0.20:
                yield self._event(key, "replace", t, i)
            else:
                yield self._event(key, "update", t, i)

    def _transaction(self, t: int, i: int) -> Iterator[dict[str, Any]]:
        self.txn_number += 1
        session = f"{self.txn_number:032x}"
        lsid = {
            "id": {"$binary": {"base64": _b64(session), "subType": "04"}},
            "uid": {"$binary": {"base64": "ty6ii5etCFASEKMZcHOT6Sj8tlsvVr8oMyPcjrkkjv0=", "subType": "00"}},
        }
        inventory = self.inventory[self.rng.randrange(len(self.inventory))]
        sale = self.transactions[self.rng.randrange(len(self.transactions))]
        ops = [(inventory, "update" if inventory.exists else "insert"), (sale, "replace" if sale.exists else "insert")]
        for index, (key, operation) in enumerate(ops):
            event = self._event(key, operation, t, i, op_index=index)
            yield {"txnNumber": _long(self.txn_number), "lsid": lsid, **event}


def _iso(ms: int) -> str:
    seconds, millis = divmod(ms, 1000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{millis:03d}Z"


def _b64(hex32: str) -> str:
    import base64

    return base64.b64encode(bytes.fromhex(hex32)).decode()


def generate_events(spec: WorkloadSpec) -> Iterator[dict[str, Any]]:
    """Canonical Extended JSON change events, forever or ``spec.count`` of them."""
    events = _Generator(spec).events()
    return events if spec.count is None else itertools.islice(events, spec.count)


def write_jsonl(
    spec: WorkloadSpec,
    out: BinaryIO,
    *,
    rate: float = 0.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> int:
    """Write events as JSONL, paced to ``rate`` events/s when it is above 0; returns the count."""
    written = 0
    started = clock()
    dumps = orjson.dumps
    for event in generate_events(spec):
        out.write(dumps(event) + b"\n")
        written += 1
        if rate > 0:
            ahead = written / rate - (clock() - started)
            if ahead > 0:
                out.flush()
                sleep(ahead)
    out.flush()
    return written
