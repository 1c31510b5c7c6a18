"""Test helpers shipped with the service, for its tests and benchmarks (and for teams that
receive its webhooks): a real HTTP webhook receiver that checks signatures, the service run
in-process on unique topics and a throwaway MongoDB database, and the input events."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import orjson
import uvicorn
from fastapi import FastAPI, Request, Response
from pydantic import SecretStr

from vigie_contracts import Envelope, Event, decode
from vigie_contracts.events import Alert, FraudScore
from vigie_contracts.events.fraud import Decision
from vigie_runtime import KafkaSettings, ObservabilitySettings, Producer, run_service
from vigie_runtime.heartbeat import HeartbeatSettings
from vigie_runtime.testing import TopicFactory, collect
from vigie_stores.mongo import MongoConfig, MongoStore

from .adapters.webhooks import IDEMPOTENCY_KEY, SIGNATURE, TIMESTAMP, verify
from .alerter import CHANGE_HEADER
from .app import wire
from .settings import AlertingSettings

WEBHOOK_KEY = b"test-webhook-key-0123456789"
WEBHOOK_ENV = "VIGIE_ALERTING_TEST_WEBHOOK_KEY"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Delivery:
    key: str
    event: str
    body: dict[str, Any]
    signed: bool
    attempt: int
    #: ``time.perf_counter()`` when it arrived (benchmarks)
    received_at: float = 0.0


@dataclass
class Receiver:
    """A webhook receiver on a real socket; ``stop`` / ``start`` take it down and up again."""

    key: bytes = WEBHOOK_KEY
    port: int = field(default_factory=free_port)
    deliveries: list[Delivery] = field(default_factory=list)
    _server: uvicorn.Server | None = None
    _task: asyncio.Task[None] | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    def _app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/hook")
        async def hook(request: Request) -> Response:
            body = await request.body()
            headers = request.headers
            self.deliveries.append(
                Delivery(
                    key=headers.get(IDEMPOTENCY_KEY, ""),
                    event=headers.get("X-Vigie-Event", ""),
                    body=orjson.loads(body),
                    signed=verify(
                        self.key, headers.get(TIMESTAMP, ""), body, headers.get(SIGNATURE, "")
                    ),
                    attempt=int(headers.get("X-Vigie-Delivery-Attempt", "0")),
                    received_at=time.perf_counter(),
                )
            )
            return Response(status_code=204)

        return app

    async def start(self) -> None:
        config = uvicorn.Config(
            self._app(), host="127.0.0.1", port=self.port, log_config=None, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve())
        deadline = time.monotonic() + 10
        while not self._server.started:
            if self._task.done() or time.monotonic() > deadline:
                raise RuntimeError("the webhook receiver did not start")
            await asyncio.sleep(0.02)

    async def stop(self) -> None:
        if self._server is not None and self._task is not None:
            self._server.should_exit = True
            await asyncio.wait_for(self._task, 10)
        self._server = self._task = None

    def keys(self) -> list[str]:
        return [d.key for d in self.deliveries]

    def of(self, rule: str, event: str | None = None) -> list[Delivery]:
        return [
            d
            for d in self.deliveries
            if d.body["alert"]["rule"] == rule and (event is None or d.event == f"alert.{event}")
        ]


@asynccontextmanager
async def receiver() -> AsyncIterator[Receiver]:
    r = Receiver()
    await r.start()
    try:
        yield r
    finally:
        await r.stop()


@dataclass(frozen=True)
class Topics:
    scores: str
    security: str
    drift: str
    heartbeats: str
    dead_letters: tuple[str, ...]
    alerts: str
    labels: str


async def make_topics(factory: TopicFactory, unique: str) -> Topics:
    names = Topics(
        scores=f"test-al-scores-{unique}",
        security=f"test-al-security-{unique}",
        drift=f"test-al-drift-{unique}",
        heartbeats=f"test-al-heartbeats-{unique}",
        dead_letters=(f"dlq.test-al-{unique}",),
        alerts=f"test-al-alerts-{unique}",
        labels=f"test-al-labels-{unique}",
    )
    partitions = {names.scores: 3, names.alerts: 3}
    await asyncio.gather(
        *(
            factory.create(name, partitions.get(name, 1))
            for name in (
                names.scores,
                names.security,
                names.drift,
                names.heartbeats,
                *names.dead_letters,
                names.alerts,
                names.labels,
            )
        )
    )
    return names


def settings_for(
    unique: str,
    topics: Topics,
    rules_path: Path,
    *,
    bootstrap: str,
    mongo_url: str,
    database: str,
    **overrides: Any,
) -> AlertingSettings:
    """Short windows and intervals, every topic and the database the test's own."""
    values: dict[str, Any] = {
        "kafka": KafkaSettings(
            bootstrap_servers=bootstrap, linger_ms=0, batch_timeout_ms=50, group_id=f"al-{unique}"
        ),
        "observability": ObservabilitySettings(
            service_name="alerting", http_host="127.0.0.1", http_port=free_port()
        ),
        "rules_path": rules_path,
        "rules_watch_interval_s": 0.2,
        "scores_topic": topics.scores,
        "security_topic": topics.security,
        "drift_topic": topics.drift,
        "heartbeats_topic": topics.heartbeats,
        "dead_letter_topics": topics.dead_letters,
        "latency_topics": (topics.scores,),
        "alerts_topic": topics.alerts,
        "labels_topic": topics.labels,
        "start_offset": "earliest",
        "mongo": MongoConfig(
            url=SecretStr(mongo_url), database=database, app_name="alerting-tests"
        ),
        "tick_interval_s": 0.1,
        "lag_interval_s": 0.5,
        "outbox_flush_interval_s": 0.1,
    }
    values.update(overrides)
    return AlertingSettings(**values)


@dataclass
class Running:
    settings: AlertingSettings
    http: httpx.AsyncClient
    stop: asyncio.Event
    task: asyncio.Task[None]


@asynccontextmanager
async def alerting(settings: AlertingSettings) -> AsyncIterator[Running]:
    """The service in a task, its HTTP API ready; stopped gracefully on exit."""
    stop = asyncio.Event()
    # the service's own heartbeat goes to the test's topic, where no rule watches "alerting"
    beats = HeartbeatSettings(topic=settings.heartbeats_topic, interval_s=1)
    task = asyncio.create_task(run_service(settings, wire, stop=stop, heartbeat=beats))
    obs = settings.observability
    async with httpx.AsyncClient(base_url=f"http://{obs.http_host}:{obs.http_port}") as http:
        deadline = time.monotonic() + 30
        while True:
            if task.done():
                task.result()  # raises what stopped it
                raise RuntimeError("alerting stopped during start")
            try:
                if (await http.get("/health/ready")).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError("alerting not ready within 30 s")
            await asyncio.sleep(0.05)
        try:
            yield Running(settings, http, stop, task)
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)


@asynccontextmanager
async def throwaway_database(mongo_url: str, database: str) -> AsyncIterator[None]:
    """Drops ``database`` afterwards (the service creates it)."""
    try:
        yield
    finally:
        store = await MongoStore.open(MongoConfig(url=SecretStr(mongo_url), database=database))
        try:
            await store.drop_database()
        finally:
            await store.close()


def producer(bootstrap: str) -> Producer:
    """Sends at once (no linger): tests wait on what they produce."""
    return Producer(KafkaSettings(bootstrap_servers=bootstrap, linger_ms=0))


def wrap(payload: Event, event_time: datetime | None = None) -> Envelope[Event]:
    now = datetime.now(UTC)
    return Envelope.wrap(payload, producer="tests", event_time=event_time or now)


def fraud_score(
    customer: str,
    score: float,
    *,
    decision: Decision = Decision.APPROVE,
    transaction: str | None = None,
    late_by: timedelta = timedelta(0),
) -> Envelope[Event]:
    now = datetime.now(UTC)
    payload = FraudScore(
        transaction_id=transaction or f"tx-{time.monotonic_ns()}",
        customer_id=customer,
        score=score,
        decision=decision,
        model_name="test-model",
        model_version="1",
        scored_at=now,
    )
    return wrap(payload, now - late_by)


@dataclass(frozen=True)
class Published:
    """An alert as read back from the alerts topic, with its change."""

    change: str
    event_id: str
    key: bytes
    alert: Alert


async def read_alerts(
    bootstrap: str, topic: str, at_least: int = 0, timeout_s: float = 2.0
) -> list[Published]:
    """What the alerts topic holds (``at_least``: stop once that many are read)."""
    records = await collect(bootstrap, topic, at_least or 100_000, timeout_s)
    out = []
    for record in records:
        envelope = decode(record.value)
        if not isinstance(envelope.payload, Alert):
            raise TypeError(f"not an alert on {topic}: {envelope.event_type}")
        change = dict(record.headers)[CHANGE_HEADER].decode()
        out.append(Published(change, envelope.event_id, record.key, envelope.payload))
    return out


async def dead_letter(producer: Producer, topic: str, service: str, n: int) -> None:
    for i in range(n):
        await producer.send_raw(
            topic,
            f"bad {i}".encode(),
            key=b"k",
            headers=[
                ("vigie.dlq.service", service.encode()),
                ("vigie.dlq.error_type", b"vigie_contracts.errors.DecodeError"),
            ],
        )


def changes_of(published: Sequence[Published], rule: str) -> list[tuple[str, str]]:
    return [(p.change, p.alert.fingerprint) for p in published if p.alert.rule == rule]
