"""CassandraStore against the local stack's Cassandra."""

# ruff: noqa: S608  # CQL names a keyspace the test generated itself; values are bound

from __future__ import annotations

import asyncio
import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
from cassandra.policies import RetryPolicy
from cassandra.query import SimpleStatement

from vigie_localstack.settings import StackSettings
from vigie_stores import Store, StoreRejected
from vigie_stores.cassandra import CassandraConfig, CassandraStore, _IdempotentRetryPolicy
from vigie_stores.testing import throwaway_keyspace

pytestmark = pytest.mark.integration


def _table(keyspace: str) -> str:
    return (
        f"CREATE TABLE IF NOT EXISTS {keyspace}.events ("
        " user_id text, day date, event_id timeuuid, kind text, amount bigint,"
        " PRIMARY KEY ((user_id, day), event_id))"
    )


class _Counting(CassandraStore):
    """Counts requests in flight at the driver, and whether they were marked idempotent."""

    in_flight = 0
    peak = 0
    flags: set[bool]

    def instrument(self) -> None:
        self.flags = set()
        lock = threading.Lock()
        execute_async = self.session.execute_async

        def done(_: Any) -> None:
            with lock:
                self.in_flight -= 1

        def counted(statement: Any, *args: Any, **kwargs: Any) -> Any:
            self.flags.add(bool(getattr(statement, "is_idempotent", False)))
            with lock:
                self.in_flight += 1
                self.peak = max(self.peak, self.in_flight)
            response = execute_async(statement, *args, **kwargs)
            response.add_callbacks(done, done)
            return response

        self.session.execute_async = counted


@pytest.fixture
async def cassandra(stack: StackSettings) -> AsyncIterator[_Counting]:
    config = CassandraConfig(
        contact_points=(stack.host,), port=stack.cassandra_port, consistency="LOCAL_ONE"
    )
    async with await _Counting.open(config) as store:
        store.instrument()
        yield store


@pytest.fixture
async def keyspace(cassandra: CassandraStore, unique: str) -> AsyncIterator[str]:
    async with throwaway_keyspace(cassandra, f"t_{unique}", [_table(f"t_{unique}")]) as ks:
        yield ks


def test_satisfies_the_interface(cassandra: CassandraStore) -> None:
    store: Store = cassandra  # checked by mypy
    assert store is cassandra


async def test_schema_is_ensured_twice_without_error(
    cassandra: CassandraStore, keyspace: str
) -> None:
    statements = [
        _table(keyspace),
        f"CREATE INDEX IF NOT EXISTS events_kind ON {keyspace}.events (kind)",
    ]
    await cassandra.ensure_schema(keyspace, statements)
    await cassandra.ensure_schema(keyspace, statements)
    tables = await cassandra.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = ?", [keyspace]
    )
    assert [row["table_name"] for row in tables] == ["events"]
    with pytest.raises(ValueError, match="not conditional"):
        await cassandra.ensure_schema(
            keyspace, [f"CREATE TABLE {keyspace}.other (k int PRIMARY KEY)"]
        )
    with pytest.raises(ValueError, match="identifier"):
        await cassandra.ensure_schema("bad-name; DROP", [])


async def test_statements_are_prepared_once_and_shared(
    cassandra: CassandraStore, keyspace: str
) -> None:
    cql = f"SELECT * FROM {keyspace}.events WHERE user_id = ? AND day = ?"
    prepared = await asyncio.gather(*(cassandra.prepare(cql) for _ in range(20)))
    assert all(p is prepared[0] for p in prepared)
    assert await cassandra.prepare(cql) is prepared[0]


async def test_execute_many_is_bounded_and_idempotent(cassandra: _Counting, keyspace: str) -> None:
    insert = (
        f"INSERT INTO {keyspace}.events (user_id, day, event_id, kind, amount)"
        " VALUES (?, '2026-11-26', minTimeuuid(?), ?, ?)"
    )
    # Fixed event ids (timeuuid from a timestamp), so a second run rewrites the same rows.
    rows = [(f"u{i % 20}", 1_700_000_000_000 + i, "click", i) for i in range(2000)]
    cassandra.flags.clear()

    assert await cassandra.execute_many(insert, rows, concurrency=16) == 2000
    assert 1 < cassandra.peak <= 16
    assert cassandra.flags == {True}

    # A replay (the batch was retried after a timeout) changes nothing.
    assert await cassandra.execute_many(insert, rows, concurrency=16) == 2000
    count = await cassandra.execute(f"SELECT COUNT(*) AS n FROM {keyspace}.events")
    assert count == [{"n": 2000}]
    total = 0
    for user in range(20):
        found = await cassandra.execute(
            f"SELECT amount FROM {keyspace}.events WHERE user_id = ? AND day = '2026-11-26'",
            [f"u{user}"],
        )
        total += sum(row["amount"] for row in found)
    assert total == sum(range(2000))


async def test_every_page_is_read(cassandra: CassandraStore, keyspace: str) -> None:
    insert = (
        f"INSERT INTO {keyspace}.events (user_id, day, event_id, kind, amount)"
        " VALUES ('u', '2026-11-26', now(), 'view', ?)"
    )
    await cassandra.execute_many(insert, [(i,) for i in range(750)])
    cassandra.session.default_fetch_size = 100  # 8 pages
    found = await cassandra.execute(f"SELECT amount FROM {keyspace}.events")
    assert sorted(row["amount"] for row in found) == list(range(750))


async def test_a_bad_query_is_rejected_not_retried(
    cassandra: CassandraStore, keyspace: str
) -> None:
    with pytest.raises(StoreRejected) as missing:
        await cassandra.execute(f"SELECT * FROM {keyspace}.nope")
    assert not missing.value.retryable
    with pytest.raises(StoreRejected):
        await cassandra.execute_many(
            f"INSERT INTO {keyspace}.events (user_id, day, event_id) VALUES (?, ?, now())",
            [("u", "not a date")],
        )


def test_only_idempotent_writes_are_retried_after_a_timeout() -> None:
    policy = _IdempotentRetryPolicy(retries=2)
    safe = SimpleStatement("INSERT ...", is_idempotent=True)
    unsafe = SimpleStatement("UPDATE ... SET n = n + 1", is_idempotent=False)
    assert policy.on_write_timeout(safe, 1, "SIMPLE", 1, 0, 0)[0] == RetryPolicy.RETRY
    assert policy.on_write_timeout(safe, 1, "SIMPLE", 1, 0, 2)[0] == RetryPolicy.RETHROW
    assert policy.on_write_timeout(unsafe, 1, "SIMPLE", 1, 0, 0)[0] == RetryPolicy.RETHROW
    assert policy.on_read_timeout(unsafe, 1, 1, 0, False, 0)[0] == RetryPolicy.RETRY
