"""The MongoDB history and outbox on the real server (FerretDB here): newest state wins, open
incidents come back after a restart, filters, and the outbox from pending to delivered."""

from __future__ import annotations

import time

import pytest
from pydantic import SecretStr

from vigie_alerting.adapters.history import AlertHistory, OutboxEntry, public
from vigie_alerting.handlers import Engine, Observed
from vigie_alerting.rules import parse
from vigie_alerting.testing import fraud_score
from vigie_contracts.events.alerts import AlertStatus
from vigie_localstack.settings import StackSettings
from vigie_stores.mongo import MongoConfig
from vigie_stores.testing import throwaway_mongo

pytestmark = pytest.mark.integration

RULES = "rules: [{name: high, kind: event, source: fraud_scores, match: {score: {gte: 0.9}}, " \
    "group_by: [customer_id], resolve_after: 5}]"


def config(stack: StackSettings, unique: str) -> MongoConfig:
    return MongoConfig(
        url=SecretStr(f"mongodb://{stack.host}:{stack.mongo_port}"),
        database=f"alerting_history_{unique}",
    )


def observed(customer: str, now: float) -> Observed:
    envelope = fraud_score(customer, 0.95)
    return Observed("s", envelope.event_id, envelope.payload, now, now)


async def test_history_keeps_the_newest_state_and_restores_open_incidents(
    stack: StackSettings, unique: str
) -> None:
    now = time.time()
    engine = Engine(parse(RULES), sources={"s": "fraud_scores"}, heartbeat_topic="hb", now=now)
    async with throwaway_mongo(config(stack, unique)) as store:
        history = AlertHistory(store)
        await history.ensure_indexes()
        fired = engine.on_events([observed("c1", now)], now)
        other = engine.on_events([observed("c2", now)], now)
        ack = engine.acknowledge(fired[0].incident.alert_id, "ana", now + 1)
        assert ack is not None
        await history.save([(c, False) for c in fired + other + [ack]], [])
        # a late, older state of the same alert does not overwrite the newer one
        await history.save([(fired[0], False)], [])
        doc = await history.get(fired[0].incident.alert_id)
        assert doc is not None and doc["status"] == "acknowledged" and doc["revision"] == 2
        assert public(doc)["alert_id"] == fired[0].incident.alert_id
        assert isinstance(public(doc)["first_seen"], str)

        done = engine.resolve(other[0].incident.alert_id, "bob", now + 2)
        assert done is not None
        await history.save([(done, True)], [])
        restored = {i.alert_id: i for i in await history.open_incidents()}
        assert list(restored) == [fired[0].incident.alert_id]
        incident = restored[fired[0].incident.alert_id]
        assert incident.status is AlertStatus.ACKNOWLEDGED and incident.acknowledged_by == "ana"
        assert incident.transaction_ids == fired[0].incident.transaction_ids

        resolved = await history.find({"status": "resolved"}, limit=10)
        assert [d["_id"] for d in resolved] == [other[0].incident.alert_id]
        assert resolved[0]["silenced"] is True and resolved[0]["resolved_by"] == "bob"
        assert len(await history.find({"rule": "high"}, limit=10)) == 2
        assert await history.find({"rule": "nope"}, limit=10) == []


async def test_the_outbox_goes_from_pending_to_delivered_in_batches(
    stack: StackSettings, unique: str
) -> None:
    async with throwaway_mongo(config(stack, unique)) as store:
        history = AlertHistory(store, flush_interval_s=0.05)
        await history.ensure_indexes()
        entries = [
            OutboxEntry("hook", f"a:{i}", "a", b'{"change": "fired"}', 1000.0 + i) for i in range(5)
        ]
        await history.save([], entries)
        # saving the same entries again (a retried step) adds nothing
        await history.save([], entries)
        pending = await history.pending()
        assert [e.event_id for e in pending] == [f"a:{i}" for i in range(5)]
        assert pending[0].body == entries[0].body
        async with history.flushing():
            history.finished(entries[0], "delivered", 1)
            history.finished(entries[1], "rejected", 2)
        states = await history.outbox_states()
        assert states == {
            "hook:a:0": "delivered",
            "hook:a:1": "rejected",
            "hook:a:2": "pending",
            "hook:a:3": "pending",
            "hook:a:4": "pending",
        }
        assert [e.event_id for e in await history.pending()] == ["a:2", "a:3", "a:4"]
