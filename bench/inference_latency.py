"""Inference latency: transaction event → score published, REST score, learn throughput.

    .venv/bin/python bench/inference_latency.py --rate 2000 --seconds 30

On fresh topics / keyspace / database / Redis prefix of the running local stack (removed at
the end), with the scorer in a process of its own (``vigie-inference scorer``) serving the real
models (``vigie_inference.model``: DEFAULT_CHAMPION + DEFAULT_CHALLENGERS) from a checkpoint
the bench trains first (d) and saves to the registry:
  (a) baseline: a bare aiokafka produce → consume round trip at the same rate (what Kafka alone
      costs on this machine);
  (b) transaction_created produced at a sustained --rate; latency = the score's arrival on
      fraud.scores minus the transaction's send time, p50 / p99 / max (customers' features in
      Redis written beforehand, pending transactions, champion + shadow challengers);
  (c) REST ``POST /v1/score`` p50 / p99 (sequential calls) against ``GET /health/live``;
  (d) learn throughput: test-then-train labels/s of every model (LearnerCore, in process),
      against predict-only, on feature vectors ``complete()`` builds from the customers' history;
and where the scorer's time goes: per batch, the stream's score+publish and the background
writes of fraud_events (mongo), the prediction log (cassandra) and the sweep clock, read from
the scorer's /metrics.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "services/inference/tests"))

import httpx  # noqa: E402
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer  # noqa: E402
from inference_testkit import (  # noqa: E402
    cleanup,
    settings_for,
    states_of,
    transaction,
    write_features,
)

from vigie_contracts import Envelope, decode, encode  # noqa: E402
from vigie_featureset import TxFact, complete, vector_keys  # noqa: E402
from vigie_inference.adapters.models import ModelRegistry  # noqa: E402
from vigie_inference.adapters.predictions import StoredPrediction  # noqa: E402
from vigie_inference.handlers.learning import LabelIn, LearnerCore  # noqa: E402
from vigie_inference.serving import Kinds, fresh  # noqa: E402
from vigie_localstack.settings import StackSettings  # noqa: E402
from vigie_runtime.testing import eventually, topic_factory  # noqa: E402
from vigie_stores.mongo import MongoStore  # noqa: E402
from vigie_stores.redis import RedisStore  # noqa: E402

T0 = datetime(2018, 4, 1, tzinfo=UTC)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000


def line(name: str, values: list[float]) -> str:
    return (
        f"{name:<46} n={len(values):>6}  p50 {pct(values, 0.5):7.2f} ms  "
        f"p99 {pct(values, 0.99):7.2f} ms  max {max(values) * 1000:7.2f} ms"
    )


async def paced(rate: int, seconds: float, send: Any) -> None:
    total = int(rate * seconds)
    start = time.perf_counter()
    for i in range(total):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(i)


async def baseline(bootstrap: str, topic: str, rate: int, seconds: float) -> list[float]:
    sent: dict[int, float] = {}
    got: list[float] = []
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="latest")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, linger_ms=1, acks="all")
    await consumer.start()
    await producer.start()
    await asyncio.sleep(1)
    total = int(rate * seconds)

    async def consume() -> None:
        while len(got) < total:
            batches = await consumer.getmany(timeout_ms=100)
            now = time.perf_counter()
            for records in batches.values():
                for r in records:
                    got.append(now - sent[int(r.value)])

    task = asyncio.create_task(consume())

    async def send(i: int) -> None:
        sent[i] = time.perf_counter()
        await producer.send(topic, str(i).encode())

    await paced(rate, seconds, send)
    await asyncio.wait_for(task, 60)
    await producer.stop()
    await consumer.stop()
    return got


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=2000)
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--customers", type=int, default=5000)
    parser.add_argument("--rest-calls", type=int, default=500)
    parser.add_argument("--labels", type=int, default=5000)
    args = parser.parse_args()
    stack = StackSettings()
    unique = os.urandom(5).hex()
    settings = settings_for(stack, unique)
    bootstrap = settings.kafka.bootstrap_servers
    print(f"rate {args.rate}/s for {args.seconds}s, {args.customers} customers")
    history = make_history(args.customers)
    core = learn_bench(history, args.labels)
    async with topic_factory(bootstrap) as topics:
        await topics.create(settings.transactions_topic, 12)
        await topics.create(settings.scores_topic, 12)
        for name in (settings.decisions_topic, settings.labels_topic, settings.drift_topic):
            await topics.create(name, 1)
        await topics.create(f"dlq.{settings.service_name}", 1)
        base_topic = (await topics.create(f"t.bench.base.{unique}", 12)).name
        try:
            base = await baseline(bootstrap, base_topic, args.rate, args.seconds)
            mongo = await MongoStore.open(settings.mongo)
            async with mongo:
                # the scorer serves these trained states (not the cold-start rule)
                await ModelRegistry(mongo, settings.models_bucket).save(
                    1,
                    core.states(),
                    positions={},
                    learned=core.learned,
                    created_at=datetime.now(UTC),
                    learned_frauds=core.learned_frauds,
                )
            await run_scorer(args, stack, unique, settings, history)
            print(line("(a) baseline Kafka produce -> consume", base))
        finally:
            await cleanup(settings)


def make_history(customers: int) -> list[TxFact]:
    rng = random.Random(1)
    history = [
        TxFact.from_event(
            transaction(
                -i - 1,
                f"c{i % customers}",
                T0 - timedelta(hours=rng.uniform(1, 23)),
                rng.randint(100, 30000),
                f"term-{rng.randrange(10_000)}",
            )
        )
        for i in range(customers * 3)
    ]
    history.sort(key=lambda f: (f.occurred_at, f.transaction_id))
    return history


async def run_scorer(
    args: Any, stack: StackSettings, unique: str, settings: Any, history: list[TxFact]
) -> None:
    t0 = T0
    rng = random.Random(1)
    redis = await RedisStore.open(settings.redis)
    async with redis:
        states = states_of(history)
        items = list(states.items())
        for i in range(0, len(items), 2000):
            await write_features(redis, dict(items[i : i + 2000]))
    p = "VIGIE_INFERENCE_"
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT / "services/inference/tests"),
        f"{p}KAFKA__BOOTSTRAP_SERVERS": settings.kafka.bootstrap_servers,
        f"{p}KAFKA__GROUP_ID": f"bench-{unique}",
        f"{p}KAFKA__BATCH_TIMEOUT_MS": "2",
        f"{p}KAFKA__LINGER_MS": "1",
        f"{p}OBSERVABILITY__SERVICE_NAME": settings.service_name,
        f"{p}OBSERVABILITY__HTTP_HOST": "127.0.0.1",
        f"{p}OBSERVABILITY__HTTP_PORT": str(settings.observability.http_port),
        f"{p}OBSERVABILITY__LOG_LEVEL": "warning",
        f"{p}TRANSACTIONS_TOPIC": settings.transactions_topic,
        f"{p}SCORES_TOPIC": settings.scores_topic,
        f"{p}DECISIONS_TOPIC": settings.decisions_topic,
        f"{p}DRIFT_TOPIC": settings.drift_topic,
        f"{p}REDIS__URL": settings.redis.url.get_secret_value(),
        f"{p}REDIS__KEY_PREFIX": settings.redis.key_prefix,
        f"{p}CASSANDRA__CONTACT_POINTS": f'["{stack.host}"]',
        f"{p}KEYSPACE": settings.keyspace,
        f"{p}MONGO__URL": settings.mongo.url.get_secret_value(),
        f"{p}MONGO__DATABASE": settings.mongo.database,
    }
    worker = ROOT / "services/inference/tests/inference_learner_worker.py"
    # a process of its own: the bench must not share its CPU with the scorer
    proc = subprocess.Popen([sys.executable, str(worker), "scorer"], env=env)  # noqa: S603, ASYNC220
    url = f"http://127.0.0.1:{settings.observability.http_port}"
    try:
        async with httpx.AsyncClient(base_url=url, timeout=10) as client:

            async def ready() -> bool:
                try:
                    return (await client.get("/health/ready")).status_code == 200
                except httpx.TransportError:
                    return False

            await eventually(ready, timeout_s=60, every_s=0.2)
            sent: dict[str, float] = {}
            got: list[float] = []
            total = int(args.rate * args.seconds)
            consumer = AIOKafkaConsumer(
                settings.scores_topic,
                bootstrap_servers=settings.kafka.bootstrap_servers,
                auto_offset_reset="latest",
            )
            producer = AIOKafkaProducer(
                bootstrap_servers=settings.kafka.bootstrap_servers, linger_ms=1, acks="all"
            )
            await consumer.start()
            await producer.start()
            await asyncio.sleep(1)

            async def consume() -> None:
                while len(got) < total:
                    batches = await consumer.getmany(timeout_ms=100)
                    now = time.perf_counter()
                    for records in batches.values():
                        for r in records:
                            tx_id = decode(r.value).payload.transaction_id  # type: ignore[attr-defined]
                            got.append(now - sent[tx_id])

            task = asyncio.create_task(consume())
            events = [
                transaction(
                    i,
                    f"c{rng.randrange(args.customers)}",
                    t0 + timedelta(seconds=i / args.rate),
                    rng.randint(100, 30000),
                    f"term-{rng.randrange(10_000)}",
                )
                for i in range(total)
            ]
            payloads = [
                encode(Envelope.wrap(e, producer="bench", event_time=e.occurred_at)) for e in events
            ]

            async def send(i: int) -> None:
                sent[events[i].transaction_id] = time.perf_counter()
                await producer.send(
                    settings.transactions_topic, payloads[i], key=events[i].customer_id.encode()
                )

            cpu_before, started = cpu_seconds(proc.pid), time.perf_counter()
            await paced(args.rate, args.seconds, send)
            await asyncio.wait_for(task, 600)
            elapsed, cpu = time.perf_counter() - started, cpu_seconds(proc.pid) - cpu_before
            await producer.stop()
            await consumer.stop()
            print(line(f"(b) transaction -> score published @{args.rate}/s", got))
            print(
                f"    sustained {total / elapsed:,.0f} tx/s (all {total} scored in "
                f"{elapsed:.1f} s); scorer CPU {cpu * 1e6 / total:,.0f} us/tx "
                f"({cpu / elapsed:.2f} cores; {os.cpu_count()} cores here, load "
                f"{os.getloadavg()[0]:.1f})"
            )
            live, rest = [], []
            body = events[0].model_dump(mode="json")
            for _ in range(args.rest_calls):
                t = time.perf_counter()
                await client.get("/health/live")
                live.append(time.perf_counter() - t)
                t = time.perf_counter()
                answer = await client.post("/v1/score", json=body)
                rest.append(time.perf_counter() - t)
                if answer.status_code != 200:
                    raise RuntimeError(answer.text)
            print(line("(c) REST POST /v1/score", rest))
            print(line("(c) baseline REST GET /health/live", live))
            status = (await client.get("/v1/models/status")).json()
            served = [status["champion"]] + status["challengers"]
            print("served:", ", ".join(f"{m['model_name']} ({m['version']})" for m in served))
            print_breakdown((await client.get("/metrics")).text, total)
    finally:
        proc.terminate()
        proc.wait(30)


def print_breakdown(metrics: str, total: int) -> None:
    """Mean seconds per batch and rows per batch of the stream and of each background write."""
    sums: dict[tuple[str, str], float] = {}
    for text in metrics.splitlines():
        for name in (
            "vigie_inference_sink_seconds_sum",
            "vigie_inference_sink_seconds_count",
            "vigie_inference_sink_rows_total",
            "vigie_inference_score_seconds_sum",
            "vigie_inference_score_seconds_count",
        ):
            if text.startswith(name + "{"):
                labels = text[len(name) + 1 : text.index("}")]
                what = next(
                    part.split("=")[1].strip('"')
                    for part in labels.split(",")
                    if part.startswith(("store=", "path="))
                )
                sums[(name, what)] = float(text.rsplit(" ", 1)[1])
    n = sums.get(("vigie_inference_score_seconds_count", "stream"), 0)
    if n:
        mean = sums[("vigie_inference_score_seconds_sum", "stream")] / n
        print(
            f"    stream: {n:.0f} batches, {total / n:.1f} tx/batch, "
            f"score+publish {mean * 1000:.2f} ms/batch"
        )
    for store in ("mongo", "cassandra", "clock"):
        count = sums.get(("vigie_inference_sink_seconds_count", store), 0)
        if count:
            mean = sums[("vigie_inference_sink_seconds_sum", store)] / count
            rows = sums.get(("vigie_inference_sink_rows_total", store), 0)
            print(
                f"    writer {store:<9}: {count:.0f} writes, {rows / count:.0f} rows/write, "
                f"{mean * 1000:.2f} ms/write"
            )


def learn_bench(history: list[TxFact], n: int) -> LearnerCore:
    """Test-then-train of every default model on ``n`` vectors; returns the trained learner."""
    kinds = Kinds.of("", None, 0)
    rng = random.Random(3)
    states = states_of(history)
    facts = [history[rng.randrange(len(history))] for _ in range(n)]
    stored = {}
    for i, fact in enumerate(facts):
        vector = complete(fact, {pair: states.get(pair) for pair in vector_keys(fact)})
        stored[f"t{i}"] = StoredPrediction(
            f"t{i}", fact.customer_id, fact.occurred_at, vector, None, None, None
        )
    # frauds: large amounts, and a few at random (about 10 %)
    labels = [
        LabelIn(
            "l",
            0,
            i,
            f"t{i}",
            facts[i].amount_minor > 27_000 or rng.random() < 0.01,
            T0 + timedelta(days=7),
        )
        for i in range(n)
    ]
    models = {k: fresh(k, 0) for k in kinds.all}
    t = time.perf_counter()
    for p in stored.values():
        for m in models.values():
            m.predict_proba(p.features)
    predict = time.perf_counter() - t
    core = LearnerCore({k: fresh(k, 0) for k in kinds.all}, kinds.champion)
    t = time.perf_counter()
    core.learn(labels, stored)
    learn = time.perf_counter() - t
    print(
        f"(d) learn (test-then-train, {len(kinds.all)} models {list(kinds.all)}): "
        f"{n / learn:,.0f} labels/s; baseline predict-only {n / predict:,.0f} labels/s"
    )
    return core


if __name__ == "__main__":
    asyncio.run(main())
