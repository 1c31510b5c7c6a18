"""Every adapter turns "nobody listens there" into StoreUnavailable, quickly."""

from __future__ import annotations

import asyncio
import gc
import socket
import time
from collections.abc import Iterator

import pytest
from pydantic import SecretStr

from vigie_stores import StoreError, StoreUnavailable
from vigie_stores.cassandra import CassandraConfig, CassandraStore
from vigie_stores.mongo import MongoConfig, MongoStore
from vigie_stores.redis import RedisConfig, RedisStore

pytestmark = pytest.mark.integration


@pytest.fixture
def closed_port() -> Iterator[int]:
    """A loopback port that was just free; connecting to it is refused."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    yield port


# PyMongo leaks the socket of a server check that close() cancels mid-connect (its
# _async_create_connection closes it on OSError only). Let the cancelled check finish and
# collect it here, so its ResourceWarning is neither an error nor blamed on a later test.
@pytest.mark.filterwarnings("ignore::ResourceWarning")
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
async def test_mongo(closed_port: int) -> None:
    config = MongoConfig(
        url=SecretStr(f"mongodb://127.0.0.1:{closed_port}"),
        database="nowhere",
        server_selection_timeout=0.5,
        connect_timeout=0.5,
    )
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as failure:
        await MongoStore.open(config)
    assert failure.value.retryable and failure.value.store == "mongo"
    assert time.monotonic() - started < 5
    await asyncio.sleep(0.2)
    gc.collect()


async def test_cassandra(closed_port: int) -> None:
    config = CassandraConfig(contact_points=("127.0.0.1",), port=closed_port, connect_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as failure:
        await CassandraStore.open(config)
    assert failure.value.retryable and failure.value.store == "cassandra"
    assert time.monotonic() - started < 5


async def test_redis(closed_port: int) -> None:
    config = RedisConfig(url=SecretStr(f"redis://127.0.0.1:{closed_port}/0"), connect_timeout=0.5)
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as failure:
        await RedisStore.open(config)
    assert failure.value.retryable and failure.value.store == "redis"
    assert time.monotonic() - started < 5


def test_the_error_tree_classifies() -> None:
    from vigie_stores import StoreClosed, StoreConflict, StoreRejected

    assert issubclass(StoreUnavailable, StoreError) and StoreUnavailable.retryable
    for fatal in (StoreConflict, StoreRejected, StoreClosed):
        assert issubclass(fatal, StoreError) and not fatal.retryable
    conflict = StoreConflict("dup", store="mongo", keys=("a",))
    assert str(conflict) == "mongo: dup" and conflict.keys == ("a",)
