"""MongoStore against the local stack's MongoDB-wire server (FerretDB; real MongoDB in prod)."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator

import pytest
from pydantic import SecretStr

from vigie_localstack.settings import StackSettings
from vigie_stores import Outcome, StoreConflict, StoreRejected, VersionedDocuments
from vigie_stores.mongo import IndexSpec, MongoConfig, MongoStore, VersionedDoc
from vigie_stores.testing import throwaway_mongo

pytestmark = pytest.mark.integration


@pytest.fixture
async def mongo(stack: StackSettings, unique: str) -> AsyncIterator[MongoStore]:
    url = SecretStr(f"mongodb://{stack.host}:{stack.mongo_port}")
    config = MongoConfig(url=url, database=f"t_{unique}")
    async with throwaway_mongo(config) as store:
        yield store


def test_satisfies_the_interface(mongo: MongoStore) -> None:
    store: VersionedDocuments = mongo  # checked by mypy
    assert store is mongo


async def test_an_older_version_after_a_newer_one_is_a_no_op(mongo: MongoStore) -> None:
    assert await mongo.upsert_versioned("customers", "c1", {"name": "new"}, 5) is Outcome.APPLIED
    assert await mongo.upsert_versioned("customers", "c1", {"name": "old"}, 3) is Outcome.STALE
    assert await mongo.upsert_versioned("customers", "c1", {"name": "same"}, 5) is Outcome.STALE
    assert await mongo.get("customers", "c1") == {"_id": "c1", "name": "new", "_version": 5}
    assert await mongo.upsert_versioned("customers", "c1", {"tier": "gold"}, 6) is Outcome.APPLIED
    # A replace, not a merge: a CDC change carries the whole row.
    assert await mongo.get("customers", "c1") == {"_id": "c1", "tier": "gold", "_version": 6}


async def test_a_delete_keeps_a_tombstone_so_a_late_older_upsert_stays_deleted(
    mongo: MongoStore,
) -> None:
    await mongo.upsert_versioned("cards", 42, {"last4": "4242"}, 10)
    assert await mongo.delete_versioned("cards", 42, 12) is Outcome.APPLIED
    assert await mongo.upsert_versioned("cards", 42, {"last4": "0000"}, 11) is Outcome.STALE
    assert await mongo.delete_versioned("cards", 42, 11) is Outcome.STALE
    assert await mongo.get("cards", 42) is None
    assert await mongo.get("cards", 42, include_deleted=True) == {
        "_id": 42,
        "_version": 12,
        "_deleted": True,
    }
    assert await mongo.find("cards") == []
    # A newer change after the delete re-creates the entity (the id was reused upstream).
    assert await mongo.upsert_versioned("cards", 42, {"last4": "1111"}, 13) is Outcome.APPLIED
    assert (await mongo.get("cards", 42) or {}).get("last4") == "1111"


async def test_an_out_of_order_batch_ends_at_the_newest_version(mongo: MongoStore) -> None:
    rng = random.Random(7)
    items = [VersionedDoc(f"m{i}", v, {"v": v}) for i in range(50) for v in range(1, 6)]
    items.append(VersionedDoc("gone", 2, None))
    items.append(VersionedDoc("gone", 1, {"v": 1}))
    rng.shuffle(items)

    result = await mongo.write_many_versioned("merchants", items)

    assert result.applied == 51
    assert len(result.stale) == 50 * 4 + 1
    docs = await mongo.find("merchants", sort=[("_id", 1)])
    assert len(docs) == 50
    assert {doc["v"] for doc in docs} == {5}
    assert {doc["_version"] for doc in docs} == {5}
    assert await mongo.get("merchants", "gone") is None


async def test_a_batch_over_stored_documents_only_replaces_older_ones(mongo: MongoStore) -> None:
    await mongo.write_many_versioned(
        "tx", [VersionedDoc(i, 10, {"status": "created"}) for i in range(200)]
    )
    # Even ids move forward, odd ids are replays of an older position.
    second = [VersionedDoc(i, 11 if i % 2 == 0 else 9, {"status": "settled"}) for i in range(200)]
    second += [VersionedDoc(i, 1, {"status": "new"}) for i in range(200, 300)]

    result = await mongo.write_many_versioned("tx", second)

    assert result.applied == 100 + 100
    assert sorted(result.stale) == list(range(1, 200, 2))  # type: ignore[type-var]
    settled = await mongo.find("tx", {"status": "settled"})
    assert sorted(doc["_id"] for doc in settled) == list(range(0, 200, 2))
    assert len(await mongo.find("tx")) == 300
    # A full replay changes nothing.
    again = await mongo.write_many_versioned("tx", second)
    assert again.applied == 0 and len(again.stale) == 300


async def test_indexes_are_ensured_idempotently(mongo: MongoStore) -> None:
    specs = [
        IndexSpec(keys=(("email", 1),), unique=True),
        IndexSpec(keys=(("merchant_id", 1), ("created_at", -1)), name="by_merchant_time"),
    ]
    first = await mongo.ensure_indexes("customers", specs)
    second = await mongo.ensure_indexes("customers", specs)
    assert first == second == ["email_1", "by_merchant_time"]
    indexes = [ix async for ix in await mongo.database["customers"].list_indexes()]
    assert {ix["name"] for ix in indexes} == {"_id_", "email_1", "by_merchant_time"}

    with pytest.raises(StoreRejected, match="other options"):
        await mongo.ensure_indexes("customers", [IndexSpec(keys=(("email", 1),), unique=False)])


async def test_a_unique_index_violation_is_a_conflict(mongo: MongoStore) -> None:
    await mongo.ensure_indexes("customers", [IndexSpec(keys=(("email", 1),), unique=True)])
    await mongo.upsert_versioned("customers", "a", {"email": "x@example.com"}, 1)

    with pytest.raises(StoreConflict) as single:
        await mongo.upsert_versioned("customers", "b", {"email": "x@example.com"}, 1)
    assert single.value.keys == ("b",)
    assert not single.value.retryable

    # In a batch, the clashing items are named; the others are applied.
    await mongo.upsert_versioned("customers", "e", {"email": "e@example.com"}, 1)
    await mongo.upsert_versioned("customers", "f", {"email": "f@example.com"}, 1)
    batch = [
        VersionedDoc("c", 1, {"email": "c@example.com"}),  # new id: inserted
        VersionedDoc("d", 1, {"email": "x@example.com"}),  # new id, e-mail taken by "a"
        VersionedDoc("e", 2, {"email": "x@example.com"}),  # stored id, e-mail taken by "a"
        VersionedDoc("f", 2, {"email": "f2@example.com"}),  # stored id: replaced
    ]
    with pytest.raises(StoreConflict) as many:
        await mongo.write_many_versioned("customers", batch)
    assert sorted(many.value.keys) == ["d", "e"]  # type: ignore[type-var]
    assert (await mongo.get("customers", "c") or {}).get("email") == "c@example.com"
    assert (await mongo.get("customers", "f") or {}).get("email") == "f2@example.com"
    assert (await mongo.get("customers", "e") or {}).get("_version") == 1
    assert await mongo.get("customers", "d") is None


async def test_reserved_fields_and_mismatched_ids_are_refused(mongo: MongoStore) -> None:
    with pytest.raises(ValueError, match="reserved"):
        await mongo.upsert_versioned("c", "x", {"_version": 3}, 1)
    with pytest.raises(ValueError, match="differs"):
        await mongo.upsert_versioned("c", "x", {"_id": "y"}, 1)


async def test_a_bulk_of_thousands_round_trips(mongo: MongoStore) -> None:
    items = [VersionedDoc(f"k{i:05d}", 1, {"n": i, "pad": "x" * 64}) for i in range(3000)]
    result = await mongo.write_many_versioned("bulk", items)
    assert result.applied == 3000
    assert len(await mongo.find("bulk", {"n": {"$lt": 1000}})) == 1000
    assert len(await mongo.find("bulk", limit=10)) == 10


async def test_insert_many_once_keeps_the_first_write_of_each_id(mongo: MongoStore) -> None:
    first = [VersionedDoc(f"e{i}", 1, {"n": i}) for i in range(70)]  # several bulk chunks
    result = await mongo.insert_many_once("events", first)
    assert (result.applied, result.stale) == (70, ())
    # a retry overlapping what was written: the stored documents stay, the new ones go in
    retry = [VersionedDoc(f"e{i}", 2, {"n": -i}) for i in range(60, 80)]
    retry.append(VersionedDoc("e79", 3, {"n": 0}))  # twice in one batch: the first counts
    again = await mongo.insert_many_once("events", retry)
    assert again.applied == 10
    assert set(again.stale) == {f"e{i}" for i in range(60, 70)} | {"e79"}
    assert len(again.stale) == 11
    assert await mongo.get("events", "e65") == {"_id": "e65", "n": 65, "_version": 1}
    assert await mongo.get("events", "e79") == {"_id": "e79", "n": -79, "_version": 2}
    assert len(await mongo.find("events")) == 80
    with pytest.raises(ValueError, match="deletes"):
        await mongo.insert_many_once("events", [VersionedDoc("e1", 4, None)])
