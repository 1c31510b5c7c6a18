"""Entity mirrors in MongoDB: one collection per OLTP table, ``_id`` = the row's primary key,
``_version`` = the LSN of the change that wrote it (so a replay never rolls a document back)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from vigie_stores import Outcome
from vigie_stores.mongo import MongoStore, VersionedDoc

from ..handlers import CardRef, MirrorWrite


@dataclass(frozen=True, slots=True)
class MirrorOutcome:
    applied: int = 0
    stale: int = 0


def document_id(value: str | int) -> str | int:
    """Primary keys are bigints in the OLTP database: ``"42"`` is stored as 42."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return value


#: ``bulk``: ``write_many_versioned`` (one read of the stored versions, then bulk writes: the
#: right choice on MongoDB). ``per_document``: for FerretDB 1.x, which does not push
#: ``{_id: {$in: [...]}}`` down to its back end, so the bulk path's version read scans the whole
#: collection on every batch: an unordered bulk insert (no read), then one guarded upsert per
#: document the insert refused (already stored), a few in flight.
WriteMode = Literal["bulk", "per_document"]


class Mirrors:
    def __init__(self, store: MongoStore, mode: WriteMode = "bulk", concurrency: int = 8) -> None:
        self._store = store
        self._mode = mode
        self._concurrency = concurrency

    @property
    def store(self) -> MongoStore:
        return self._store

    async def apply(self, writes: Sequence[MirrorWrite]) -> MirrorOutcome:
        by_collection: dict[str, list[VersionedDoc]] = {}
        for write in writes:
            by_collection.setdefault(write.collection, []).append(
                VersionedDoc(write.id, write.version, write.doc)
            )
        applied = stale = 0
        for collection, items in by_collection.items():
            if self._mode == "per_document":
                done = await self._one_by_one(collection, items)
                applied += done.applied
                stale += done.stale
                continue
            outcome = await self._store.write_many_versioned(collection, items)
            applied += outcome.applied
            stale += len(outcome.stale)
        return MirrorOutcome(applied, stale)

    async def _one_by_one(self, collection: str, items: Sequence[VersionedDoc]) -> MirrorOutcome:
        newest: dict[Any, VersionedDoc] = {}
        for item in items:  # the newest version of each id in the batch wins
            if item.id not in newest or item.version > newest[item.id].version:
                newest[item.id] = item
        # A CDC stream is mostly rows seen for the first time: one unordered bulk insert takes
        # those; what it refuses is stored already and gets a guarded write of its own.
        inserted = await self._store.insert_many_once(
            collection, [item for item in newest.values() if item.doc is not None]
        )
        refused = set(inserted.stale)
        rest = [item for item in newest.values() if item.doc is None or item.id in refused]
        gate = asyncio.Semaphore(self._concurrency)

        async def one(item: VersionedDoc) -> Outcome:
            async with gate:
                if item.doc is None:
                    return await self._store.delete_versioned(collection, item.id, item.version)
                return await self._store.upsert_versioned(
                    collection, item.id, item.doc, item.version
                )

        outcomes = await asyncio.gather(*(one(item) for item in rest))
        applied = inserted.applied + sum(o is Outcome.APPLIED for o in outcomes)
        return MirrorOutcome(applied, len(items) - applied)

    async def truncate(self, collection: str, version: int) -> int:
        """Tombstone every document written before ``version`` (a TRUNCATE at that LSN)."""
        version_field = self._store.config.version_field
        found = await self._store.find(collection, {version_field: {"$lt": version}})
        items = [VersionedDoc(doc["_id"], version, None) for doc in found]
        if not items:
            return 0
        return (await self._store.write_many_versioned(collection, items)).applied

    async def customers_of(self, transaction_ids: Iterable[str]) -> dict[str, str]:
        ids = sorted({document_id(t) for t in transaction_ids}, key=str)
        if not ids:
            return {}
        docs = await self._find("transactions", ids)
        return {
            str(doc["_id"]): str(doc["customer_id"])
            for doc in docs
            if doc.get("customer_id") is not None
        }

    async def cards(self, card_ids: Iterable[str]) -> dict[str, CardRef]:
        ids = sorted({document_id(c) for c in card_ids}, key=str)
        if not ids:
            return {}
        docs = await self._find("cards", ids)
        return {
            str(doc["_id"]): CardRef(
                doc.get("card_token"), doc.get("card_bin"), doc.get("card_last4")
            )
            for doc in docs
        }

    async def _find(self, collection: str, ids: list[str | int]) -> list[dict[str, Any]]:
        if self._mode == "bulk":
            return await self._store.find(collection, {"_id": {"$in": ids}})
        gate = asyncio.Semaphore(self._concurrency)

        async def one(id: str | int) -> dict[str, Any] | None:
            async with gate:
                return await self._store.get(collection, id)

        found = await asyncio.gather(*(one(id) for id in ids))
        return [doc for doc in found if doc is not None]

    async def get(self, collection: str, id: str) -> dict[str, Any] | None:
        return await self._store.get(collection, document_id(id))
