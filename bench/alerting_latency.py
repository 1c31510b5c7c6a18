"""services/alerting: cause (the event that triggers a rule, produced) → alert on the topic and
at the webhook, p50 / p99, against a bare produce → consume baseline of the same run.

    .venv/bin/python bench/alerting_latency.py --alerts 300 --rate 20

The service runs as a subprocess (its own process, as in production) on fresh topics, a fresh
consumer group and a throwaway MongoDB database. Every cause is a fraud score ≥ 0.9 of a new
customer, so each raises a new alert (rule ``high``, grouped by customer): the full path of an
alert — consume, judge, MongoDB history + outbox, ``alerts`` topic, then the signed webhook to a
receiver in this process. Causes are paced at ``--rate`` per second, open loop.

Measured from just before each cause was produced (``time.perf_counter`` of this process):

- baseline: the same kind of record produced to a fresh topic and consumed by a bare aiokafka
  consumer in this process (the floor: Kafka's own produce → fetch);
- topic: the alert (``fired``) consumed from the alerts topic;
- webhook: the alert received by the webhook receiver (HTTP, signature checked).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import SecretStr

from vigie_alerting.testing import WEBHOOK_KEY, Receiver, fraud_score, free_port
from vigie_contracts import decode, encode
from vigie_contracts.events import Alert
from vigie_localstack.settings import StackSettings
from vigie_runtime.testing import TopicFactory
from vigie_stores.mongo import MongoConfig, MongoStore

RULES = """
defaults: {{update_interval: 1m, reopen_within: 1m}}
rules:
  - {{name: high, kind: event, source: fraud_scores, match: {{score: {{gte: 0.9}}}},
     group_by: [customer_id], resolve_after: 1h}}
webhooks:
  - {{name: bench, url: "{url}", secret_env: BENCH_WEBHOOK_KEY}}
"""


def pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[max(int(q * len(ordered) + 0.999999) - 1, 0)] if ordered else float("nan")


def line(name: str, values: list[float], expected: int) -> str:
    ms = [v * 1000 for v in values]
    return (
        f"{name:<10} n={len(ms):>4}/{expected:<4} p50 {statistics.median(ms):7.1f} ms   "
        f"p99 {pct(ms, 0.99):7.1f} ms   max {max(ms):7.1f} ms"
    )


async def tail(
    bootstrap: str,
    topic: str,
    seen: dict[str, float],
    key_of: Callable[[Any], str | None],
    stop: asyncio.Event,
) -> None:
    """Record when each record (by ``key_of(record)``) is first consumed."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest", enable_auto_commit=False
    )
    await consumer.start()
    try:
        while not stop.is_set():
            batches = await consumer.getmany(timeout_ms=50)
            now = time.perf_counter()
            for records in batches.values():
                for record in records:
                    key = key_of(record)
                    if key is not None and key not in seen:
                        seen[key] = now
    finally:
        await consumer.stop()


def alert_customer(record: Any) -> str | None:
    envelope = decode(record.value)
    payload = envelope.payload
    if not isinstance(payload, Alert) or payload.status.value != "firing":
        return None
    return payload.labels.get("customer_id")


def service_view(metrics: str, scores: str) -> str:
    """Mean batch time (decode + judge + MongoDB + topic + commit) and mean records a batch."""
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(metrics)
        for s in family.samples
    }

    def total(name: str) -> float:
        return sum(v for (n, _), v in samples.items() if n == name)

    batches = total("vigie_batch_duration_seconds_count")
    seconds = total("vigie_batch_duration_seconds_sum")
    records = total("vigie_batch_size_sum")
    lat_n = sum(
        v for (n, labels), v in samples.items()
        if n == "vigie_event_latency_seconds_count" and ("topic", scores) in labels
    )
    lat_s = sum(
        v for (n, labels), v in samples.items()
        if n == "vigie_event_latency_seconds_sum" and ("topic", scores) in labels
    )
    return (
        f"{batches:.0f} batches, mean {seconds / max(batches, 1) * 1000:.1f} ms and "
        f"{records / max(batches, 1):.1f} records each; event time → handled, mean "
        f"{lat_s / max(lat_n, 1) * 1000:.1f} ms"
    )


async def paced(count: int, rate: float, send: Callable[[int], Awaitable[None]]) -> None:
    start = time.perf_counter()
    for i in range(count):
        delay = start + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        await send(i)


async def main(args: argparse.Namespace) -> None:
    stack = StackSettings()
    boot = f"{stack.host}:{stack.kafka_port}"
    mongo_url = f"mongodb://{stack.host}:{stack.mongo_port}"
    unique = uuid.uuid4().hex[:10]
    topics = {
        name: f"bench-al-{name}-{unique}"
        for name in ("scores", "security", "drift", "heartbeats", "alerts", "labels", "base")
    }
    factory = TopicFactory(boot)
    for name, created in topics.items():
        await factory.create(created, 3 if name in ("scores", "alerts", "base") else 1)
    workdir = Path(tempfile.mkdtemp(prefix="alerting-bench-"))
    receiver = Receiver(key=WEBHOOK_KEY)
    await receiver.start()
    (workdir / "rules.yaml").write_text(RULES.format(url=receiver.url))
    port = free_port()
    database = f"alerting_bench_{unique}"
    p = "VIGIE_ALERTING_"
    env = {
        **os.environ,
        "BENCH_WEBHOOK_KEY": WEBHOOK_KEY.decode(),
        f"{p}KAFKA__BOOTSTRAP_SERVERS": boot,
        f"{p}KAFKA__GROUP_ID": f"alerting-bench-{unique}",
        f"{p}OBSERVABILITY__HTTP_HOST": "127.0.0.1",
        f"{p}OBSERVABILITY__HTTP_PORT": str(port),
        f"{p}OBSERVABILITY__LOG_LEVEL": "warning",
        f"{p}RULES_PATH": str(workdir / "rules.yaml"),
        f"{p}SCORES_TOPIC": topics["scores"],
        f"{p}SECURITY_TOPIC": topics["security"],
        f"{p}DRIFT_TOPIC": topics["drift"],
        f"{p}HEARTBEATS_TOPIC": topics["heartbeats"],
        f"{p}DEAD_LETTER_TOPICS": "[]",
        f"{p}LATENCY_TOPICS": "[]",
        f"{p}ALERTS_TOPIC": topics["alerts"],
        f"{p}LABELS_TOPIC": topics["labels"],
        f"{p}START_OFFSET": "earliest",
        f"{p}MONGO__URL": mongo_url,
        f"{p}MONGO__DATABASE": database,
        f"{p}HEARTBEAT__TOPIC": topics["heartbeats"],
    }
    log = workdir / "service.log"
    with log.open("wb") as out:
        service = subprocess.Popen(  # noqa: S603, ASYNC220 - the service under test, started once
            [sys.executable, "-m", "vigie_alerting"], env=env, stdout=out, stderr=out
        )
    producer = AIOKafkaProducer(bootstrap_servers=boot, acks="all", linger_ms=0)
    await producer.start()
    try:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            for _ in range(300):
                try:
                    if (await http.get("/health/ready")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                await asyncio.sleep(0.1)  # noqa: ASYNC110 - a subprocess has no event to wait on
            else:
                raise SystemExit(f"service not ready: {log.read_text()[-2000:]}")

        # baseline: bare produce → consume, same records, same pacing
        base_sent: dict[str, float] = {}
        base_seen: dict[str, float] = {}
        stop = asyncio.Event()
        base_tail = asyncio.create_task(
            tail(boot, topics["base"], base_seen, lambda r: r.key.decode(), stop)
        )
        await asyncio.sleep(2)  # the tail joins before the first record (no group: assign)

        async def send_base(i: int) -> None:
            key = f"b{i}"
            value = encode(fraud_score(key, 0.95))
            base_sent[key] = time.perf_counter()
            await producer.send_and_wait(topics["base"], value, key=key.encode())

        await paced(args.alerts, args.rate, send_base)
        deadline = time.monotonic() + 30
        while len(base_seen) < len(base_sent) and time.monotonic() < deadline:  # noqa: ASYNC110
            await asyncio.sleep(0.1)

        # the service: each cause a new customer's high score
        sent: dict[str, float] = {}
        on_topic: dict[str, float] = {}
        alerts_tail = asyncio.create_task(
            tail(boot, topics["alerts"], on_topic, alert_customer, stop)
        )
        await asyncio.sleep(2)

        async def send_cause(i: int) -> None:
            customer = f"c{i}-{unique}"
            value = encode(fraud_score(customer, 0.95))
            sent[customer] = time.perf_counter()
            await producer.send_and_wait(topics["scores"], value, key=customer.encode())

        await paced(args.alerts, args.rate, send_cause)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and (  # noqa: ASYNC110 - counters the tails fill
            len(on_topic) < len(sent) or len(receiver.deliveries) < len(sent)
        ):
            await asyncio.sleep(0.1)
        stop.set()
        await asyncio.gather(base_tail, alerts_tail, return_exceptions=True)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{port}") as http:
            metrics = (await http.get("/metrics")).text
    finally:
        await producer.stop()
        service.send_signal(signal.SIGTERM)
        service.wait(60)
        await receiver.stop()
        await factory.close()
        store = await MongoStore.open(MongoConfig(url=SecretStr(mongo_url), database=database))
        with contextlib.suppress(Exception):
            await store.drop_database()
        await store.close()

    at_hook = {
        d.body["alert"]["labels"]["customer_id"]: d.received_at
        for d in receiver.deliveries
        if d.event == "alert.fired"
    }
    unsigned = sum(1 for d in receiver.deliveries if not d.signed)
    base = [base_seen[k] - base_sent[k] for k in base_seen if k in base_sent]
    topic = [on_topic[k] - sent[k] for k in on_topic if k in sent]
    hook = [at_hook[k] - sent[k] for k in at_hook if k in sent]
    print(f"{args.alerts} causes at {args.rate:g}/s, each a new alert (one incident each)")
    print(line("baseline", base, len(base_sent)))
    print(line("topic", topic, len(sent)))
    print(line("webhook", hook, len(sent)))
    print(f"webhook deliveries {len(receiver.deliveries)}, unsigned {unsigned}")
    print("service's own view (its /metrics):", service_view(metrics, topics["scores"]))
    target = "met" if hook and pct(hook, 0.99) < 1.0 else "NOT met"
    print(f"target p99 < 1 s at the webhook: {target}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--alerts", type=int, default=300, help="causes (each a new alert)")
    parser.add_argument("--rate", type=float, default=20.0, help="causes per second")
    asyncio.run(main(parser.parse_args()))
