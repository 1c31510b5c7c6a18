"""services/logs: record produced → queryable in Cassandra, p50 / p99 at a sustained rate,
with the bare limits of the same run.

    .venv/bin/python bench/logs_latency.py --rate 20000 --seconds 20

What it does, on fresh topics and a fresh keyspace of the running local stack:

1. starts the service as a subprocess (``python -m vigie_logs``, its own process like in a pod);
2. produces a realistic mix (app JSON in a Fluent Bit envelope, logfmt, nginx access lines,
   Python lines with a stack trace, security events, secrets to redact) paced at ``--rate``
   records/s for ``--seconds``; each record carries its send time (µs) as an attribute;
3. waits until the service committed every record, then reads every stored row back with
   ``writetime(message)``, the time Cassandra's client stamped the write (the service's driver,
   just before sending it). Latency = writetime − send time; "queryable" is that plus one write
   round trip. A probe also polls ``logs_by_trace`` for a few records to measure the latency a
   reader really sees;
4. bare limits of the same run, same records: a bare aiokafka consumer reading the topic from
   the beginning (records/s), and bare cassandra-driver single-row INSERTs of the same rows into
   a table of the same schema (``execute_concurrent_with_args``, 64 in flight; rows/s).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from typing import Any

import httpx
import orjson
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from cassandra.concurrent import execute_concurrent_with_args

from vigie_localstack.settings import StackSettings
from vigie_logs.adapters.cassandra import COLUMNS, hour_of, schema
from vigie_logs.handlers import Redactor, Source, process
from vigie_runtime.testing import TopicFactory, committed
from vigie_stores.cassandra import CassandraConfig, CassandraStore

PROBE_EVERY = 2000


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def make_line(i: int, sent_us: int, trace: str | None) -> tuple[bytes, bytes]:
    """One record of the mix; ``sent`` is a field every parser keeps as an attribute."""
    kind = i % 10
    ip = f"10.{i % 200}.{(i // 200) % 250}.{i % 250 + 1}"
    if kind < 4:
        app = {
            "time": "2026-11-26T10:00:00Z",
            "level": "info",
            "msg": f"order {i} authorised for customer c-{i % 997}",
            "logger": "checkout.api",
            "trace_id": trace or f"{i:032x}",
            "span_id": f"{i:016x}",
            "sent": sent_us,
        }
        outer = {
            "log": orjson.dumps(app).decode() + "\n",
            "stream": "stdout",
            "time": "2026-11-26T10:00:00.000000001Z",
            "kubernetes": {"pod_name": f"checkout-{i % 4}", "labels": {"app": "checkout"}},
        }
        return b"", orjson.dumps(outer)
    if kind < 6:
        return b"gateway", (
            f'ts=2026-11-26T10:00:00Z level=info msg="upstream call" duration={i % 300}ms '
            f"path=/v1/pay?token=tok{i:012d} client_ip={ip} sent={sent_us}"
        ).encode()
    if kind < 8:
        return b"edge", (
            f'{ip} - - [26/Nov/2026:10:00:00 +0000] "GET /v1/cards/{i}?email=u{i}@example.com '
            f'HTTP/1.1" {200 if i % 50 else 503} 512 "-" "Mozilla/5.0" 0.0{i % 9} sent={sent_us}'
        ).encode()
    if kind == 8:
        return b"ledger", (
            f"2026-11-26 10:00:00,123 - ledger.db - ERROR - charge {i} failed sent={sent_us}\n"
            "Traceback (most recent call last):\n"
            '  File "/app/src/ledger/db.py", line 88, in charge\n    cur.execute(q)\n'
            "psycopg.OperationalError: connection refused"
        ).encode()
    return b"auth", (
        f'{{"time":"2026-11-26T10:00:00Z","level":"warn","msg":"login failed for user u-{i % 50} '
        f'from {ip}","password":"pw{i}","sent":{sent_us}}}'
    ).encode()


async def produce(
    bootstrap: str, topic: str, rate: int, seconds: float, probes: list[tuple[str, int]]
) -> tuple[int, float]:
    """Paced in 10 ms ticks; appends (trace id, sent µs) of the probe records to ``probes``."""
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap,
        linger_ms=5,
        compression_type="gzip",
        acks="all",
        max_batch_size=256 * 1024,
    )
    await producer.start()
    sent = 0
    total = int(rate * seconds)
    started = time.perf_counter()
    try:
        while sent < total:
            due = min(total, int((time.perf_counter() - started) * rate) + 1)
            futures = []
            while sent < due:
                sent_us = time.time_ns() // 1000
                trace = None
                if sent % PROBE_EVERY == 0:
                    trace = uuid.uuid4().hex
                    probes.append((trace, sent_us))
                # a probe is always an app JSON record (i % 10 == 0): it carries the trace id
                key, value = make_line(sent * 10 if trace else sent, sent_us, trace)
                futures.append(await producer.send(topic, value, key=key or None))
                sent += 1
            if futures:
                await asyncio.gather(*futures)
            await asyncio.sleep(0.01)
        elapsed = time.perf_counter() - started
    finally:
        await producer.stop()
    return sent, sent / elapsed


async def probe(
    store: CassandraStore, keyspace: str, probes: list[tuple[str, int]], stop: asyncio.Event
) -> list[float]:
    """Poll logs_by_trace (every 20 ms) for each probe record once it was sent."""
    found: list[float] = []
    cql = f"SELECT id FROM {keyspace}.logs_by_trace WHERE trace_id = ?"  # noqa: S608 - identifiers validated, values bound
    seen: set[str] = set()
    while True:
        pending = [(t, s) for t, s in list(probes) if t not in seen]
        if stop.is_set() and not pending:
            break
        for trace, sent_us in pending:
            if await store.execute(cql, (trace,)):
                found.append((time.time_ns() // 1000 - sent_us) / 1000)
                seen.add(trace)
        if stop.is_set() and all(
            time.time_ns() // 1000 - s > 120e6 for t, s in pending if t not in seen
        ):
            break  # give up on probes lost for two minutes
        await asyncio.sleep(0.02)
    return found


_SENT = re.compile(r"\bsent=(\d{16})")


def _sent_of(row: dict[str, Any]) -> int | None:
    """The send time (µs) each record carries: an attribute, or "sent=" in its text."""
    attributes = dict(row["attributes"] or {})
    if "sent" in attributes:
        return int(attributes["sent"])
    found = _SENT.search(" ".join([row["message"] or "", *attributes.values()]))
    return int(found.group(1)) if found else None


def pct(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def bare_consume(bootstrap: str, topic: str, n: int) -> float:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    seen = 0
    try:
        started = time.perf_counter()
        while seen < n:
            batches = await consumer.getmany(timeout_ms=500, max_records=5000)
            seen += sum(len(r) for r in batches.values())
        return seen / (time.perf_counter() - started)
    finally:
        await consumer.stop()


async def bare_insert(
    store: CassandraStore, keyspace: str, lines: list[tuple[bytes, bytes]]
) -> float:
    body = schema(keyspace)[0].replace(f"{keyspace}.logs ", f"{keyspace}.logs_bare ")
    await store.ensure_schema(keyspace, [body])
    redactor = Redactor(b"bench-pseudonym-key-0123456789")
    rows = []
    for offset, (key, value) in enumerate(lines):
        rec = process(
            value, Source("bench", 0, offset, 1795687200000, key), redactor, max_bytes=65536
        ).record
        h = rec.http
        rows.append(
            (
                rec.service,
                hour_of(rec.time),
                rec.time,
                uuid.UUID(rec.id),
                rec.ingest_time,
                rec.source,
                rec.host,
                rec.level,
                rec.message,
                rec.logger,
                rec.trace_id,
                rec.span_id,
                h.method,
                h.path,
                h.status,
                h.duration_ms,
                h.remote,
                h.user_agent,
                rec.attributes,
                rec.format,
                rec.exception_type,
                rec.fingerprint,
                rec.redactions,
                set(rec.flags),
            )
        )
    columns = ("service", "hour", *COLUMNS)
    marks = ", ".join("?" * len(columns))
    insert = f"INSERT INTO {keyspace}.logs_bare ({', '.join(columns)}) VALUES ({marks})"  # noqa: S608
    prepared = await store.prepare(insert)

    def run() -> float:
        started = time.perf_counter()
        results = execute_concurrent_with_args(
            store.session, prepared, rows, concurrency=64, raise_on_first_error=True
        )
        assert all(ok for ok, _ in results)  # noqa: S101 - a bench, not a check
        return len(rows) / (time.perf_counter() - started)

    return await asyncio.to_thread(run)


async def main(rate: int, seconds: float, bare_rows: int) -> None:
    stack = StackSettings()
    bootstrap = f"{stack.host}:{stack.kafka_port}"
    tag = uuid.uuid4().hex[:8]
    keyspace = f"bench_logs_{tag}"
    service_name = f"logs-bench-{tag}"
    lake_dir = tempfile.mkdtemp(prefix="logs-bench-lake-")
    port = _free_port()
    topics = TopicFactory(bootstrap)
    input_topic = (await topics.create(f"bench.logs.raw.{tag}", 6)).name
    security_topic = (await topics.create(f"bench.logs.security.{tag}", 1)).name
    await topics.create(f"dlq.{service_name}", 1)
    env = {
        **os.environ,
        "VIGIE_LOGS_INPUT_TOPIC": input_topic,
        "VIGIE_LOGS_SECURITY_TOPIC": security_topic,
        "VIGIE_LOGS_KEYSPACE": keyspace,
        "VIGIE_LOGS_PSEUDONYM_KEY": "bench-pseudonym-key-0123456789",
        "VIGIE_LOGS_LAKE__URL": lake_dir,
        # commits wait for the lake's files to be final (commit gate): roll them every 2 s so
        # the "all committed" wait below ends soon after the last record
        "VIGIE_LOGS_LAKE__MAX_FILE_AGE": "PT2S",
        "VIGIE_LOGS_LAKE_ROLL_INTERVAL_S": "0.5",
        "VIGIE_LOGS_KAFKA__BOOTSTRAP_SERVERS": bootstrap,
        "VIGIE_LOGS_KAFKA__BATCH_MAX_RECORDS": "2000",
        "VIGIE_LOGS_KAFKA__BATCH_TIMEOUT_MS": "20",
        "VIGIE_LOGS_CASSANDRA__CONTACT_POINTS": f'["{stack.host}"]',
        "VIGIE_LOGS_CASSANDRA__PORT": str(stack.cassandra_port),
        "VIGIE_LOGS_OBSERVABILITY__SERVICE_NAME": service_name,
        "VIGIE_LOGS_OBSERVABILITY__HTTP_PORT": str(port),
        "VIGIE_LOGS_OBSERVABILITY__LOG_LEVEL": "warning",
    }
    # the service in its own process, as in a pod; started once, so blocking here is harmless
    proc = subprocess.Popen([sys.executable, "-m", "vigie_logs"], env=env)  # noqa: ASYNC220  # noqa: S603 - our own module
    store = await CassandraStore.open(
        CassandraConfig(contact_points=(stack.host,), port=stack.cassandra_port)
    )
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as client:
            deadline = time.monotonic() + 90
            while True:
                if proc.poll() is not None:
                    raise SystemExit(f"service exited with {proc.returncode}")
                try:
                    if (await client.get("/health/ready")).status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                if time.monotonic() > deadline:
                    raise SystemExit("service not ready in 90 s")
                await asyncio.sleep(0.3)
        stop_probe = asyncio.Event()
        # filled by the producer as it sends, polled by the probe meanwhile
        probes: list[tuple[str, int]] = []
        probe_task = asyncio.create_task(probe(store, keyspace, probes, stop_probe))
        started = time.perf_counter()
        n, achieved = await produce(bootstrap, input_topic, rate, seconds, probes)
        deadline = time.monotonic() + max(180.0, seconds * 6)
        while True:
            done = sum(max(o, 0) for o in await committed(bootstrap, service_name, input_topic, 6))
            if done >= n or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
        drained = time.perf_counter() - started
        stop_probe.set()
        probe_ms = await probe_task
        proc.send_signal(signal.SIGTERM)
        await asyncio.to_thread(proc.wait, 60)

        rows = await store.execute(
            f"SELECT message, attributes, writetime(message) AS wt FROM {keyspace}.logs"  # noqa: S608 - identifiers validated, values bound
        )
        latencies = []
        for row in rows:
            sent = _sent_of(row)
            if sent is not None:
                latencies.append((row["wt"] - sent) / 1000)
        bare_kafka = await bare_consume(bootstrap, input_topic, n)
        sample = [make_line(i, 0, None) for i in range(min(bare_rows, n))]
        bare_cassandra = await bare_insert(store, keyspace, sample)

        print(
            f"\nservices/logs latency bench — target {rate} records/s for {seconds:g} s "
            f"({n} records)"
        )
        print(f"  produced: {achieved:,.0f} records/s achieved by the bench producer")
        print(
            f"  stored:   {len(rows)}/{n} rows ({len(latencies)} with a send time); "
            + (f"only {done} committed (timed out)" if done < n else "all committed")
            + f" {drained:.1f} s after the first send → {min(done, n) / drained:,.0f} records/s"
        )
        print(
            f"  produced → written (writetime), all rows: p50 {pct(latencies, 0.5):,.0f} ms, "
            f"p99 {pct(latencies, 0.99):,.0f} ms, "
            f"max {max(latencies, default=float('nan')):,.0f} ms"
        )
        print(
            f"  produced → queryable (probe polling logs_by_trace, {len(probe_ms)} probes): "
            f"p50 {pct(probe_ms, 0.5):,.0f} ms, p99 {pct(probe_ms, 0.99):,.0f} ms"
        )
        print(f"  bare aiokafka consume (same topic, from the start): {bare_kafka:,.0f} records/s")
        print(
            f"  bare cassandra-driver INSERTs (same rows, 64 in flight, {len(sample)} rows): "
            f"{bare_cassandra:,.0f} rows/s"
        )
        if latencies:
            print(f"  mean {statistics.fmean(latencies):,.0f} ms")
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(proc.wait, 60)
        await store.drop_keyspace(keyspace)
        await store.close()
        await topics.close()
        shutil.rmtree(lake_dir, ignore_errors=True)


def cli() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=int, default=20_000, help="records/s to produce")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument(
        "--bare-rows", type=int, default=20_000, help="rows for the bare INSERT run"
    )
    args = parser.parse_args()
    asyncio.run(main(args.rate, args.seconds, args.bare_rows))


if __name__ == "__main__":
    cli()
