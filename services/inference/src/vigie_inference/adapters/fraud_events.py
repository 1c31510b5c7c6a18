"""``fraud_events`` in MongoDB: one document per scored transaction (``_id`` = its id), written
in batches (FerretDB pays per command, not per document).

Each transaction is written once: plain unordered inserts, no read of stored versions first
(FerretDB runs that ``$in`` read as a collection scan that slows as the collection grows). A
duplicate id means an earlier attempt (a retry, a redelivered transaction) already wrote it: the
first document stays. The version field holds the scoring time in microseconds.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from vigie_stores.mongo import IndexSpec, MongoStore, VersionedDoc

INDEXES = (
    IndexSpec(keys=(("customer_id", 1), ("occurred_at", -1)), name="by_customer"),
    IndexSpec(keys=(("decision", 1), ("occurred_at", -1)), name="by_decision"),
)


class FraudEvents:
    def __init__(self, store: MongoStore, collection: str) -> None:
        self.store = store
        self.collection = collection

    async def ensure_indexes(self) -> None:
        await self.store.ensure_indexes(self.collection, INDEXES)

    async def write(self, docs: Sequence[tuple[str, int, dict[str, Any]]]) -> int:
        """(transaction id, version, document); returns how many were new."""
        if not docs:
            return 0
        outcome = await self.store.insert_many_once(
            self.collection, [VersionedDoc(tx, version, doc) for tx, version, doc in docs]
        )
        return outcome.applied

    async def get(self, transaction_id: str) -> dict[str, Any] | None:
        return await self.store.get(self.collection, transaction_id)
