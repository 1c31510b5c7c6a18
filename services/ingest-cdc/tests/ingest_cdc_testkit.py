"""Helpers of the ingest-cdc tests and benchmark: the OLTP side, the service, the topics."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from aiokafka import AIOKafkaConsumer
from pydantic import SecretStr

from vigie_contracts import Envelope, Pseudonymizer, decode
from vigie_contracts.provision import provision
from vigie_contracts.topics import CDC_TABLES, CDC_TOPICS, topic
from vigie_ingest_cdc.app import wire
from vigie_ingest_cdc.settings import IngestCdcSettings, PiiSettings
from vigie_localstack.settings import StackSettings
from vigie_runtime import KafkaSettings, ObservabilitySettings, run_service
from vigie_runtime.testing import park_group_at_end, topic_partitions
from vigie_stores.lake import LakeConfig
from vigie_stores.mongo import MongoConfig, MongoStore

CARD_KEY = "test-card-token-key-0123456789"
PSEUDONYM_KEY = "test-pseudonym-key-0123456789"
DOMAIN_TOPICS = (
    "payments.transactions",
    "payments.refunds",
    "payments.disputes",
    "payments.customers",
    "payments.merchants",
    "payments.terminals",
    "payments.cards",
)


def bootstrap(stack: StackSettings) -> str:
    return f"{stack.host}:{stack.kafka_port}"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def card_token(pan: str) -> str:
    return hmac.new(CARD_KEY.encode(), pan.encode(), hashlib.sha256).hexdigest()


def pseudonym(kind: str, value: str) -> str:
    """The shared pseudonym (what the logs and clickstream compute for the same value)."""
    return Pseudonymizer(PSEUDONYM_KEY.encode()).pseudonym(kind, value)


def settings(
    stack: StackSettings,
    unique: str,
    lake_dir: Path,
    *,
    http_port: int = 0,
    prefix: str = "cdc.public.",
    **kafka: Any,
) -> IngestCdcSettings:
    """Settings of a test instance: its own group and database; service name stays
    ``ingest-cdc`` so dead letters go to the provisioned ``dlq.ingest-cdc``."""
    return IngestCdcSettings(
        kafka=KafkaSettings(
            bootstrap_servers=bootstrap(stack), group_id=f"ingest-cdc-test-{unique}", **kafka
        ),
        observability=ObservabilitySettings(
            service_name="ingest-cdc", http_host="127.0.0.1", http_port=http_port
        ),
        cdc_topic_prefix=prefix,
        pii=PiiSettings(card_token_key=SecretStr(CARD_KEY), pseudonym_key=SecretStr(PSEUDONYM_KEY)),
        mongo=MongoConfig(
            url=SecretStr(f"mongodb://{stack.host}:{stack.mongo_port}"),
            database=f"vigie_test_cdc_{unique}",
        ),
        lake=LakeConfig(url=str(lake_dir)),
    )


async def commit_group_at_end(bootstrap_servers: str, group_id: str, topics: Iterable[str]) -> None:
    """Make a new group start at the current end of ``topics`` (the shared CDC topics hold
    every earlier run's changes, which a test must not wait for). Debezium creates a table's
    topic at its first change: the catalogue's provisioning creates the missing ones first."""
    await provision(bootstrap_servers, [t for t in CDC_TOPICS if t.name in set(topics)])
    await provision_outputs(bootstrap_servers)
    await park_group_at_end(bootstrap_servers, group_id, topics)


async def provision_outputs(bootstrap_servers: str) -> None:
    """The domain topics and the dead-letter topic, as the catalogue describes them (a no-op
    when the stack was provisioned; a compacted topic auto-created by a producer would not be)."""
    await provision(bootstrap_servers, [topic(name) for name in (*DOMAIN_TOPICS, "dlq.ingest-cdc")])


def cdc_topics(prefix: str = "cdc.public.") -> list[str]:
    return [f"{prefix}{table}" for table in CDC_TABLES]


@asynccontextmanager
async def running_service(config: IngestCdcSettings) -> AsyncIterator[None]:
    """The service in-process (``run_service``, HTTP included), stopped gracefully on exit."""
    stop = asyncio.Event()
    task = asyncio.create_task(run_service(config, wire, stop=stop))
    try:
        yield
    finally:
        stop.set()
        await asyncio.wait_for(task, 60)


@dataclass
class Seen:
    topic: str
    key: bytes | None
    envelope: Envelope[Any]
    headers: tuple[tuple[str, bytes], ...] = ()


@dataclass
class Watcher:
    """Reads the domain topics from where they ended when it started."""

    bootstrap_servers: str
    topics: tuple[str, ...] = DOMAIN_TOPICS
    seen: list[Seen] = field(default_factory=list)
    _consumer: Any = None
    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self.bootstrap_servers,
            enable_auto_commit=False,
            isolation_level="read_committed",
            max_partition_fetch_bytes=4 * 2**20,
        )
        await consumer.start()
        tps = [tp for t in self.topics for tp in await topic_partitions(self.bootstrap_servers, t)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp, end in ends.items():
            consumer.seek(tp, end)
        self._consumer = consumer
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            batches = await self._consumer.getmany(timeout_ms=200, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    if record.value is None:
                        continue
                    self.seen.append(
                        Seen(tp.topic, record.key, decode(record.value), tuple(record.headers))
                    )

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
        if self._consumer is not None:
            await self._consumer.stop()

    def matching(self, predicate: Callable[[Seen], bool]) -> list[Seen]:
        return [s for s in self.seen if predicate(s)]

    async def wait_for(
        self, predicate: Callable[[Seen], bool], count: int = 1, timeout_s: float = 60
    ) -> list[Seen]:
        deadline = time.monotonic() + timeout_s
        while True:
            found = self.matching(predicate)
            if len(found) >= count:
                return found
            if time.monotonic() > deadline:
                raise AssertionError(f"saw {len(found)} of {count} expected events")
            await asyncio.sleep(0.1)


@dataclass(frozen=True)
class Seeded:
    customer: int
    merchant: int
    terminal: int
    card: int
    email: str
    pan: str


async def seed(conn: psycopg.AsyncConnection[Any], unique: str) -> Seeded:
    """One customer with a card, one merchant with a terminal (unique e-mail and PAN)."""
    email = f"Cdc-{unique}@Example.test"
    pan = "4" + str(int(unique, 16) % 10**15).rjust(15, "7")
    async with conn.transaction():
        customer = await _one(
            conn,
            "INSERT INTO customers (full_name, email, phone, date_of_birth, country_code, "
            "location_x, location_y) VALUES (%s, %s, %s, %s, 'FR', 1.5, 2.5) RETURNING id",
            (f"Test {unique}", email, "+33 6 12 34 56 78", "1990-05-17"),
        )
        merchant = await _one(
            conn,
            "INSERT INTO merchants (name, mcc, country_code, city) VALUES (%s, '5411', 'de', "
            "'Berlin') RETURNING id",
            (f"Shop {unique}",),
        )
        terminal = await _one(
            conn,
            "INSERT INTO terminals (merchant_id, terminal_type, country_code) "
            "VALUES (%s, 'pos', 'DE') RETURNING id",
            (merchant,),
        )
        card = await _one(
            conn,
            "INSERT INTO cards (customer_id, pan, brand, card_type, expiry_month, expiry_year) "
            "VALUES (%s, %s, 'visa', 'credit', 12, 2030) RETURNING id",
            (customer, pan),
        )
    return Seeded(customer, merchant, terminal, card, email, pan)


async def _one(conn: psycopg.AsyncConnection[Any], sql: str, params: tuple[Any, ...]) -> int:
    cur = await conn.execute(sql.encode(), params)
    row = await cur.fetchone()
    assert row is not None
    value: int = row[0]
    return value


async def mirror_store(stack: StackSettings, unique: str, kind: str = "test") -> MongoStore:
    return await MongoStore.open(
        MongoConfig(
            url=SecretStr(f"mongodb://{stack.host}:{stack.mongo_port}"),
            database=f"vigie_{kind}_cdc_{unique}",
        )
    )
