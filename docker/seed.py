"""Write a steady trickle of inventory and transaction changes into the compose stack's MongoDB."""

from __future__ import annotations

import os
import random
import time
from datetime import UTC, datetime

from pymongo import MongoClient

client: MongoClient[dict[str, object]] = MongoClient(os.environ["MONGODB_URI"])
db = client.warehouse
rng = random.Random(7)
for n in range(1, 100_000):
    product = f"PRD-{rng.randrange(100):05d}"
    now = datetime.now(UTC)
    db.inventory.update_one(
        {"product_id": product, "warehouse_id": "WH-BER-01"},
        {
            "$set": {"_schema_version": "v1", "quantity": rng.randrange(0, 500), "last_updated": now},
            "$setOnInsert": {"category": "tools"},
        },
        upsert=True,
    )
    if n % 5 == 0:
        db.transactions.insert_one(
            {
                "_schema_version": "v1",
                "transaction_id": f"TXN-{n:08d}",
                "product_id": product,
                "warehouse_id": "WH-BER-01",
                "quantity": -rng.randrange(1, 5),
                "transaction_type": "sale",
                "timestamp": now,
            }
        )
    time.sleep(0.2)
