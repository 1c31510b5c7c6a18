"""services/features: transaction produced → its features visible in Redis, p50 / p99 at a
sustained rate, against a bare produce → consume → HSET path of the same run; REST lookup p99.

    .venv/bin/python bench/features_latency.py --rate 2000 --seconds 30

On fresh topics and a fresh Redis key prefix of the running local stack (removed at the end):
  (a) baseline: the same transactions (Avro envelopes keyed by customer) produced at --rate to a
      topic of their own; a bare aiokafka consumer HSETs + PEXPIREs each record's customer key
      (one pipeline per fetched batch). What Kafka + one Redis write cost on this machine;
  (b) the worker (``vigie-features worker``, a process of its own, RocksDB tables, changelogs)
      fed the same way. Every --probe-every-th transaction belongs to a new customer and a new
      terminal: the first appearance of ``feat:customer:<id>`` is "the customer's features are
      visible" (one hop: transactions → customers agent → Redis), of ``feat:terminal:<id>`` the
      terminal's (two hops: → customers → repartition topic → merchants agent → Redis). Both
      paths are polled alike: one pipelined EXISTS of the pending probe keys every 5 ms;
      latency = first seen − send time. The other transactions go to --customers customers and
      --terminals terminals (merchant = terminal // 4), so states have history;
  (c) REST (``vigie-features api``, a process of its own): sequential GET of one customer and
      POST /v1/features/lookup of --batch entities (customers, cards, terminals, merchants),
      against GET /health/live of the same process.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "services/features/tests"))

import features_testkit as kit  # noqa: E402
import httpx  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402
from aiokafka.admin import AIOKafkaAdminClient, NewTopic  # noqa: E402

from vigie_contracts import Envelope, encode  # noqa: E402
from vigie_contracts.events import TransactionCreated  # noqa: E402
from vigie_contracts.events.features import EntityType  # noqa: E402
from vigie_contracts.events.payments import Channel, TransactionStatus  # noqa: E402
from vigie_features.settings import FeaturesSettings  # noqa: E402
from vigie_featureset import entity_key  # noqa: E402
from vigie_localstack.settings import StackSettings  # noqa: E402
from vigie_runtime.testing import eventually  # noqa: E402
from vigie_stores.redis import RedisStore  # noqa: E402
from vigie_stores.testing import throwaway_redis  # noqa: E402

POLL_S = 0.005


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def line(name: str, values: list[float], expected: int | None = None) -> str:
    if not values:
        return f"{name:<52} no values"
    lost = f"  ({expected - len(values)} never seen)" if expected and expected > len(values) else ""
    return (
        f"{name:<52} n={len(values):>6}  p50 {pct(values, 0.5):8.2f} ms  "
        f"p99 {pct(values, 0.99):8.2f} ms  max {max(values) * 1000:8.2f} ms{lost}"
    )


class Load:
    """The transactions of one phase, encoded beforehand (the pacing loop only sends)."""

    def __init__(self, args: Any, tag: str, start: datetime) -> None:
        rng = random.Random(7)
        total = int(args.rate * args.seconds)
        self.records: list[tuple[bytes, bytes]] = []
        #: index of a probe transaction → (customer id, terminal id)
        self.probes: dict[int, tuple[str, str]] = {}
        for i in range(total):
            if i % args.probe_every == 0:
                customer, terminal = f"p{tag}c{i}", f"p{tag}t{i}"
                self.probes[i] = (customer, terminal)
            else:
                customer = f"c{rng.randrange(args.customers)}"
                terminal = f"t{rng.randrange(args.terminals)}"
            tx = TransactionCreated(
                transaction_id=f"{tag}-{i}",
                customer_id=customer,
                card_token=f"k-{customer}",
                terminal_id=terminal,
                merchant_id=f"m-{terminal}",
                amount_minor=rng.randint(100, 30_000),
                currency="EUR",
                status=TransactionStatus.AUTHORIZED,
                channel=Channel.POS,
                occurred_at=start + timedelta(seconds=i / args.rate),
            )
            envelope = Envelope.wrap(tx, producer="bench", event_time=tx.occurred_at)
            self.records.append((customer.encode(), encode(envelope)))


async def paced(
    bootstrap: str, topic: str, load: Load, rate: int, on_sent: Callable[[int, float], None]
) -> float:
    """Send the load at ``rate``/s in 5 ms ticks; returns the achieved rate."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1, acks="all")
    await producer.start()
    try:
        started = time.perf_counter()
        sent = 0
        total = len(load.records)
        while sent < total:
            due = min(total, int((time.perf_counter() - started) * rate) + 1)
            futures = []
            while sent < due:
                key, value = load.records[sent]
                on_sent(sent, time.perf_counter())
                futures.append(await producer.send(topic, value, key=key))
                sent += 1
            if futures:
                await asyncio.gather(*futures)
            await asyncio.sleep(0.005)
        return total / (time.perf_counter() - started)
    finally:
        await producer.stop()


class Poller:
    """Polls EXISTS of pending keys every POLL_S; records first-seen − sent."""

    def __init__(self, redis: Any) -> None:
        self.redis = redis
        self.pending: dict[str, tuple[str, float]] = {}  # redis key → (series, sent)
        self.seen: dict[str, list[float]] = {}
        self.done = asyncio.Event()

    def watch(self, series: str, key: str, sent: float) -> None:
        self.pending[key] = (series, sent)

    async def run(self, give_up_s: float = 30.0) -> None:
        while True:
            keys = list(self.pending)
            if keys:
                pipe = self.redis.pipeline(transaction=False)
                for key in keys:
                    pipe.exists(key)
                found = await pipe.execute()
                now = time.perf_counter()
                for key, hit in zip(keys, found, strict=True):
                    series, sent = self.pending[key]
                    if hit:
                        self.seen.setdefault(series, []).append(now - sent)
                        del self.pending[key]
                    elif now - sent > give_up_s:
                        del self.pending[key]
            elif self.done.is_set():
                return
            await asyncio.sleep(POLL_S)


async def baseline(args: Any, bootstrap: str, topic: str, redis: Any, prefix: str) -> None:
    load = Load(args, "b", datetime.now(UTC))
    poller = Poller(redis)
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, group_id=f"{prefix}base", auto_offset_reset="earliest"
    )
    await consumer.start()
    total = len(load.records)
    stop = asyncio.Event()

    async def consume() -> None:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=50, max_records=2000)
            records = [r for rs in batches.values() for r in rs]
            if not records:
                continue
            pipe = redis.pipeline(transaction=False)
            for r in records:
                name = f"{prefix}base:customer:{r.key.decode()}"
                pipe.hset(name, mapping={"_pos": f"{r.partition}:{r.offset}", "v": r.value})
                pipe.pexpire(name, 600_000)
            await pipe.execute()

    def sent(i: int, at: float) -> None:
        probe = load.probes.get(i)
        if probe is not None:
            poller.watch("customer", f"{prefix}base:customer:{probe[0]}", at)

    consumer_task = asyncio.create_task(consume())
    # warm-up: the group has joined and a first record went all the way
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, b"warm", key=b"warm")
    finally:
        await producer.stop()

    async def warmed() -> bool:
        return bool(await redis.exists(f"{prefix}base:customer:warm"))

    await eventually(warmed, timeout_s=60, every_s=0.1)
    poll_task = asyncio.create_task(poller.run())
    try:
        rate = await paced(bootstrap, topic, load, args.rate, sent)
        poller.done.set()
        await asyncio.wait_for(poll_task, 60)
    finally:
        stop.set()
        await asyncio.wait_for(consumer_task, 10)
        await consumer.stop()
    print(f"(a) baseline: {total} records at {rate:,.0f}/s")
    print(line("(a) baseline produce -> consume -> HSET visible", poller.seen.get("customer", []),
               len(load.probes)))


def _env(s: FeaturesSettings, port: int) -> dict[str, str]:
    env = {**os.environ, **kit.env_of(s)}
    env["VIGIE_FEATURES_OBSERVABILITY__HTTP_PORT"] = str(port)
    env["VIGIE_FEATURES_COMMIT_INTERVAL_S"] = "1.0"
    return env


async def _until_ready(client: httpx.AsyncClient, timeout_s: float = 90) -> None:
    async def ready() -> bool:
        try:
            return (await client.get("/health/ready")).status_code == 200
        except httpx.TransportError:
            return False

    await eventually(ready, timeout_s=timeout_s, every_s=0.2)


async def worker_phase(
    args: Any, s: FeaturesSettings, store: RedisStore, status: httpx.AsyncClient
) -> Load:
    redis = store.client
    prefix = s.redis.key_prefix
    # warm-up: the group has joined, the tables are assigned, the internal topics exist
    warm = TransactionCreated(
        transaction_id="warm-0", customer_id="warm", card_token=None, terminal_id="warm-t",
        merchant_id="warm-m", amount_minor=100, currency="EUR",
        status=TransactionStatus.AUTHORIZED, channel=Channel.POS, occurred_at=datetime.now(UTC),
    )
    producer = AIOKafkaProducer(bootstrap_servers=s.kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            s.transactions_topic,
            encode(Envelope.wrap(warm, producer="bench", event_time=warm.occurred_at)),
            key=b"warm",
        )
    finally:
        await producer.stop()

    async def warmed() -> bool:
        found = await store.read_hashes([entity_key(EntityType.TERMINAL, "warm-t")])
        return bool(found)

    await eventually(warmed, timeout_s=120, every_s=0.2)
    load = Load(args, "w", datetime.now(UTC))
    poller = Poller(redis)

    def sent(i: int, at: float) -> None:
        probe = load.probes.get(i)
        if probe is not None:
            customer, terminal = probe
            poller.watch("customer", prefix + entity_key(EntityType.CUSTOMER, customer), at)
            poller.watch("terminal", prefix + entity_key(EntityType.TERMINAL, terminal), at)

    poll_task = asyncio.create_task(poller.run())
    cpu_before = _cpu(args.worker_pids)
    started = time.perf_counter()
    rate = await paced(s.kafka.bootstrap_servers, s.transactions_topic, load, args.rate, sent)
    poller.done.set()
    await asyncio.wait_for(poll_task, 120)
    elapsed = time.perf_counter() - started
    cpu = (_cpu(args.worker_pids) - cpu_before) / elapsed
    body = (await status.get("/status")).json()
    print(
        f"(b) worker ({args.workers} process(es), {s.partitions} partitions): "
        f"{len(load.records)} transactions at {rate:,.0f}/s; worker CPU {cpu:.2f} cores; "
        f"late {body['late_total']}, redis written {body['redis']['written']}"
    )
    n = len(load.probes)
    print(line("(b) transaction -> customer features visible", poller.seen.get("customer", []), n))
    print(line("(b) transaction -> terminal features visible", poller.seen.get("terminal", []), n))
    return load


def _cpu(pids: list[int]) -> float:
    """user + system seconds of the worker processes (Linux /proc)."""
    total = 0.0
    tick = os.sysconf("SC_CLK_TCK")
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


async def rest_phase(args: Any, client: httpx.AsyncClient, load: Load) -> None:
    rng = random.Random(3)
    customers = [f"c{i}" for i in range(args.customers)]
    terminals = [f"t{i}" for i in range(args.terminals)]
    one: list[float] = []
    batch: list[float] = []
    live: list[float] = []
    for _ in range(args.rest_calls):
        t = time.perf_counter()
        r = await client.get("/health/live")
        live.append(time.perf_counter() - t)
        cid = rng.choice(customers)
        t = time.perf_counter()
        r = await client.get(f"/v1/features/customer/{cid}")
        one.append(time.perf_counter() - t)
        if r.status_code not in (200, 404):
            raise RuntimeError(r.text)
        entities: list[dict[str, str]] = []
        for _ in range(args.batch // 4):
            c, term = rng.choice(customers), rng.choice(terminals)
            entities += [
                {"entity_type": "customer", "entity_id": c},
                {"entity_type": "card", "entity_id": f"k-{c}"},
                {"entity_type": "terminal", "entity_id": term},
                {"entity_type": "merchant", "entity_id": f"m-{term}"},
            ]
        t = time.perf_counter()
        r = await client.post("/v1/features/lookup", json={"entities": entities})
        batch.append(time.perf_counter() - t)
        if r.status_code != 200:
            raise RuntimeError(r.text)
    found = sum(x["found"] for x in r.json()["results"])
    print(line("(c) REST GET /v1/features/customer/{id}", one))
    print(line(f"(c) REST POST /v1/features/lookup ({len(entities)} entities)", batch)
          + f"  [{found} found in the last]")
    print(line("(c) baseline REST GET /health/live", live))


def spawn(
    s: FeaturesSettings, tmp: Path, ports: list[int], api_port: int
) -> list[subprocess.Popen[bytes]]:
    """The workers (one per port), then the API; each a process of its own, like in a pod."""
    procs = []
    with (tmp / "processes.log").open("ab") as out:
        for i, port in enumerate(ports):
            env = _env(s, port)
            env["VIGIE_FEATURES_DATA_DIR"] = str(tmp / f"state-{i}")
            procs.append(
                subprocess.Popen(  # noqa: S603 - our own entry point
                    [sys.executable, "-m", "vigie_features", "worker"],
                    env=env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                )
            )
        procs.append(
            subprocess.Popen(  # noqa: S603 - our own entry point
                [sys.executable, "-m", "vigie_features", "api"],
                env=_env(s, api_port),
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        )
    return procs


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--customers", type=int, default=20_000)
    parser.add_argument("--terminals", type=int, default=5_000)
    parser.add_argument("--probe-every", type=int, default=20)
    parser.add_argument("--partitions", type=int, default=12)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--rest-calls", type=int, default=500)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--skip-baseline", action="store_true")
    args = parser.parse_args()
    stack = StackSettings()
    unique = os.urandom(5).hex()
    tmp = Path(tempfile.mkdtemp(prefix="features-bench-"))
    base = kit.settings(stack, unique, tmp / "state")
    s = base.model_copy(update={"partitions": args.partitions})
    bootstrap = s.kafka.bootstrap_servers
    base_topic = f"t-{unique}-baseline"
    print(f"rate {args.rate}/s for {args.seconds}s, probe every {args.probe_every}th, "
          f"{args.customers} customers, {args.terminals} terminals")
    await kit.create_topics(s)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(base_topic, args.partitions, 1)])
    finally:
        await admin.close()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        async with throwaway_redis(s.redis) as store:
            if not args.skip_baseline:
                await baseline(args, bootstrap, base_topic, store.client, s.redis.key_prefix)
            ports = [_free_port() for _ in range(args.workers)]
            api_port = _free_port()
            procs = spawn(s, tmp, ports, api_port)
            args.worker_pids = [p.pid for p in procs[:-1]]
            async with (
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{ports[0]}", timeout=10) as status,
                httpx.AsyncClient(base_url=f"http://127.0.0.1:{api_port}", timeout=10) as api,
            ):
                await _until_ready(status)
                await _until_ready(api)
                load = await worker_phase(args, s, store, status)
                await rest_phase(args, api, load)
    finally:
        for p in procs:
            p.terminate()
        for p in procs:
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
        await kit.delete_topics(s, unique)
        await _delete_group(bootstrap, f"{s.redis.key_prefix}base")
        print(f"process logs: {tmp / 'processes.log'}")


async def _delete_group(bootstrap: str, group: str) -> None:
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.delete_consumer_groups([group])
    except Exception:  # noqa: BLE001, S110 - best effort: an empty group expires anyway
        pass
    finally:
        await admin.close()


if __name__ == "__main__":
    asyncio.run(main())
