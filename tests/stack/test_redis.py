"""Redis, the online feature store, through redis-py's asyncio client."""

from __future__ import annotations

import pytest
import redis.asyncio as aioredis

from vigie_localstack.settings import StackSettings

pytestmark = pytest.mark.integration


async def test_pipelined_hash_writes_and_reads(stack: StackSettings, unique: str) -> None:
    client = aioredis.Redis(host=stack.host, port=stack.redis_port, decode_responses=True)
    try:
        keys = [f"test:{unique}:customer:{i}" for i in range(50)]
        async with client.pipeline(transaction=False) as pipe:
            for i, key in enumerate(keys):
                pipe.hset(key, mapping={"tx_count_1d": i, "avg_amount_1d": i * 1.5})
                pipe.expire(key, 60)
            results = await pipe.execute()
        assert len(results) == 100
        async with client.pipeline(transaction=False) as pipe:
            for key in keys:
                pipe.hgetall(key)
            rows = await pipe.execute()
        assert rows[7] == {"tx_count_1d": "7", "avg_amount_1d": "10.5"}
        assert 0 < await client.ttl(keys[0]) <= 60
        assert await client.config_get("appendonly") == {"appendonly": "yes"}
    finally:
        await client.delete(*keys)
        await client.aclose()
