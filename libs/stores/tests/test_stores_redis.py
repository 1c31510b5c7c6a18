"""RedisStore against the local stack's Redis."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from pydantic import SecretStr

from vigie_localstack.settings import StackSettings
from vigie_stores import HashStore, Outcome
from vigie_stores.redis import FieldValue, RedisConfig, RedisStore, VersionedHash
from vigie_stores.testing import throwaway_redis

pytestmark = pytest.mark.integration


@pytest.fixture
async def redis(stack: StackSettings, unique: str) -> AsyncIterator[RedisStore]:
    config = RedisConfig(
        url=SecretStr(f"redis://{stack.host}:{stack.redis_port}/0"), key_prefix=f"t:{unique}:"
    )
    async with throwaway_redis(config) as store:
        yield store


def test_satisfies_the_interface(redis: RedisStore) -> None:
    store: HashStore = redis  # checked by mypy
    assert store is redis


async def test_many_hashes_are_written_and_read_in_one_pipeline(redis: RedisStore) -> None:
    hashes: dict[str, dict[str, FieldValue]] = {
        f"card:{i}": {"count_1h": i, "sum_24h": i * 1.5, "mcc": "5411"} for i in range(500)
    }
    await redis.write_hashes(hashes, ttl=timedelta(minutes=5))

    found = await redis.read_hashes([*hashes, "card:missing"])

    assert len(found) == 500
    assert found["card:7"] == {"count_1h": "7", "sum_24h": "10.5", "mcc": "5411"}
    assert "card:missing" not in found
    # The prefix namespaces the keys on the server.
    assert await redis.client.exists(redis.config.key_prefix + "card:7") == 1


async def test_every_written_hash_gets_the_ttl(redis: RedisStore) -> None:
    await redis.write_hashes({"a": {"x": 1}, "b": {"y": 2}}, ttl=timedelta(seconds=90))
    for key in ("a", "b"):
        ttl = await redis.ttl(key)
        assert ttl is not None and timedelta(seconds=85) < ttl <= timedelta(seconds=90)
    await redis.write_hashes({"c": {"z": 3}})  # no TTL given, none configured
    assert await redis.ttl("c") is None


async def test_replace_drops_the_fields_merge_keeps(redis: RedisStore) -> None:
    await redis.write_hashes({"h": {"old": 1, "kept": 2}})
    await redis.write_hashes({"h": {"new": 3}})
    assert await redis.read_hash("h") == {"old": "1", "kept": "2", "new": "3"}
    await redis.write_hashes({"h": {"new": 4}}, replace=True)
    assert await redis.read_hash("h") == {"new": "4"}


async def test_an_older_versioned_write_never_overwrites_a_newer_one(redis: RedisStore) -> None:
    ttl = timedelta(minutes=1)
    assert await redis.write_versioned("f:c1", {"n": 10}, 2000, ttl=ttl) is Outcome.APPLIED
    assert await redis.write_versioned("f:c1", {"n": 9}, 1000, ttl=ttl) is Outcome.STALE
    assert await redis.write_versioned("f:c1", {"n": 8}, 2000, ttl=ttl) is Outcome.STALE
    assert await redis.read_hash("f:c1") == {"_v": "2000", "n": "10"}
    assert await redis.write_versioned("f:c1", {"m": 1}, 3000, ttl=ttl) is Outcome.APPLIED
    assert await redis.read_hash("f:c1") == {"_v": "3000", "n": "10", "m": "1"}
    remaining = await redis.ttl("f:c1")
    assert remaining is not None and remaining > timedelta(seconds=50)


async def test_an_out_of_order_versioned_batch_ends_at_the_newest(redis: RedisStore) -> None:
    rng = random.Random(3)
    items = [
        VersionedHash(f"f:{k}", {"v": v}, 1_700_000_000_000_000 + v)
        for k in range(100)
        for v in range(5)
    ]
    rng.shuffle(items)

    result = await redis.write_versioned_many(items, ttl=timedelta(minutes=1))

    assert 100 <= result.applied < 500 and result.total == 500
    found = await redis.read_hashes([f"f:{k}" for k in range(100)])
    assert {fields["v"] for fields in found.values()} == {"4"}


async def test_versioned_writes_check_their_inputs(redis: RedisStore) -> None:
    with pytest.raises(ValueError, match="2\\*\\*53"):
        await redis.write_versioned("k", {"a": 1}, 2**53)
    with pytest.raises(ValueError, match="reserved"):
        await redis.write_versioned("k", {"_v": 1}, 1)


async def test_versioned_writes_survive_a_server_that_lost_its_scripts(redis: RedisStore) -> None:
    await redis.write_versioned("h", {"x": 1}, version=1)
    await redis.client.script_flush()  # what a restarted Redis has: no scripts

    written = await redis.write_versioned_many(
        [VersionedHash("h", {"x": 2}, 2), VersionedHash("g", {"y": 1}, 1)]
    )

    assert (written.applied, written.stale) == (2, ())
    assert await redis.read_hashes(["h", "g"]) == {
        "h": {"x": "2", "_v": "2"},
        "g": {"y": "1", "_v": "1"},
    }
