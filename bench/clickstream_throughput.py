"""Clickstream throughput: collector, pipeline and their bare limits, in one run.

    .venv/bin/python bench/clickstream_throughput.py --events 60000

On fresh topics / keyspace / Redis prefix of the running local stack (removed at the end):
  (a) collector: accepted events/s, batched POSTs (--batch events each, --posts-in-flight
      concurrent) to a collector process (vigie-clickstream with the pipeline off), answered
      only after Kafka acked;
  (b) pipeline: sustained events/s from a pre-filled raw topic into Cassandra (full pipeline:
      fast Avro decode + checks, UA enrichment, Cassandra rows, lake, clickstream.events,
      sessions in Redis) in one worker process, first record to last stored;
  (c) bare aiokafka consume loop (getmany + commit) on the same topic, same run;
  (d) bare cassandra-driver concurrent inserts (execute_concurrent_with_args) of the same rows;
  (e) p99 event → stored latency while producing at a steady --latency-rate;
  (f) the pipeline with 2 worker processes in one group against 1;
  (g) per-record decode cost: fast path vs the contracts' pydantic decode.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import io
import json
import os
import random
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import fastavro
import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from pydantic import SecretStr

from vigie_clickstream.adapters.codec import click_decoder
from vigie_clickstream.app import wire
from vigie_clickstream.handlers.events import click_row
from vigie_clickstream.settings import (
    ApiSettings,
    ClickstreamSettings,
    CollectorSettings,
    PipelineSettings,
    SessionSettings,
    TopicNames,
    ValidationLimits,
)
from vigie_contracts import decode
from vigie_contracts.schemas import current
from vigie_contracts.serde import SINGLE_OBJECT_MARKER
from vigie_runtime import KafkaSettings, ObservabilitySettings, run_service
from vigie_stores.cassandra import CassandraConfig, CassandraStore
from vigie_stores.lake import LakeConfig
from vigie_stores.redis import RedisConfig, RedisStore

BOOTSTRAP = "127.0.0.1:9092"
AGENTS = [
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like "
    "Gecko) Version/17.0 Mobile/15E148 Safari/604.1",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Safari/537.36",
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0 Mobile Safari/537.36",
]
NAMES = ["page_view"] * 6 + ["click", "add_to_cart", "checkout_started", "purchase"]


def settings_for(run: str, *, port: int = 0, collector: bool = False) -> ClickstreamSettings:
    return ClickstreamSettings(
        kafka=KafkaSettings(
            bootstrap_servers=BOOTSTRAP,
            group_id=f"bench-{run}-{uuid.uuid4().hex[:6]}",
            batch_max_records=2000,
            batch_timeout_ms=100,
            linger_ms=5,
        ),
        observability=ObservabilitySettings(
            service_name="clickstream-bench",
            http_host="127.0.0.1",
            http_port=port,
            log_level="warning",
        ),
        collector=CollectorSettings(
            enabled=collector,
            api_keys={"bench": SecretStr("bench-key")},
            rate_events_per_s=1e9,
            rate_burst_events=10**9,
        ),
        pipeline=PipelineSettings(enabled=not collector, keyspace=f"bench_{run}"),
        sessions=SessionSettings(redis_prefix=f"bench:{run}"),
        topics=TopicNames(
            raw=f"bench-cs-raw-{run}",
            events=f"bench-cs-events-{run}",
            sessions=f"bench-cs-sess-{run}",
        ),
        api=ApiSettings(enabled=False),
        cassandra=CassandraConfig(consistency="ONE"),
        redis=RedisConfig(url=SecretStr("redis://127.0.0.1:6379/0")),
        lake=LakeConfig(
            url=os.environ.get("BENCH_LAKE", tempfile.gettempdir() + f"/bench-lake-{run}")
        ),
    )


def raw_value(i: int, users: int, now: datetime) -> tuple[bytes, bytes]:
    version = current("clickstream_event")
    at = now - timedelta(seconds=random.uniform(0, 1200))
    user = f"user-{i % users}"
    record = {
        "event_id": f"ev-{i}-{uuid.uuid4().hex[:8]}",
        "event_type": "clickstream_event",
        "event_time": at,
        "producer": "bench",
        "schema_version": version.version,
        "traceparent": None,
        "tracestate": None,
        "payload": {
            "user_id": user,
            "anonymous_id": None,
            "app_id": "bench",
            "platform": "web",
            "name": random.choice(NAMES),
            "page_url": f"https://shop.example/p/{i % 500}",
            "referrer": None,
            "user_agent": AGENTS[i % len(AGENTS)],
            "ip_pseudonym": "ab" * 16,
            "properties": {"sku": f"S-{i % 97}"},
            "occurred_at": at,
            "device_family": None,
            "browser_family": None,
            "os_family": None,
            "country_code": None,
        },
    }
    buf = io.BytesIO()
    buf.write(SINGLE_OBJECT_MARKER + version.fingerprint)
    fastavro.schemaless_writer(buf, version.parsed, record)
    return user.encode(), buf.getvalue()


async def create_topics(names: list[str], partitions: int) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(n, partitions, 1) for n in names])
    finally:
        await admin.close()
    await asyncio.sleep(1.0)


async def delete_topics(prefix: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=BOOTSTRAP)
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(prefix)]
        if doomed:
            await admin.delete_topics(doomed)
    finally:
        await admin.close()


async def fill(topic: str, n: int, users: int) -> list[bytes]:
    now = datetime.now(UTC)
    producer = AIOKafkaProducer(
        bootstrap_servers=BOOTSTRAP, linger_ms=20, max_batch_size=512 * 1024, acks=1
    )
    await producer.start()
    values = []
    try:
        futures = []
        for i in range(n):
            key, value = raw_value(i, users, now)
            values.append(value)
            futures.append(await producer.send(topic, value, key=key))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return values


# -- (c) bare consume, (d) bare inserts ------------------------------------------------------


async def bare_consume(topic: str, n: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=BOOTSTRAP,
        group_id=f"bare-{uuid.uuid4().hex}",
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    got, first = 0, None
    try:
        while got < n:
            batches = await consumer.getmany(timeout_ms=500, max_records=2000)
            if batches and first is None:
                first = time.perf_counter()
            got += sum(len(r) for r in batches.values())
            if batches:
                await consumer.commit()
        return n / (time.perf_counter() - (first or time.perf_counter()))
    finally:
        await consumer.stop()


def bare_inserts(values: list[bytes], keyspace: str, concurrency: int) -> float:
    from cassandra.cluster import Cluster
    from cassandra.concurrent import execute_concurrent_with_args

    decode_click = click_decoder(ValidationLimits(max_future=timedelta(days=1)))
    now = datetime.now(UTC)
    rows = [click_row(decode_click(v), now) for v in values]
    cluster = Cluster(["127.0.0.1"], protocol_version=5)
    session = cluster.connect()
    try:
        insert = session.prepare(
            f"INSERT INTO {keyspace}.clickstream_events ({', '.join(_columns())}) "  # noqa: S608
            f"VALUES ({', '.join('?' for _ in _columns())})"
        )
        started = time.perf_counter()
        execute_concurrent_with_args(session, insert, rows, concurrency=concurrency)
        return len(rows) / (time.perf_counter() - started)
    finally:
        cluster.shutdown()


def _columns() -> tuple[str, ...]:
    from vigie_clickstream.handlers.events import ROW_COLUMNS

    return ROW_COLUMNS


# -- pipeline workers (subprocesses) ---------------------------------------------------------


async def worker(run: str, group: str, idle_s: float) -> dict[str, Any]:
    """Run the pipeline until nothing new was stored for ``idle_s``; report what it did."""
    base = settings_for(run)
    settings = base.model_copy(update={"kafka": base.kafka.model_copy(update={"group_id": group})})
    hold: dict[str, Any] = {}
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_service(settings, functools.partial(wire, hold=hold), stop=stop, serve_http=False)
    )
    while "pipeline" not in hold:
        await asyncio.sleep(0.05)
        if task.done():
            task.result()
    pipeline = hold["pipeline"]
    first = last = None
    seen = 0
    quiet_since = time.perf_counter()
    while True:
        await asyncio.sleep(0.02)
        if pipeline.stored != seen:
            now = time.perf_counter()
            if first is None:
                first = now - 0.02
            seen, last, quiet_since = pipeline.stored, now, now
        elif time.perf_counter() - quiet_since > idle_s and (
            first is not None or time.perf_counter() - quiet_since > 60
        ):
            break
    stop.set()
    await task
    wall = time.time()
    offset = wall - time.perf_counter()
    return {"stored": seen, "first": (first or 0) + offset, "last": (last or 0) + offset}


def run_workers(run: str, count: int, idle_s: float = 6.0) -> dict[str, Any]:
    group = f"bench-{run}-w{count}-{uuid.uuid4().hex[:6]}"
    procs = [
        subprocess.Popen(  # noqa: S603 - our own interpreter and script
            [sys.executable, __file__, "--worker", run, group, str(idle_s)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(count)
    ]
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=900)
        results.append(json.loads(out.strip().splitlines()[-1]))
    stored = sum(r["stored"] for r in results)
    span = max(r["last"] for r in results) - min(r["first"] for r in results if r["stored"])
    return {"stored": stored, "rate": stored / span, "per_worker": [r["stored"] for r in results]}


# -- (a) collector ---------------------------------------------------------------------------


async def collector_rate(run: str, events: int, batch: int, in_flight: int) -> float:
    port = _free_port()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--collector", run, str(port), stdout=subprocess.DEVNULL
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
            for _ in range(300):
                try:
                    if (await client.get("/health/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                await asyncio.sleep(0.2)
            now = datetime.now(UTC).isoformat()
            body = orjson.dumps(
                [
                    {
                        "user_id": f"user-{i % 997}",
                        "platform": "web",
                        "name": "page_view",
                        "occurred_at": now,
                        "page_url": "https://shop.example/",
                        "properties": {"k": "v"},
                    }
                    for i in range(batch)
                ]
            )
            posts = events // batch
            headers = {"X-Api-Key": "bench-key", "Content-Type": "application/json"}
            accepted = 0
            queue = asyncio.Queue[int]()
            for i in range(posts):
                queue.put_nowait(i)

            async def poster() -> None:
                nonlocal accepted
                while not queue.empty():
                    queue.get_nowait()
                    answer = await client.post("/v1/batch", content=body, headers=headers)
                    answer.raise_for_status()
                    accepted += answer.json()["accepted"]

            started = time.perf_counter()
            await asyncio.gather(*(poster() for _ in range(in_flight)))
            return accepted / (time.perf_counter() - started)
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), 30)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def serve_collector(run: str, port: int) -> None:
    settings = settings_for(run, port=port, collector=True)
    asyncio.run(run_service(settings, wire))


# -- (e) latency -----------------------------------------------------------------------------


async def latency(run: str, rate: int, seconds: float) -> dict[str, float]:
    fresh = settings_for(run)
    # a topic of its own: a new group on the filled topic would first read its whole backlog
    base = fresh.model_copy(
        update={"topics": fresh.topics.model_copy(update={"raw": f"bench-cs-lat-{run}"})}
    )
    topic = base.topics.raw
    hold: dict[str, Any] = {}
    stop = asyncio.Event()
    task = asyncio.create_task(
        run_service(base, functools.partial(wire, hold=hold), stop=stop, serve_http=False)
    )
    while "pipeline" not in hold:  # noqa: ASYNC110 - polling what the wiring fills in
        await asyncio.sleep(0.05)
    pipeline = hold["pipeline"]
    await asyncio.sleep(3)  # group join
    pipeline.latencies.clear()
    pipeline.keep_latencies = True
    producer = AIOKafkaProducer(bootstrap_servers=BOOTSTRAP, linger_ms=5, acks="all")
    await producer.start()
    sent = 0
    started = time.perf_counter()
    version = current("clickstream_event")
    try:
        while time.perf_counter() - started < seconds:
            tick = time.perf_counter()
            for _ in range(rate // 20):
                now = datetime.now(UTC)
                user = f"lat-{sent % 500}"
                rec = {
                    "event_id": f"lat-{uuid.uuid4().hex}",
                    "event_type": "clickstream_event",
                    "event_time": now,
                    "producer": "bench",
                    "schema_version": version.version,
                    "traceparent": None,
                    "tracestate": None,
                    "payload": {
                        "user_id": user,
                        "app_id": "bench",
                        "platform": "web",
                        "name": "page_view",
                        "occurred_at": now,
                        "user_agent": AGENTS[sent % 3],
                        "properties": {},
                    },
                }
                buf = io.BytesIO()
                buf.write(SINGLE_OBJECT_MARKER + version.fingerprint)
                fastavro.schemaless_writer(buf, version.parsed, rec)
                await producer.send(topic, buf.getvalue(), key=user.encode())
                sent += 1
            await asyncio.sleep(max(0.0, 0.05 - (time.perf_counter() - tick)))
        await producer.flush()
    finally:
        await producer.stop()
    deadline = time.perf_counter() + 30
    while len(pipeline.latencies) < sent and time.perf_counter() < deadline:  # noqa: ASYNC110
        await asyncio.sleep(0.1)
    stop.set()
    await task
    values = sorted(pipeline.latencies)
    return {
        "sent": sent,
        "stored": len(values),
        "p50": statistics.median(values) if values else float("nan"),
        "p99": values[int(len(values) * 0.99) - 1] if values else float("nan"),
    }


# -- (g) decode cost -------------------------------------------------------------------------


def decode_costs(values: list[bytes]) -> tuple[float, float]:
    """Best of 3 alternating rounds each: the machine is shared, the minimum is the cost."""
    sample = values[:5000]
    fast = click_decoder(ValidationLimits(max_future=timedelta(days=1)))
    best = {"fast": float("inf"), "full": float("inf")}
    for _ in range(3):
        for name, fn in (("fast", fast), ("full", decode)):
            started = time.perf_counter()
            for v in sample:
                fn(v)
            per = (time.perf_counter() - started) / len(sample) * 1e6
            best[name] = min(best[name], per)
    return best["fast"], best["full"]


async def main(args: argparse.Namespace) -> None:
    run = uuid.uuid4().hex[:8]
    s = settings_for(run)
    await create_topics([s.topics.raw, s.topics.events, s.topics.sessions], args.partitions)
    await create_topics([f"bench-cs-lat-{run}"], args.partitions)
    store = await CassandraStore.open(CassandraConfig())
    try:
        print(f"run {run}: {args.events} events, {args.partitions} partitions, {args.users} users")
        values = await fill(s.topics.raw, args.events, args.users)
        fast_us, full_us = decode_costs(values)
        print(
            f"(g) decode + checks per record: fast path {fast_us:.1f} µs, "
            f"contracts' pydantic decode {full_us:.1f} µs ({full_us / fast_us:.1f}x)"
        )
        bare_kafka = await bare_consume(s.topics.raw, args.events)
        print(f"(c) bare aiokafka consume loop:            {bare_kafka:>9,.0f} events/s")
        one = run_workers(run, 1)
        print(
            f"(b) pipeline, 1 process, raw → Cassandra:  {one['rate']:>9,.0f} events/s "
            f"({one['stored']} stored)"
        )
        bare_cql = await asyncio.to_thread(
            bare_inserts, values, s.pipeline.keyspace, args.concurrency
        )
        print(f"(d) bare cassandra-driver inserts (C={args.concurrency}): {bare_cql:>9,.0f} rows/s")
        two = run_workers(run, 2)
        print(
            f"(f) pipeline, 2 processes:                 {two['rate']:>9,.0f} events/s "
            f"(split {two['per_worker']})"
        )
        if not args.skip_collector:
            coll = await collector_rate(
                run, args.collector_events, args.batch, args.posts_in_flight
            )
            print(
                f"(a) collector, {args.batch}-event POSTs x{args.posts_in_flight} in flight: "
                f"{coll:>9,.0f} accepted events/s"
            )
        lat = await latency(run, args.latency_rate, args.latency_seconds)
        print(
            f"(e) event → stored at {args.latency_rate}/s for {args.latency_seconds:.0f}s: "
            f"p50 {lat['p50'] * 1000:.0f} ms, p99 {lat['p99'] * 1000:.0f} ms "
            f"({lat['stored']}/{lat['sent']} stored)"
        )
        print(
            "ratios: pipeline / bare consume = "
            f"{one['rate'] / bare_kafka:.2f}, "
            f"pipeline / bare inserts = {one['rate'] / bare_cql:.2f}, "
            f"2 processes / 1 = {two['rate'] / one['rate']:.2f}; "
            f"100k/s target: pipeline at {one['rate'] / 100_000:.1%}"
        )
    finally:
        await store.drop_keyspace(s.pipeline.keyspace)
        await store.close()
        redis = await RedisStore.open(s.redis)
        keys = await redis.client.keys(f"bench:{run}:*")
        if keys:
            await redis.client.delete(*keys)
        await redis.close()
        await delete_topics("bench-cs-")
        shutil.rmtree(tempfile.gettempdir() + f"/bench-lake-{run}", ignore_errors=True)


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--worker":
        result = asyncio.run(worker(sys.argv[2], sys.argv[3], float(sys.argv[4])))
        print(json.dumps(result))
        sys.exit(0)
    if len(sys.argv) > 1 and sys.argv[1] == "--collector":
        serve_collector(sys.argv[2], int(sys.argv[3]))
        sys.exit(0)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--users", type=int, default=3_000)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--concurrency", type=int, default=128)
    parser.add_argument("--collector-events", type=int, default=40_000)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--posts-in-flight", type=int, default=4)
    parser.add_argument("--latency-rate", type=int, default=1000)
    parser.add_argument("--latency-seconds", type=float, default=10)
    parser.add_argument("--skip-collector", action="store_true")
    asyncio.run(main(parser.parse_args()))
