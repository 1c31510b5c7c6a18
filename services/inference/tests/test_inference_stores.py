"""The adapters against the real servers: the Cassandra prediction log, the GridFS model
registry, ``fraud_events`` in MongoDB, the feature reader on Redis (featureset's layout), and
the labels topic's partitions (the learner needs exactly one)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from vigie_contracts.events.features import EntityType
from vigie_featureset import EntityState, TxFact, encode_fields, entity_key, vector_keys
from vigie_inference.adapters.features import FeatureReader
from vigie_inference.adapters.fraud_events import FraudEvents
from vigie_inference.adapters.models import ModelRegistry
from vigie_inference.adapters.predictions import PredictionLog, PredictionRow, PrequentialRow
from vigie_inference.handlers.errors import BadFeatures
from vigie_inference.handlers.learning import LabelTopicError, check_label_partitions
from vigie_inference.handlers.lifecycle import Registry, promote
from vigie_localstack.settings import StackSettings
from vigie_runtime import KafkaSettings, partitions_of
from vigie_runtime.testing import topic_factory
from vigie_stores.cassandra import CassandraConfig, CassandraStore
from vigie_stores.mongo import MongoConfig
from vigie_stores.redis import RedisConfig
from vigie_stores.testing import throwaway_mongo, throwaway_redis

pytestmark = pytest.mark.integration

T0 = datetime(2018, 4, 1, 10, tzinfo=UTC)


async def test_prediction_log_round_trip_marks_sweep_and_prequential(
    stack: StackSettings, unique: str
) -> None:
    store = await CassandraStore.open(
        CassandraConfig(contact_points=(stack.host,), port=stack.cassandra_port)
    )
    keyspace = f"t_inf_{unique}"
    async with store:
        log = PredictionLog(store, keyspace, timedelta(days=30))
        try:
            await log.ensure_schema()
            bucket = T0.replace(minute=0)
            rows = [
                PredictionRow(
                    transaction_id=f"t{i}",
                    customer_id=f"c{i % 3}",
                    occurred_at=T0 + timedelta(seconds=i),
                    scored_at=T0,
                    score=i / 100,
                    model_name="logreg",
                    model_version="logreg@1",
                    features={"amount": 12.5 + i, "x": 1 / 3},
                    bucket=bucket,
                )
                for i in range(120)  # more than one unlogged batch of the bucket
            ]
            await log.write(rows)
            got = await log.get(["t5", "t77", "missing"])
            assert set(got) == {"t5", "t77"}
            assert got["t5"].features == {"amount": 17.5, "x": 1 / 3}  # exact floats
            assert got["t5"].occurred_at == T0 + timedelta(seconds=5)
            assert got["t5"].learned_fraud is None
            in_bucket = await log.bucket_rows(bucket)
            assert len(in_bucket) == 120 and not any(r[3] for r in in_bucket)

            await log.mark_fraud([(got["t5"], bucket, T0 + timedelta(days=7))])
            await log.set_learned([("t5", True, 41), ("t77", False, 42)])
            again = await log.get(["t5", "t77"])
            assert again["t5"].fraud_at == T0 + timedelta(days=7)
            assert (again["t5"].learned_fraud, again["t77"].learned_genuine) == (41, 42)
            flagged = {r[0] for r in await log.bucket_rows(bucket) if r[3]}
            assert flagged == {"t5"}

            await log.advance_clock("scorer", {0: (T0, T0 + timedelta(hours=1))})
            await log.advance_clock("scorer", {3: (T0, T0 + timedelta(hours=2))})
            clock = await log.clock("scorer")
            assert clock == {0: (T0, T0 + timedelta(hours=1)), 3: (T0, T0 + timedelta(hours=2))}
            assert await log.swept_until("label_delay") is None
            await log.set_swept_until("label_delay", bucket)
            assert await log.swept_until("label_delay") == bucket

            pre = PrequentialRow(
                "2018-04-01", "t5", "c2", T0, False, T0 + timedelta(days=7), {"logreg": 0.25}
            )
            await log.write_prequential([pre])
            await log.correct_prequential([("2018-04-01", "t5")])
            day = await log.prequential_day("2018-04-01")
            assert len(day) == 1 and day[0].fraud and day[0].scores == {"logreg": 0.25}
        finally:
            await store.drop_keyspace(keyspace)


async def test_registry_checkpoints_in_gridfs_prune_and_registry_doc(
    stack: StackSettings, unique: str
) -> None:
    config = MongoConfig(
        url=f"mongodb://{stack.host}:{stack.mongo_port}",  # type: ignore[arg-type]  # str → SecretStr
        database=f"t_inf_{unique}",
    )
    async with throwaway_mongo(config) as mongo:
        registry = ModelRegistry(mongo, "models")
        assert await registry.latest() is None
        blob = bytes(range(256)) * 2000
        for seq in (1, 2, 3, 4):
            await registry.save(
                seq,
                {"logreg": blob + bytes([seq]), "forest": b"f" * seq},
                positions={"fraud.labels:0": seq * 10},
                learned=seq * 10,
                created_at=T0,
                metrics={"day": "2018-04-01"},
                # the first checkpoint as one written before frauds were counted
                learned_frauds=None if seq == 1 else seq,
            )
        latest = await registry.latest()
        assert latest is not None and latest.seq == 4 and latest.positions == {"fraud.labels:0": 40}
        assert latest.learned_frauds == 4 and latest.summary()["learned_frauds"] == 4
        first = await registry.get(1)
        assert first is not None and first.learned_frauds is None
        assert await registry.load(latest, "logreg") == blob + bytes([4])
        assert latest.kinds == ["forest", "logreg"]
        assert await registry.prune(2, protect={1}) == [2]
        assert [cp.seq for cp in await registry.versions()] == [4, 3, 1]

        state = await registry.read_registry("logreg")
        assert state == Registry(champion="logreg")
        changed = promote(state, "forest", ["logreg", "forest"], at=T0, reason="test")
        assert await registry.write_registry(changed)
        assert not await registry.write_registry(changed)  # same revision: someone was first
        assert (await registry.read_registry("logreg")).champion == "forest"

        events = FraudEvents(mongo, "fraud_events")
        await events.ensure_indexes()
        assert await events.write([("t1", 1, {"score": 0.5}), ("t2", 1, {"score": 0.7})]) == 2
        # a redelivered transaction scored again: its first document stays
        assert await events.write([("t1", 2, {"score": 0.6}), ("t3", 2, {"score": 0.1})]) == 1
        doc = await events.get("t1")
        assert doc is not None and doc["score"] == 0.5


async def test_feature_reader_reads_every_entity_in_one_round_trip(
    stack: StackSettings, unique: str
) -> None:
    config = RedisConfig(
        url=f"redis://{stack.host}:{stack.redis_port}/0",  # type: ignore[arg-type]  # str → SecretStr
        key_prefix=f"t{unique}:",
    )
    async with throwaway_redis(config) as redis:
        first = TxFact("t1", "c1", "card1", "term1", "m1", None, 1000, T0)
        second = TxFact("t2", "c1", "card1", "term1", "m1", None, 2000, T0 + timedelta(hours=1))
        customer = EntityState(EntityType.CUSTOMER)
        customer.apply_tx(first)
        key = entity_key(EntityType.CUSTOMER, "c1")
        await redis.write_hashes({key: encode_fields(customer, {})})
        await redis.write_hashes({entity_key(EntityType.CUSTOMER, "c1"): {"_v": "3"}})
        reader = FeatureReader(redis)
        calls = 0
        original = redis.read_hashes

        async def counting(keys: Sequence[str]) -> dict[str, dict[str, str]]:
            nonlocal calls
            calls += 1
            return await original(keys)

        redis.read_hashes = counting  # type: ignore[method-assign]  # counting round trips
        states = await reader.states([first, second])
        assert calls == 1
        assert set(states[1]) == set(vector_keys(second))
        stored = states[1][(EntityType.CUSTOMER, "c1")]
        assert stored is not None and "t1" in stored
        assert states[1][(EntityType.TERMINAL, "term1")] is None
        # unchanged version: the parsed state is reused
        again = await reader.states([second])
        assert again[0][(EntityType.CUSTOMER, "c1")] is stored
        await redis.write_hashes({entity_key(EntityType.TERMINAL, "term1"): {"state": "{bad"}})
        with pytest.raises(BadFeatures):
            await reader.states([second])


async def test_the_learner_refuses_a_labels_topic_of_several_partitions(
    stack: StackSettings, unique: str
) -> None:
    kafka = KafkaSettings(bootstrap_servers=f"{stack.host}:{stack.kafka_port}")
    async with topic_factory(kafka.bootstrap_servers) as topics:
        one = (await topics.create(f"t.labels1.{unique}", 1)).name
        two = (await topics.create(f"t.labels2.{unique}", 2)).name
        assert await partitions_of(kafka, one) == [0]
        assert await partitions_of(kafka, two) == [0, 1]
        assert await partitions_of(kafka, f"t.missing.{unique}") == []
    check_label_partitions(one, [0])
    with pytest.raises(LabelTopicError, match="has 2 partitions; the learner needs exactly one"):
        check_label_partitions(two, [0, 1])
    with pytest.raises(LabelTopicError, match="does not exist"):
        check_label_partitions("nope", [])
