"""The Cassandra adapter on the real server: batched idempotent writes and the three queries."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from vigie_localstack.settings import StackSettings
from vigie_logs.adapters.cassandra import LogStore
from vigie_logs.handlers import LogRecord, Redactor, Source, process
from vigie_stores.cassandra import CassandraConfig, CassandraStore

pytestmark = pytest.mark.integration

R = Redactor(b"store-test-key-0123456789")
T0 = datetime(2026, 11, 26, 10, 30, tzinfo=UTC)


@pytest.fixture
async def logs(stack: StackSettings, unique: str) -> AsyncIterator[LogStore]:
    store = await CassandraStore.open(
        CassandraConfig(contact_points=(stack.host,), port=stack.cassandra_port)
    )
    keyspace = f"t_logstore_{unique}"
    async with store:
        adapter = LogStore(store, keyspace)
        await adapter.ensure_schema()
        try:
            yield adapter
        finally:
            await store.drop_keyspace(keyspace)


def make(
    offset: int,
    *,
    service: str,
    at: datetime,
    level: str = "info",
    message: str = "m",
    trace: str | None = None,
) -> LogRecord:
    line = f'{{"time":"{at.isoformat()}","level":"{level}","msg":"{message} {offset}"'
    if trace:
        line += f',"trace_id":"{trace}"'
    line += "}"
    source = Source("logs.raw", 0, offset, int(at.timestamp() * 1000), service.encode())
    return process(line.encode(), source, R, max_bytes=65536).record


async def count(logs: LogStore, table: str) -> int:
    rows = await logs.store.execute(f"SELECT count(*) AS n FROM {logs.keyspace}.{table}")  # noqa: S608 - identifiers validated, values bound
    return int(rows[0]["n"])


async def test_batched_writes_are_idempotent_and_queryable(logs: LogStore) -> None:
    trace = "0af7651916cd43dd8448eb211c80319c"
    records = [
        # 37 rows in one (service, hour): batches of 16 + 16 + 4 + 1
        *(
            make(
                i,
                service="api",
                at=T0 + timedelta(seconds=i),
                level="error" if i % 5 == 0 else "info",
                trace=trace if i < 3 else None,
            )
            for i in range(37)
        ),
        # big messages: batches are cut by size too
        *(
            make(
                100 + i,
                service="api",
                at=T0 + timedelta(minutes=40, seconds=i),
                message="y" * 20_000,
            )
            for i in range(6)
        ),
        # the previous hour, and another service
        *(make(200 + i, service="api", at=T0 - timedelta(hours=1, seconds=i)) for i in range(5)),
        make(300, service="worker", at=T0, level="error", message="refund rejected"),
    ]
    await logs.write(records)
    await logs.write(records)  # a replay overwrites the same rows
    assert await count(logs, "logs") == len(records)
    assert await count(logs, "logs_by_trace") == 3
    errors = [r for r in records if r.fingerprint]
    assert await count(logs, "logs_by_fingerprint") == len(errors)

    start, end = T0 - timedelta(hours=2), T0 + timedelta(hours=1)
    newest = await logs.by_service("api", start, end, limit=10)
    assert all(row["message"].startswith("y" * 20_000) for row in newest[:2])
    assert [row["time"] for row in newest] == sorted((row["time"] for row in newest), reverse=True)
    everything = await logs.by_service("api", start, end, limit=1000)
    assert len(everything) == 48  # across two hour buckets
    only_errors = await logs.by_service("api", start, end, levels=frozenset({"error"}), limit=1000)
    assert {row["level"] for row in only_errors} == {"error"} and len(only_errors) == 8
    few_errors = await logs.by_service("api", start, end, levels=frozenset({"error"}), limit=3)
    assert len(few_errors) == 3
    window = await logs.by_service("api", T0, T0 + timedelta(seconds=10), limit=1000)
    assert len(window) == 10

    by_trace = await logs.by_trace(trace.upper())
    assert [row["message"] for row in by_trace] == ["m 0", "m 1", "m 2"]

    first_error = next(r for r in records if r.service == "api" and r.fingerprint)
    occurrences = await logs.by_fingerprint(first_error.fingerprint or "", start, end, limit=100)
    # "m 0", "m 5", ... normalise to the same message: one group
    assert len(occurrences) == 8
    worker = next(r for r in records if r.service == "worker")
    assert worker.fingerprint != first_error.fingerprint


async def test_rows_carry_every_field(logs: LogStore) -> None:
    line = (
        '{"time":"2026-11-26T10:00:00Z","level":"error","msg":"boom for bob@example.com",'
        '"http":{"method":"POST","path":"/v1/pay","status":502,"duration_ms":12.5},'
        '"client_ip":"10.0.0.1","exception_type":"TimeoutError","region":"eu"}'
    )
    record = process(line.encode(), Source("logs.raw", 3, 77, 0, b"api"), R, max_bytes=65536).record
    record = dataclasses.replace(record, flags=frozenset({"truncated"}))
    await logs.write([record])
    (row,) = await logs.by_service("api", T0 - timedelta(hours=1), T0, limit=5)
    assert row["source"] == "logs.raw:3:77" and str(row["id"]) == record.id
    assert row["http_method"] == "POST" and row["http_status"] == 502
    assert row["http_duration_ms"] == 12.5 and row["http_remote"].startswith("ip:")
    assert row["exception_type"] == "TimeoutError" and row["fingerprint"] == record.fingerprint
    assert dict(row["redactions"]) == {"email": 1, "ipv4": 1}
    assert set(row["flags"]) == {"truncated"} and row["attributes"]["region"] == "eu"
    assert "bob@example.com" not in row["message"]
