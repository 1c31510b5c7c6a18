"""Write rates through vigie_stores against the bare drivers doing the same writes, in one run.

    .venv/bin/python bench/stores_write_rates.py --records 20000

Each pair writes the same N records to a fresh table / collection / key space of the running
local stack (VIGIE_* settings), bare driver first, then the adapter, and prints records/s and
the ratio adapter / bare (1.0 = no overhead). What each pair does:

- cassandra: prepared INSERTs, C in flight. Bare: the driver's own execute_concurrent_with_args
  (callback chaining on its I/O thread). Adapter: CassandraStore.execute_many (asyncio bridge).
- mongo insert: N new documents. Bare: bulk_write of upserts guarded by version, in chunks of
  the adapter's bulk_chunk, the same number of chunks in flight. Adapter:
  MongoStore.write_many_versioned (reads stored versions, then unordered inserts).
- mongo update: the same N ids again with a newer version (guarded replaces), same shapes.
- redis: hashes with a TTL, one pipeline per 1000 records. Bare: HSET + PEXPIRE in a
  non-transactional pipeline. Adapter: RedisStore.write_hashes.
- redis versioned: the adapter's Lua-guarded write (keeps the newest) against bare HSET+PEXPIRE,
  i.e. what the ordering guarantee costs.
- lake: raw Kafka records to Parquet. Bare: one pyarrow.parquet.write_table per hour partition.
  Adapter: LakeWriter.write in batches of 1000, then close (temp file + rename).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.parquet as pq  # type: ignore[import-untyped]
from cassandra.concurrent import execute_concurrent_with_args
from pydantic import SecretStr
from pymongo import ReplaceOne

from vigie_localstack.settings import StackSettings
from vigie_stores.cassandra import CassandraConfig, CassandraStore
from vigie_stores.lake import RAW_SCHEMA, LakeConfig, LakeWriter, RawRecord
from vigie_stores.mongo import MongoConfig, MongoStore, VersionedDoc
from vigie_stores.redis import FieldValue, RedisConfig, RedisStore, VersionedHash

Result = tuple[str, int, float, float]  # name, records, adapter records/s, bare records/s


async def timed(n: int, work: Callable[[], Awaitable[Any]]) -> float:
    started = time.perf_counter()
    await work()
    return n / (time.perf_counter() - started)


async def bench_cassandra(stack: StackSettings, n: int, concurrency: int) -> list[Result]:
    config = CassandraConfig(
        contact_points=(stack.host,), port=stack.cassandra_port, concurrency=concurrency
    )
    keyspace = f"bench_{uuid.uuid4().hex[:8]}"
    tables = [
        f"CREATE TABLE IF NOT EXISTS {keyspace}.{name} (user_id text, day date, seq bigint,"
        " kind text, amount bigint, PRIMARY KEY ((user_id, day), seq))"
        for name in ("bare", "adapter")
    ]
    rows = [(f"u{i % 1000}", "2026-11-26", i, "click", i * 7) for i in range(n)]
    insert = "INSERT INTO {}.{} (user_id, day, seq, kind, amount) VALUES (?, ?, ?, ?, ?)"
    async with await CassandraStore.open(config) as store:
        await store.ensure_schema(keyspace, tables)
        try:
            prepared = await store.prepare(insert.format(keyspace, "bare"))
            prepared.is_idempotent = True

            def bare() -> None:
                results = execute_concurrent_with_args(
                    store.session,
                    prepared,
                    rows,
                    concurrency=concurrency,
                    raise_on_first_error=True,
                )
                if len(results) != n:
                    raise RuntimeError(f"{len(results)} of {n} inserts done")

            bare_rate = await timed(n, lambda: asyncio.to_thread(bare))
            adapter_rate = await timed(
                n, lambda: store.execute_many(insert.format(keyspace, "adapter"), rows)
            )
        finally:
            await store.drop_keyspace(keyspace)
    return [(f"cassandra prepared INSERT (C={concurrency})", n, adapter_rate, bare_rate)]


async def bench_mongo(stack: StackSettings, n: int) -> list[Result]:
    config = MongoConfig(
        url=SecretStr(f"mongodb://{stack.host}:{stack.mongo_port}"),
        database=f"bench_{uuid.uuid4().hex[:8]}",
        socket_timeout=120,
    )
    results: list[Result] = []
    async with await MongoStore.open(config) as store:
        bare_coll = store.database["bare"]
        chunk, width = config.bulk_chunk, config.bulk_concurrency

        async def bare(version: int) -> None:
            requests = [
                ReplaceOne(
                    {"_id": f"e{i}", "_version": {"$lt": version}},
                    {"n": i, "status": f"s{version}", "_version": version},
                    upsert=True,
                )
                for i in range(n)
            ]
            gate = asyncio.Semaphore(width)

            async def one(part: list[ReplaceOne[dict[str, Any]]]) -> None:
                async with gate:
                    await bare_coll.bulk_write(part, ordered=False)

            await asyncio.gather(
                *(one(requests[i : i + chunk]) for i in range(0, len(requests), chunk))
            )

        def items(version: int) -> list[VersionedDoc]:
            return [
                VersionedDoc(f"e{i}", version, {"n": i, "status": f"s{version}"}) for i in range(n)
            ]

        try:
            for label, version in (("insert new ids", 1), ("update, newer version", 2)):
                bare_rate = await timed(n, lambda v=version: bare(v))  # type: ignore[misc]
                batch = items(version)
                adapter_rate = await timed(
                    n,
                    lambda b=batch: store.write_many_versioned("adapter", b),  # type: ignore[misc]
                )
                results.append((f"mongo versioned bulk, {label}", n, adapter_rate, bare_rate))
            if await bare_coll.count_documents({}) != n:
                raise RuntimeError("bare writes missing")
            if len(await store.find("adapter", {"status": "s2"})) != n:
                raise RuntimeError("adapter writes missing")
        finally:
            await store.drop_database()
    return results


async def bench_redis(stack: StackSettings, n: int, pipeline: int = 1000) -> list[Result]:
    prefix = f"bench:{uuid.uuid4().hex[:8]}:"
    config = RedisConfig(
        url=SecretStr(f"redis://{stack.host}:{stack.redis_port}/0"), key_prefix=prefix
    )
    ttl = timedelta(minutes=10)
    values: list[dict[str, FieldValue]] = [
        {"count_1h": i % 50, "sum_24h": i * 1.25, "mcc": "5411"} for i in range(n)
    ]
    async with await RedisStore.open(config) as store:
        client = store.client

        async def bare(tag: str) -> None:
            for start in range(0, n, pipeline):
                pipe = client.pipeline(transaction=False)
                for i in range(start, min(start + pipeline, n)):
                    key = f"{prefix}{tag}:{i}"
                    pipe.hset(key, mapping=values[i])  # type: ignore[arg-type]
                    pipe.pexpire(key, ttl)
                await pipe.execute()

        async def adapter() -> None:
            for start in range(0, n, pipeline):
                await store.write_hashes(
                    {f"adapter:{i}": values[i] for i in range(start, min(start + pipeline, n))},
                    ttl=ttl,
                )

        async def versioned() -> None:
            for start in range(0, n, pipeline):
                await store.write_versioned_many(
                    [
                        VersionedHash(f"versioned:{i}", values[i], 1_700_000_000_000 + i)
                        for i in range(start, min(start + pipeline, n))
                    ],
                    ttl=ttl,
                )

        try:
            bare_rate = await timed(n, lambda: bare("bare"))
            adapter_rate = await timed(n, adapter)
            bare_again = await timed(n, lambda: bare("bare2"))
            versioned_rate = await timed(n, versioned)
        finally:
            keys = [k async for k in client.scan_iter(match=prefix + "*", count=5000)]
            for start in range(0, len(keys), 5000):
                await client.delete(*keys[start : start + 5000])
    return [
        (f"redis HSET+TTL, pipelines of {pipeline}", n, adapter_rate, bare_rate),
        ("redis versioned HSET (Lua guard) vs plain", n, versioned_rate, bare_again),
    ]


async def bench_lake(n: int) -> list[Result]:
    t0 = datetime(2026, 11, 26, 10, tzinfo=UTC)
    records = [
        RawRecord(
            "payments.transactions",
            i % 6,
            i,
            f"c{i % 997}".encode(),
            os.urandom(200),
            t0 + timedelta(seconds=i % 7200),
            t0 + timedelta(hours=2),
            [("traceparent", b"00-x")],
        )
        for i in range(n)
    ]
    root = tempfile.mkdtemp(prefix="vigie-bench-lake-")
    try:

        def bare() -> None:
            rows = [r.row() for r in records]
            for hour in (10, 11):
                part = [r for r in rows if r["event_time"].hour == hour]
                os.makedirs(f"{root}/bare/hour={hour}", exist_ok=True)
                table = pa.Table.from_pylist(part, schema=RAW_SCHEMA)
                pq.write_table(table, f"{root}/bare/hour={hour}/part.parquet", compression="zstd")

        async def adapter() -> None:
            async with LakeWriter(LakeConfig(url=f"{root}/adapter")) as lake:
                for start in range(0, n, 1000):
                    await lake.write(records[start : start + 1000])

        bare_rate = await timed(n, lambda: asyncio.to_thread(bare))
        adapter_rate = await timed(n, adapter)
    finally:
        shutil.rmtree(root, ignore_errors=True)
    return [("lake raw records -> Parquet (zstd)", n, adapter_rate, bare_rate)]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument(
        "--mongo-records",
        type=int,
        default=1_000,
        help="fewer: FerretDB 1.x on SQLite updates at ~100 documents/s (not MongoDB's rate)",
    )
    parser.add_argument("--concurrency", type=int, default=64, help="Cassandra requests in flight")
    parser.add_argument("--only", choices=["cassandra", "mongo", "redis", "lake"], action="append")
    args = parser.parse_args()
    stack = StackSettings()
    n = args.records
    chosen = args.only or ["cassandra", "mongo", "redis", "lake"]
    results: list[Result] = []
    if "cassandra" in chosen:
        results += await bench_cassandra(stack, n, args.concurrency)
    if "mongo" in chosen:
        results += await bench_mongo(stack, args.mongo_records)
    if "redis" in chosen:
        results += await bench_redis(stack, n)
    if "lake" in chosen:
        results += await bench_lake(n)

    print(
        f"\n{'write path':<46} {'records':>8} {'adapter rec/s':>14} {'bare rec/s':>11} {'ratio':>6}"
    )
    for name, count, adapter, bare in results:
        print(f"{name:<46} {count:>8} {adapter:>14,.0f} {bare:>11,.0f} {adapter / bare:>6.2f}")


if __name__ == "__main__":
    asyncio.run(main())
