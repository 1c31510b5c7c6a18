"""ingest-cdc: OLTP commit → domain event published and mirror written, at a sustained rate.

    .venv/bin/python bench/ingest_cdc_latency.py --rate 2000 --seconds 20

The service runs as a subprocess (its own process, as in production) against the local stack,
with its own consumer group (starting at the end of the CDC topics) and a throwaway MongoDB
database. The load: ``--writers`` autocommit connections insert payments at ``--rate`` rows/s in
total, open loop (a writer that falls behind sends at once and the rate achieved is reported).

Measured from the time each INSERT's commit returned to the client:

- baseline: the raw Debezium change event consumed from ``cdc.public.transactions`` (the
  floor: the service cannot publish before Debezium did);
- event: its ``transaction_created`` consumed from ``payments.transactions``;
- mirror: its document visible in MongoDB (1 row in ``--sample`` polled by ``_id``);
- the service's own histograms (commit timestamp of PostgreSQL → acked / written), read from
  its ``/metrics``, as a cross-check.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import httpx
import orjson
import psycopg
from aiokafka import AIOKafkaConsumer, TopicPartition
from prometheus_client.parser import text_string_to_metric_families

from vigie_contracts import decode
from vigie_localstack.settings import StackSettings

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services/ingest-cdc/tests"))
# the tests' helpers, shared with the bench (found through the sys.path entry above)
from ingest_cdc_testkit import (  # type: ignore[import-not-found, unused-ignore]  # noqa: E402
    CARD_KEY,
    PSEUDONYM_KEY,
    bootstrap,
    cdc_topics,
    commit_group_at_end,
    free_port,
    mirror_store,
    seed,
)


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


async def tail(bootstrap_servers: str, topic: str, on_record: Any, stop: asyncio.Event) -> None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap_servers,
        enable_auto_commit=False,
        isolation_level="read_committed",
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    try:
        await consumer._client.force_metadata_update()
        tps = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(tps)
        for tp, end in (await consumer.end_offsets(tps)).items():
            consumer.seek(tp, end)
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=100, max_records=2000)
            now = time.time()
            for records in batches.values():
                for record in records:
                    if record.value is not None:
                        on_record(record.value, now)
    finally:
        await consumer.stop()


def histogram_quantiles(text: str, name: str, qs: tuple[float, ...]) -> dict[float, float]:
    """Quantiles of a Prometheus histogram (summed over labels), linear within buckets."""
    buckets: dict[float, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name != name:
            continue
        for sample in family.samples:
            if sample.name.endswith("_bucket"):
                le = float(sample.labels["le"])
                buckets[le] = buckets.get(le, 0.0) + sample.value
    if not buckets:
        return {}
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    out: dict[float, float] = {}
    for q in qs:
        rank, prev_bound, prev_count = q * total, 0.0, 0.0
        for bound in bounds:
            if buckets[bound] >= rank:
                if bound == float("inf"):
                    out[q] = prev_bound
                else:
                    span = buckets[bound] - prev_count
                    frac = 0.0 if span == 0 else (rank - prev_count) / span
                    out[q] = prev_bound + (bound - prev_bound) * frac
                break
            prev_bound, prev_count = bound, buckets[bound]
    return out


async def main(args: argparse.Namespace) -> None:
    stack = StackSettings()
    unique = uuid.uuid4().hex[:10]
    boot = bootstrap(stack)
    group = f"ingest-cdc-bench-{unique}"
    await commit_group_at_end(boot, group, cdc_topics())
    lake = Path(tempfile.mkdtemp(prefix="ingest-cdc-bench-"))
    port = free_port()
    p = "VIGIE_INGEST_CDC_"
    env = {
        **os.environ,
        f"{p}KAFKA__BOOTSTRAP_SERVERS": boot,
        f"{p}KAFKA__GROUP_ID": group,
        f"{p}KAFKA__BATCH_MAX_RECORDS": str(args.batch),
        f"{p}KAFKA__BATCH_TIMEOUT_MS": str(args.batch_timeout_ms),
        f"{p}OBSERVABILITY__HTTP_HOST": "127.0.0.1",
        f"{p}OBSERVABILITY__HTTP_PORT": str(port),
        f"{p}OBSERVABILITY__LOG_LEVEL": "warning",
        f"{p}PII__CARD_TOKEN_KEY": CARD_KEY,
        f"{p}PII__PSEUDONYM_KEY": PSEUDONYM_KEY,
        f"{p}MONGO__URL": f"mongodb://{stack.host}:{stack.mongo_port}",
        f"{p}MONGO__DATABASE": f"vigie_bench_cdc_{unique}",
        f"{p}LAKE__URL": str(lake),
        f"{p}MIRROR_WRITE_MODE": args.mirror_mode,
    }
    log = lake / "service.log"
    with log.open("wb") as out:
        # the service under test, started once before any load
        service = subprocess.Popen(  # noqa: S603, ASYNC220
            [sys.executable, "-m", "vigie_ingest_cdc"], env=env, stdout=out, stderr=out
        )
    store = await mirror_store(stack, unique, "bench")
    mirror = store.database["transactions"]
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
        for _ in range(300):
            try:
                if (await http.get("/health/ready")).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
        else:
            raise SystemExit(f"service not ready: {log.read_text()[-2000:]}")

        async with await psycopg.AsyncConnection.connect(
            stack.postgres_dsn(), autocommit=True
        ) as conn:
            seeded = await seed(conn, unique)
        customer = seeded.customer

        committed: dict[int, float] = {}
        raw_seen: dict[int, float] = {}
        event_seen: dict[int, float] = {}
        mirror_seen: dict[int, float] = {}
        sampled: set[int] = set()
        stop = asyncio.Event()

        def on_raw(value: bytes, now: float) -> None:
            doc = orjson.loads(value)
            after = doc.get("after") or {}
            if doc.get("op") == "c" and after.get("customer_id") == customer:
                raw_seen.setdefault(after["id"], now)

        def on_event(value: bytes, now: float) -> None:
            envelope = decode(value)
            if envelope.event_type != "transaction_created":
                return
            fields = envelope.payload.model_dump()
            if fields["customer_id"] == str(customer):
                event_seen.setdefault(int(fields["transaction_id"]), now)

        async def poll_mirror() -> None:
            while not stop.is_set():
                pending = [i for i in sampled if i not in mirror_seen]
                if pending:
                    try:
                        found = [
                            d["_id"]
                            async for d in mirror.find({"_id": {"$in": pending}}, {"_id": 1})
                        ]
                    except Exception:  # noqa: BLE001 - a dropped connection: poll again
                        found = []
                    now = time.time()
                    for i in found:
                        mirror_seen.setdefault(i, now)
                await asyncio.sleep(0.05)

        tails = [
            asyncio.create_task(tail(boot, "cdc.public.transactions", on_raw, stop)),
            asyncio.create_task(tail(boot, "payments.transactions", on_event, stop)),
            asyncio.create_task(poll_mirror()),
        ]
        await asyncio.sleep(2)  # consumers positioned

        total = int(args.rate * args.seconds)
        start = time.time() + 0.5
        late = 0

        async def writer(w: int) -> None:
            nonlocal late
            async with await psycopg.AsyncConnection.connect(
                stack.postgres_dsn(), autocommit=True
            ) as c:
                for i in range(w, total, args.writers):
                    due = start + i / args.rate
                    delay = due - time.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                    elif delay < -0.1:
                        late += 1
                    cur = await c.execute(
                        "INSERT INTO transactions (customer_id, card_id, terminal_id, merchant_id,"
                        " amount, currency) VALUES (%s, %s, %s, %s, %s, 'EUR') RETURNING id",
                        (customer, seeded.card, seeded.terminal, seeded.merchant, f"{i % 500}.99"),
                    )
                    row = await cur.fetchone()
                    if row is None:
                        raise RuntimeError("INSERT ... RETURNING returned nothing")
                    committed[row[0]] = time.time()
                    if i % args.sample == 0:
                        sampled.add(row[0])

        await asyncio.gather(*(writer(w) for w in range(args.writers)))
        load_end = time.time()
        deadline = time.time() + args.drain
        while time.time() < deadline and (  # noqa: ASYNC110 - polling counters the tails fill
            len(event_seen) < len(committed) or len(mirror_seen) < len(sampled)
        ):
            await asyncio.sleep(0.2)
        metrics = (await http.get("/metrics")).text
        service_status = (await http.get("/status")).json()
        stop.set()
        await asyncio.gather(*tails, return_exceptions=True)
    service.send_signal(signal.SIGTERM)
    service.wait(60)
    await store.drop_database()
    await store.close()
    shutil.rmtree(lake, ignore_errors=True)

    n = len(committed)
    achieved = n / (load_end - start)
    last_event = max(event_seen.values(), default=start)

    def lat(seen: dict[int, float]) -> list[float]:
        return [seen[i] - committed[i] for i in seen if i in committed]

    base, ev, mi = lat(raw_seen), lat(event_seen), lat(mirror_seen)
    print(
        f"target {args.rate:.0f} tx/s for {args.seconds:.0f}s, {args.writers} writers, "
        f"batch {args.batch}, mirror writes {args.mirror_mode}"
    )
    print(
        f"OLTP commits: {n} in {load_end - start:.1f}s = {achieved:.0f} tx/s "
        f"({late} sent >100ms late)"
    )
    throughput = len(event_seen) / max(last_event - start, 1e-9)
    print(
        f"domain events: {len(event_seen)}/{n}; service throughput {throughput:.0f} events/s "
        "(first commit → last event)"
    )
    rows = [
        ("baseline: commit → raw Debezium event", base),
        ("commit → transaction_created consumed", ev),
        (f"commit → mirror visible (1 in {args.sample})", mi),
    ]
    print(f"{'latency (s)':44} {'n':>6} {'p50':>7} {'p99':>7} {'max':>7}")
    for name, values in rows:
        worst = max(values, default=float("nan"))
        print(
            f"{name:44} {len(values):6d} {pct(values, 0.5):7.3f} {pct(values, 0.99):7.3f} "
            f"{worst:7.3f}"
        )
    print(
        f"service time per stage (s, summed over {service_status['batches']} batches): "
        f"{service_status['stage_seconds']}"
    )
    for metric in ("vigie_cdc_commit_to_event_seconds", "vigie_cdc_commit_to_mirror_seconds"):
        q = histogram_quantiles(metrics, metric, (0.5, 0.99))
        if q:
            print(f"service histogram {metric}: p50 ≈ {q[0.5]:.3f}s, p99 ≈ {q[0.99]:.3f}s")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=2000.0, help="OLTP inserts per second")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--writers", type=int, default=8, help="PostgreSQL connections")
    parser.add_argument("--sample", type=int, default=10, help="poll the mirror for 1 row in N")
    parser.add_argument("--batch", type=int, default=500, help="service batch_max_records")
    parser.add_argument("--batch-timeout-ms", type=int, default=100)
    parser.add_argument(
        "--mirror-mode",
        choices=["bulk", "per_document"],
        default="bulk",
        help="the service's mirror_write_mode (see adapters/mirrors.py)",
    )
    parser.add_argument("--drain", type=float, default=60.0, help="seconds to wait after the load")
    asyncio.run(main(parser.parse_args()))
