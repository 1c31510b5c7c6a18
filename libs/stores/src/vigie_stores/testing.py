"""Test helpers shipped with the library: throwaway keyspaces, databases and key spaces.

Each helper creates a uniquely named place on a real server and removes it afterwards, so tests
(of this library and of the services) can run in parallel and leave nothing behind.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager

from .cassandra import CassandraStore
from .mongo import MongoConfig, MongoStore
from .redis import RedisConfig, RedisStore


@asynccontextmanager
async def throwaway_keyspace(
    store: CassandraStore, keyspace: str, statements: Sequence[str] = ()
) -> AsyncIterator[str]:
    """Create ``keyspace`` (single-node replication) with ``statements``; drop it afterwards."""
    await store.ensure_schema(keyspace, statements)
    try:
        yield keyspace
    finally:
        await store.drop_keyspace(keyspace)


@asynccontextmanager
async def throwaway_mongo(config: MongoConfig) -> AsyncIterator[MongoStore]:
    """A store on ``config.database``, dropped (and closed) afterwards."""
    store = await MongoStore.open(config)
    try:
        yield store
    finally:
        try:
            await store.drop_database()
        finally:
            await store.close()


@asynccontextmanager
async def throwaway_redis(config: RedisConfig) -> AsyncIterator[RedisStore]:
    """A store whose keys all start with ``config.key_prefix``; they are deleted afterwards."""
    if not config.key_prefix:
        raise ValueError("a throwaway Redis store needs a key_prefix to know what to delete")
    store = await RedisStore.open(config)
    try:
        yield store
    finally:
        try:
            keys = [key async for key in store.client.scan_iter(match=config.key_prefix + "*")]
            if keys:
                await store.client.delete(*keys)
        finally:
            await store.close()
