"""Shared by the inference service tests: a unique environment (topics, keyspace, database,
Redis prefix), the service run in-process, transactions and features written the way the
other services write them."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from vigie_contracts import Envelope
from vigie_contracts.events.features import EntityType
from vigie_contracts.events.payments import (
    Channel,
    TransactionCreated,
    TransactionStatus,
)
from vigie_contracts.topics import dead_letter
from vigie_featureset import (
    EntityState,
    TxFact,
    encode_fields,
    entity_key,
    vector_keys,
)
from vigie_inference.app import wire
from vigie_inference.settings import InferenceSettings
from vigie_localstack.settings import StackSettings
from vigie_runtime import KafkaSettings, ObservabilitySettings, Producer
from vigie_runtime.testing import TopicFactory, serving, topic_factory
from vigie_stores.cassandra import CassandraConfig, CassandraStore
from vigie_stores.mongo import MongoConfig, MongoStore
from vigie_stores.redis import RedisConfig, RedisStore


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass
class Env:
    stack: StackSettings
    unique: str
    bootstrap: str
    topics: TopicFactory
    settings: InferenceSettings

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.settings.observability.http_port}"


def settings_for(stack: StackSettings, unique: str, **extra: Any) -> InferenceSettings:
    bootstrap = f"{stack.host}:{stack.kafka_port}"
    options: dict[str, Any] = {
        "kafka": KafkaSettings(
            bootstrap_servers=bootstrap,
            batch_timeout_ms=20,
            linger_ms=1,
            session_timeout_ms=10_000,
        ),
        "observability": ObservabilitySettings(
            service_name=f"inference-t{unique}", http_port=free_port(), log_level="warning"
        ),
        "transactions_topic": f"t.tx.{unique}",
        "disputes_topic": f"t.disputes.{unique}",
        "scores_topic": f"t.scores.{unique}",
        "decisions_topic": f"t.decisions.{unique}",
        "labels_topic": f"t.labels.{unique}",
        "drift_topic": f"t.drift.{unique}",
        "redis": RedisConfig(
            url=f"redis://{stack.host}:{stack.redis_port}/0",  # type: ignore[arg-type]  # str → SecretStr
            key_prefix=f"t{unique}:",
        ),
        "cassandra": CassandraConfig(contact_points=(stack.host,), port=stack.cassandra_port),
        "keyspace": f"t_inf_{unique}",
        "mongo": MongoConfig(
            url=f"mongodb://{stack.host}:{stack.mongo_port}",  # type: ignore[arg-type]  # str → SecretStr
            database=f"t_inf_{unique}",
        ),
        "model_poll_s": 0.2,
        "sweep_interval_s": 0.2,
        "checkpoint_every_labels": 20,
        "checkpoint_every_s": 1.0,
    }
    options.update(extra)
    return InferenceSettings(**options)


@asynccontextmanager
async def environment(stack: StackSettings, unique: str, **extra: Any) -> AsyncIterator[Env]:
    settings = settings_for(stack, unique, **extra)
    bootstrap = settings.kafka.bootstrap_servers
    async with topic_factory(bootstrap) as topics:
        await topics.create(settings.transactions_topic, 2)
        for name in (
            settings.disputes_topic,
            settings.scores_topic,
            settings.decisions_topic,
            settings.labels_topic,
            settings.drift_topic,
            dead_letter(settings.service_name).name,
        ):
            await topics.create(name, 1)
        try:
            yield Env(stack, unique, bootstrap, topics, settings)
        finally:
            await cleanup(settings)


async def cleanup(settings: InferenceSettings) -> None:
    cassandra = await CassandraStore.open(settings.cassandra)
    async with cassandra:
        await cassandra.drop_keyspace(settings.keyspace)
    mongo = await MongoStore.open(settings.mongo)
    async with mongo:
        await mongo.drop_database()
    redis = await RedisStore.open(settings.redis)
    async with redis:
        prefix = settings.redis.key_prefix
        keys = [k async for k in redis.client.scan_iter(match=prefix + "*")]
        if keys:
            await redis.client.delete(*keys)


@asynccontextmanager
async def service(settings: InferenceSettings) -> AsyncIterator[None]:
    async with serving(settings, wire):
        yield


def transaction(
    i: int, customer: str, at: datetime, amount_minor: int = 5_000, terminal: str = "term-1"
) -> TransactionCreated:
    return TransactionCreated(
        transaction_id=f"tx-{i}",
        customer_id=customer,
        card_token=f"card-{customer}",
        terminal_id=terminal,
        merchant_id="merchant-1",
        amount_minor=amount_minor,
        currency="EUR",
        status=TransactionStatus.AUTHORIZED,
        channel=Channel.POS,
        occurred_at=at,
    )


async def produce(
    bootstrap: str,
    topic: str,
    events: Iterable[Any],
    key_of: Any = None,
    traceparent: str | None = None,
) -> None:
    """``traceparent``: every record continues that trace (its W3C header)."""
    producer = Producer(KafkaSettings(bootstrap_servers=bootstrap, linger_ms=0))
    headers = [("traceparent", traceparent.encode())] if traceparent else []
    async with producer:
        sends = []
        for event in events:
            when: datetime = getattr(event, "occurred_at", None) or event.opened_at
            env = Envelope.wrap(event, producer="tests", event_time=when)
            key = key_of(event) if key_of else getattr(event, "customer_id", None)
            sends.append(producer.send(topic, env, key=key, headers=headers))
        await asyncio.gather(*sends)


def states_of(facts: Sequence[TxFact]) -> dict[tuple[EntityType, str], EntityState]:
    """Entity states holding ``facts``, as the features worker would keep them."""
    states: dict[tuple[EntityType, str], EntityState] = {}
    for fact in facts:
        for pair in vector_keys(fact):
            state = states.setdefault(pair, EntityState(pair[0]))
            state.apply_tx(fact)
    return states


async def write_features(
    redis: RedisStore, states: dict[tuple[EntityType, str], EntityState]
) -> None:
    await redis.write_hashes(
        {
            entity_key(et, eid): {**encode_fields(state, {}), "_v": str(state.version)}
            for (et, eid), state in states.items()
        }
    )
