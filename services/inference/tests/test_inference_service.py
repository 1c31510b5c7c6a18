"""The inference service end to end on the real stack (unique topics, keyspace, database and
Redis prefix): features in Redis → scores, decisions, fraud_events and the prediction log, the
same answer over REST, point-in-time whichever of features and inference is ahead; labels from
disputes and the label-delay sweep → learning → checkpoints → the scorer reloads → promote and
rollback over REST."""

from __future__ import annotations

import gc
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from inference_testkit import (
    environment,
    produce,
    service,
    states_of,
    transaction,
    write_features,
)

from vigie_contracts import decode
from vigie_contracts.events.fraud import FraudDecision, FraudLabel, FraudScore, LabelSource
from vigie_contracts.events.payments import DisputeCategory, DisputeOpened
from vigie_featureset import TxFact, complete
from vigie_inference.adapters.predictions import PredictionLog
from vigie_inference.handlers.decision import decide
from vigie_inference.model import DEFAULT_CHALLENGERS, DEFAULT_CHAMPION, ColdStartModel
from vigie_localstack.settings import StackSettings
from vigie_runtime.headers import EVENT_ID, LABEL_VALUE
from vigie_runtime.testing import collect, eventually
from vigie_stores.cassandra import CassandraStore
from vigie_stores.mongo import MongoStore
from vigie_stores.redis import RedisStore

pytestmark = pytest.mark.integration

T0 = datetime(2018, 4, 1, 8, tzinfo=UTC)
CHALLENGER = DEFAULT_CHALLENGERS[0]
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


def _payload(event: Any) -> dict[str, Any]:
    return event.model_dump(mode="json")  # type: ignore[no-any-return]


async def test_scores_point_in_time_on_every_sink_and_over_rest(
    stack: StackSettings, unique: str
) -> None:
    hour = timedelta(hours=1)
    a = [transaction(i, "A", T0 + i * hour, 1_000 * (i + 1), "term-A") for i in range(3)]
    b = [transaction(10 + i, "B", T0 + i * hour, 2_000 * (i + 1), "term-B") for i in range(2)]
    c = [transaction(20 + i, "C", T0 + i * hour, 3_000 * (i + 1), "term-C") for i in range(2)]
    facts = {e.transaction_id: TxFact.from_event(e) for e in a + b + c}
    expected = {
        # the vector of each transaction counts exactly those before it, and itself once
        e.transaction_id: complete(
            facts[e.transaction_id], states_of([facts[p.transaction_id] for p in group[:n]])
        )
        for group in (a, b, c)
        for n, e in enumerate(group)
    }
    async with environment(stack, unique) as env:
        redis = await RedisStore.open(env.settings.redis)
        async with redis:
            # A: the features worker is ahead (all three applied); B: it lags (nothing yet);
            # C: exactly up to date (the first one applied)
            await write_features(redis, states_of([facts[e.transaction_id] for e in a]))
            await write_features(redis, states_of([facts["tx-20"]]))
        async with service(env.settings):
            await produce(env.bootstrap, env.settings.transactions_topic, a + b)
            # c continues a trace: the score and decision must continue it too
            await produce(
                env.bootstrap,
                env.settings.transactions_topic,
                c,
                traceparent=f"00-{TRACE}-00f067aa0ba902b7-01",
            )
            records = await collect(env.bootstrap, env.settings.scores_topic, 7, timeout_s=30)
            decisions = await collect(env.bootstrap, env.settings.decisions_topic, 7, timeout_s=10)
            async with httpx.AsyncClient(base_url=env.url) as client:
                rest = {
                    e.transaction_id: (await client.post("/v1/score", json=_payload(e))).json()
                    for e in (a[1], b[1], c[1])
                }
                status = (await client.get("/v1/models/status")).json()
                bad = await client.post("/v1/score", json={"transaction_id": "x"})
            mongo = await MongoStore.open(env.settings.mongo)
            async with mongo:

                async def all_events() -> bool:
                    found = await mongo.find(env.settings.events_collection)
                    return len(found) == 7

                await eventually(all_events, timeout_s=20)
                docs = {d["_id"]: d for d in await mongo.find(env.settings.events_collection)}
            cassandra = await CassandraStore.open(env.settings.cassandra)
            async with cassandra:
                log = PredictionLog(cassandra, env.settings.keyspace, env.settings.prediction_ttl)
                logged = await log.get(expected)

    scores = {}
    traced: set[str] = set()
    for record in records + decisions:
        envelope = decode(record.value)
        headers = dict(record.headers)
        assert headers[EVENT_ID].decode() == envelope.event_id  # headers match the body
        if envelope.payload.transaction_id in {e.transaction_id for e in c}:  # type: ignore[attr-defined]
            assert TRACE in headers["traceparent"].decode()
            assert envelope.traceparent is not None and TRACE in envelope.traceparent
            traced.add(envelope.event_id)
        if isinstance(envelope.payload, FraudScore):
            scores[envelope.payload.transaction_id] = envelope.payload
    assert traced == {f"tx-{i}:{what}" for i in (20, 21) for what in ("score", "decision")}
    assert set(scores) == set(expected)
    decided = [decode(r.value).payload for r in decisions]
    assert all(isinstance(d, FraudDecision) for d in decided)
    assert {d.transaction_id for d in decided if isinstance(d, FraudDecision)} == set(expected)
    for tx_id, vector in expected.items():
        assert docs[tx_id]["features"] == pytest.approx(vector, rel=1e-12), tx_id
        assert logged[tx_id].features == vector, tx_id  # the snapshot, exactly
        assert docs[tx_id]["score"] == scores[tx_id].score
        assert docs[tx_id]["model_version"] == scores[tx_id].model_version
        rule = ColdStartModel().explain(vector, env.settings.top_features)
        assert docs[tx_id]["top_features"] == [
            {"name": n, "value": pytest.approx(v), "contribution": pytest.approx(c)}
            for n, v, c in rule
        ]
        assert [f.name for f in scores[tx_id].top_features] == [n for n, _, _ in rule]
        assert scores[tx_id].terminal_id == facts[tx_id].terminal_id
    # no model learned yet: the cold-start rule serves, and says so everywhere
    assert status["cold_start"] is True
    assert all(s.cold_start and s.model_name == "cold_start" for s in scores.values())
    # decisions follow the thresholds
    for s in scores.values():
        assert s.decision is decide(s.score, env.settings.thresholds)[0]
    for tx_id, answer in rest.items():
        assert answer["score"] == scores[tx_id].score
        assert answer["decision"] == scores[tx_id].decision.value
        assert answer["features"] == pytest.approx(expected[tx_id], rel=1e-12)
    assert bad.status_code == 422


async def test_labels_learning_reload_promote_rollback(stack: StackSettings, unique: str) -> None:
    step = timedelta(hours=6)
    txs = [
        transaction(i, f"K{i % 4}", T0 + i * step, 25_000 if i % 5 == 0 else 3_000, f"term-{i % 7}")
        for i in range(44)  # 11 days
    ]
    # Not tx-0: the first 30 transactions span 7.25 days, past tx-0's label deadline, so the
    # sweep may rightly call it genuine before its dispute (opened at the deadline) is produced.
    frauds = [t for i, t in enumerate(txs) if i % 5 == 0 and 0 < i < 30]
    # the learned model serves once it has learned every one of these frauds
    async with environment(
        stack, unique, label_grace=timedelta(0), min_frauds_to_serve=len(frauds)
    ) as env:
        async with service(env.settings):
            async with httpx.AsyncClient(base_url=env.url) as client:
                first = (await client.get("/v1/models/status")).json()
                await produce(env.bootstrap, env.settings.transactions_topic, txs[:30])
                await collect(env.bootstrap, env.settings.scores_topic, 30, timeout_s=30)
                disputes = [
                    DisputeOpened(
                        dispute_id=f"d-{t.transaction_id}",
                        transaction_id=t.transaction_id,
                        customer_id=t.customer_id,
                        reason_code="10.4",
                        category=DisputeCategory.FRAUD,
                        amount_minor=t.amount_minor,
                        currency="EUR",
                        opened_at=t.occurred_at + timedelta(days=7),
                    )
                    for t in frauds
                ]
                await produce(env.bootstrap, env.settings.disputes_topic, disputes)
                await collect(env.bootstrap, env.settings.labels_topic, len(frauds), timeout_s=20)
                # the clock moves on: transactions older than 7 days get their genuine label
                await produce(env.bootstrap, env.settings.transactions_topic, txs[30:])

                async def learned() -> bool:
                    status = (await client.get("/v1/models/status")).json()
                    cp = status["checkpoint"]
                    return (
                        not status["cold_start"]
                        and cp is not None
                        and cp["learned"] >= len(frauds) + 10
                    )

                await eventually(learned, timeout_s=40, every_s=0.3)
                warm = (await client.get("/v1/models/status")).json()
                # the served models are kept out of the cyclic GC's full passes
                frozen = gc.get_freeze_count()
                listing = (await client.get("/v1/models")).json()
                promoted = await client.post(
                    "/v1/models/promote", json={"model_name": CHALLENGER, "reason": "test"}
                )
                unknown = await client.post("/v1/models/promote", json={"model_name": "nope"})
                rolled = await client.post("/v1/models/rollback", json={"reason": "test"})
                quality = (await client.get("/v1/models/metrics?day=2018-04-02&days=2")).json()
                score = (await client.post("/v1/score", json=_payload(txs[-1]))).json()
                metrics = (await client.get("/metrics")).text
        label_records = await collect(env.bootstrap, env.settings.labels_topic, 1000, timeout_s=3)
        labels = [decode(r.value).payload for r in label_records]

    gc.unfreeze()
    assert frozen > 0
    assert first["cold_start"] is True and first["checkpoint"] is None
    assert first["serve_after"] == {"labels": 1, "frauds": len(frauds)}
    assert warm["champion"]["model_name"] == DEFAULT_CHAMPION
    assert warm["champion"]["version"].startswith(f"{DEFAULT_CHAMPION}@")
    assert [c["model_name"] for c in warm["challengers"]] == list(DEFAULT_CHALLENGERS)
    assert listing["versions"] and listing["versions"][0]["learned"] >= len(frauds)
    assert warm["checkpoint"]["learned_frauds"] == len(frauds)
    assert promoted.status_code == 200
    assert promoted.json()["champion"]["model_name"] == CHALLENGER
    assert unknown.status_code == 422
    assert rolled.status_code == 200
    assert rolled.json()["champion"]["model_name"] == DEFAULT_CHAMPION
    assert score["cold_start"] is False and score["model_name"] == DEFAULT_CHAMPION
    assert all(isinstance(label, FraudLabel) for label in labels)
    # the value is in a header too: a consumer that needs only frauds skips the rest undecoded
    assert [dict(r.headers)[LABEL_VALUE].decode() for r in label_records] == [
        label.label.value for label in labels if isinstance(label, FraudLabel)
    ]
    fraud_ids = {t.transaction_id for t in frauds}
    by_source: dict[LabelSource, set[str]] = {}
    for label in labels:
        assert isinstance(label, FraudLabel)
        by_source.setdefault(label.source, set()).add(label.transaction_id)
    assert by_source[LabelSource.DISPUTE] == fraud_ids
    genuine = by_source[LabelSource.LABEL_DELAY_EXPIRED]
    assert genuine and not genuine & fraud_ids  # a fraud is never swept as genuine
    # swept only past the deadline: the newest transaction is 10.75 days in, so at most those
    # of the first 3.75 days
    assert all(int(t.split("-")[1]) <= 15 for t in genuine)
    day = quality["days"][0]
    assert day["labels"] > 0 and "logreg" in day["models"]
    assert "vigie_inference_scored_total" in metrics
    assert "vigie_inference_labels_total" in metrics
