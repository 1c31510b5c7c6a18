"""The MongoDB wire protocol (FerretDB 1.x locally) through PyMongo's async API.

Only the subset vigie's stores rely on, which FerretDB 1.x and real MongoDB both support: inserts,
upserts with ``$set``/``$setOnInsert``, filtered and sorted finds, unique indexes, bulk upserts,
``find_one_and_update`` and the version-guarded upsert that keeps replays from going back in time.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pymongo import ASCENDING, DESCENDING, AsyncMongoClient, ReturnDocument, UpdateOne
from pymongo.asynchronous.collection import AsyncCollection
from pymongo.asynchronous.database import AsyncDatabase
from pymongo.errors import DuplicateKeyError

from vigie_localstack.settings import StackSettings

pytestmark = pytest.mark.integration

Doc = dict[str, Any]


@pytest.fixture
async def client(stack: StackSettings) -> AsyncIterator[AsyncMongoClient[Doc]]:
    mongo: AsyncMongoClient[Doc] = AsyncMongoClient(
        stack.host, stack.mongo_port, directConnection=True, serverSelectionTimeoutMS=5000
    )
    try:
        yield mongo
    finally:
        await mongo.close()


@pytest.fixture
async def db(client: AsyncMongoClient[Doc], unique: str) -> AsyncIterator[AsyncDatabase[Doc]]:
    """A database of this test's own, dropped afterwards."""
    database = client[f"test_{unique}"]
    try:
        yield database
    finally:
        await client.drop_database(database.name)


async def test_server_answers_and_is_dropped_cleanly(
    client: AsyncMongoClient[Doc], unique: str
) -> None:
    assert (await client.admin.command("ping"))["ok"] == 1.0
    info = await client.server_info()
    # Drivers pick features by the reported MongoDB version; FerretDB 1.x claims 7.0.
    assert int(info["version"].split(".")[0]) >= 6
    name = f"test_{unique}"
    await client[name]["probe"].insert_one({"_id": 1})
    assert name in await client.list_database_names()
    await client.drop_database(name)
    assert name not in await client.list_database_names()


async def test_insert_and_find_with_filter_and_sort(db: AsyncDatabase[Doc]) -> None:
    tx = db["transactions"]
    docs = [
        {"_id": f"t{i}", "customer_id": f"c{i % 3}", "amount": 10 * i, "currency": "EUR"}
        for i in range(12)
    ]
    result = await tx.insert_many(docs)
    assert result.inserted_ids == [d["_id"] for d in docs]
    cursor = tx.find(
        {"customer_id": "c1", "amount": {"$gte": 40}},
        projection={"_id": 1, "amount": 1},
    ).sort([("amount", DESCENDING)])
    rows = await cursor.to_list()
    assert rows == [{"_id": "t10", "amount": 100}, {"_id": "t7", "amount": 70},
                    {"_id": "t4", "amount": 40}]
    assert await tx.count_documents({"currency": "EUR"}) == 12
    assert await tx.find_one({"_id": "missing"}) is None


async def test_upsert_sets_fields_and_keeps_insert_only_ones(db: AsyncDatabase[Doc]) -> None:
    customers = db["customers"]
    created = datetime(2026, 1, 1, tzinfo=UTC)
    first = await customers.update_one(
        {"_id": "cust-1"},
        {"$set": {"email_hash": "a1", "country": "FR"}, "$setOnInsert": {"created_at": created}},
        upsert=True,
    )
    assert first.upserted_id == "cust-1"
    assert first.matched_count == 0
    second = await customers.update_one(
        {"_id": "cust-1"},
        {"$set": {"country": "DE"}, "$setOnInsert": {"created_at": datetime(2030, 1, 1)}},
        upsert=True,
    )
    assert second.upserted_id is None
    assert (second.matched_count, second.modified_count) == (1, 1)
    stored = await customers.find_one({"_id": "cust-1"})
    assert stored is not None
    assert stored["country"] == "DE"
    assert stored["email_hash"] == "a1"
    # $setOnInsert applied only by the first write (BSON dates come back naive, in UTC).
    assert stored["created_at"] == created.replace(tzinfo=None)


async def test_unique_index_rejects_duplicate_keys(db: AsyncDatabase[Doc]) -> None:
    events = db["fraud_events"]
    name = await events.create_index([("event_id", ASCENDING)], unique=True)
    info = await events.index_information()
    assert info[name]["unique"] is True
    await events.insert_one({"event_id": "e-1", "score": 0.9})
    with pytest.raises(DuplicateKeyError):
        await events.insert_one({"event_id": "e-1", "score": 0.1})
    assert await events.count_documents({}) == 1
    assert (await events.find_one({"event_id": "e-1"}) or {})["score"] == 0.9


async def test_bulk_write_of_upserts_is_idempotent_on_replay(db: AsyncDatabase[Doc]) -> None:
    mirror = db["merchants"]
    ops = [
        UpdateOne({"_id": f"m{i}"}, {"$set": {"name": f"shop {i}", "mcc": 5411 + i}}, upsert=True)
        for i in range(25)
    ]
    first = await mirror.bulk_write(ops, ordered=False)
    assert first.upserted_count == 25
    assert first.matched_count == 0
    # A replay after a crash or rebalance: same writes, no new documents, nothing modified.
    replay = await mirror.bulk_write(ops, ordered=False)
    assert replay.upserted_count == 0
    assert replay.matched_count == 25
    assert replay.modified_count == 0
    assert await mirror.count_documents({}) == 25
    assert (await mirror.find_one({"_id": "m24"}) or {})["mcc"] == 5435


async def test_find_one_and_update_returns_the_document(db: AsyncDatabase[Doc]) -> None:
    alerts = db["alerts"]
    await alerts.insert_one({"_id": "a-1", "state": "open", "hits": 1})
    before = await alerts.find_one_and_update(
        {"_id": "a-1", "state": "open"}, {"$set": {"state": "acked"}, "$inc": {"hits": 1}}
    )
    assert before == {"_id": "a-1", "state": "open", "hits": 1}
    after = await alerts.find_one_and_update(
        {"_id": "a-1"}, {"$inc": {"hits": 5}}, return_document=ReturnDocument.AFTER
    )
    assert after == {"_id": "a-1", "state": "acked", "hits": 7}
    # Acknowledging twice finds nothing to update: the filter still guards the state change.
    assert await alerts.find_one_and_update(
        {"_id": "a-1", "state": "open"}, {"$set": {"state": "acked"}}
    ) is None
    created = await alerts.find_one_and_update(
        {"_id": "a-2"}, {"$setOnInsert": {"state": "open", "hits": 0}},
        upsert=True, return_document=ReturnDocument.AFTER,
    )
    assert created == {"_id": "a-2", "state": "open", "hits": 0}


async def guarded_upsert(coll: AsyncCollection[Doc], key: str, version: int, fields: Doc) -> bool:
    """Write ``fields`` at ``version`` unless the stored document is as new or newer.

    The filter only matches an older document; when there is a newer (or equal) one the upsert tries
    to insert a second document with the same ``_id`` and fails with a duplicate key. That error can
    also come from a concurrent first insert, so retry once as a plain update before calling the
    write stale. Returns whether the write was applied.
    """
    update = {"$set": {**fields, "version": version}}
    guard = {"_id": key, "version": {"$lt": version}}
    try:
        await coll.update_one(guard, update, upsert=True)
    except DuplicateKeyError:
        return (await coll.update_one(guard, update)).matched_count == 1
    return True


async def test_version_guarded_upsert_never_goes_back_in_time(db: AsyncDatabase[Doc]) -> None:
    mirror = db["transactions"]
    assert await guarded_upsert(mirror, "tx-1", 1, {"status": "pending"})
    assert await guarded_upsert(mirror, "tx-1", 3, {"status": "captured"})
    # Late and replayed events: an older version and the same version again are both ignored.
    assert not await guarded_upsert(mirror, "tx-1", 2, {"status": "authorized"})
    assert not await guarded_upsert(mirror, "tx-1", 3, {"status": "replayed"})
    assert await mirror.find_one({"_id": "tx-1"}) == {
        "_id": "tx-1", "status": "captured", "version": 3,
    }


async def test_version_guarded_upserts_of_many_documents_run_concurrently(
    db: AsyncDatabase[Doc],
) -> None:
    # Concurrent guarded writes to the SAME document are not atomic on FerretDB 1.x (it reads,
    # applies the update in Go, then writes: seen here, 29 overwrote 30). vigie never has two
    # writers for one entity: a key lives on one partition, owned by one consumer, whose batches
    # apply in order. So the server must keep many documents apart under concurrency, and one
    # document right under out-of-order, replayed versions — which is what is asserted.
    mirror = db["cards"]
    writes = [(f"card-{n}", v) for n in range(20) for v in (1, 3, 2)]
    random.Random(7).shuffle(writes)
    by_card: dict[str, list[int]] = {}
    for card, version in writes:
        by_card.setdefault(card, []).append(version)

    async def apply(card: str, versions: list[int]) -> None:
        for version in versions:
            await guarded_upsert(mirror, card, version, {"last4": f"{version:04d}"})

    await asyncio.gather(*(apply(card, versions) for card, versions in by_card.items()))
    docs = await mirror.find({}).sort("_id").to_list()
    assert len(docs) == 20
    assert all(d["version"] == 3 and d["last4"] == "0003" for d in docs)


async def test_a_lookup_by_id_uses_an_index(db: AsyncDatabase[Doc]) -> None:
    # FerretDB 1.x finds by _id with jsonb containment; the stack's GIN index must serve it,
    # in a collection created after the stack started (the event trigger's work)
    docs = db["lookups"]
    await docs.insert_many([{"_id": i, "n": i} for i in range(2_000)])

    plan = await db.command("explain", {"find": "lookups", "filter": {"_id": 1234}})

    text = str(plan)
    if "queryPlanner" in plan and "Plan" in plan["queryPlanner"]:  # FerretDB: PostgreSQL's plan
        assert "Index Scan" in text and "_id_gin" in text, text
    else:  # MongoDB: its own _id index
        assert "IDHACK" in text or "IXSCAN" in text or "EXPRESS" in text, text
    assert await docs.find_one({"_id": 1234}) == {"_id": 1234, "n": 1234}
