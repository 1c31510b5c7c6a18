"""A webhook receiver down for 30 s, then up, receives every alert change, once — even though
the alerting instance that raised most of them was replaced during the outage (the outbox is in
MongoDB, not in memory)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from pathlib import Path

import pytest
from pydantic import SecretStr

from vigie_alerting.adapters.history import AlertHistory
from vigie_alerting.testing import (
    WEBHOOK_ENV,
    WEBHOOK_KEY,
    alerting,
    fraud_score,
    make_topics,
    producer,
    read_alerts,
    receiver,
    settings_for,
    throwaway_database,
)
from vigie_localstack.settings import StackSettings
from vigie_runtime.testing import eventually, topic_factory
from vigie_stores.mongo import MongoConfig, MongoStore

pytestmark = [pytest.mark.integration, pytest.mark.slow]

STACK = StackSettings()
BOOTSTRAP = f"{STACK.host}:{STACK.kafka_port}"
MONGO = f"mongodb://{STACK.host}:{STACK.mongo_port}"
OUTAGE_S = 30.0

RULES = """
defaults: {{update_interval: 1s, reopen_within: 1s}}
rules:
  - {{name: high, kind: event, source: fraud_scores, match: {{score: {{gte: 0.9}}}},
     group_by: [customer_id], resolve_after: 3s}}
webhooks:
  - {{name: hook, url: "{url}", secret_env: {env}, backoff_initial: 0.1, backoff_max: 0.5,
     failure_threshold: 3, open_for: 2s}}
"""


async def test_a_receiver_down_for_30_s_then_up_gets_every_alert_once(
    unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WEBHOOK_ENV, WEBHOOK_KEY.decode())
    database = f"alerting_test_{unique}"
    async with (
        topic_factory(BOOTSTRAP) as factory,
        receiver() as hook,
        throwaway_database(MONGO, database),
        producer(BOOTSTRAP) as send,
    ):
        topics = await make_topics(factory, unique)
        rules_path = tmp_path / "rules.yaml"
        rules_path.write_text(RULES.format(url=hook.url, env=WEBHOOK_ENV))
        settings = settings_for(
            unique, topics, rules_path, bootstrap=BOOTSTRAP, mongo_url=MONGO, database=database
        )

        async def high(customer: str) -> None:
            await send.send(topics.scores, fraud_score(customer, 0.97), key=customer)

        async with alerting(settings):
            await high(f"c0-{unique}")

            async def first_delivered() -> bool:
                return len(hook.deliveries) == 1

            await eventually(first_delivered)
            await hook.stop()
            down_at = time.monotonic()
            for i in range(1, 5):
                await high(f"c{i}-{unique}")

            async def all_resolved() -> bool:
                published = await read_alerts(BOOTSTRAP, topics.alerts, timeout_s=0.5)
                return sum(p.change == "resolved" for p in published) == 5

            await eventually(all_resolved, timeout_s=20)
        # a new instance takes over during the outage: it must deliver what the first left
        async with alerting(settings):
            await high(f"c5-{unique}")
            await asyncio.sleep(max(OUTAGE_S - (time.monotonic() - down_at), 0))  # the outage
            assert len(hook.deliveries) == 1  # nothing got through while it was down
            await hook.start()

            store = await MongoStore.open(
                MongoConfig(url=SecretStr(MONGO), database=database)
            )
            try:
                outbox = AlertHistory(store)

                async def all_delivered() -> bool:
                    states = await outbox.outbox_states()
                    return len(states) == 12 and set(states.values()) == {"delivered"}

                await eventually(all_delivered, timeout_s=30)
            finally:
                await store.close()
            published = await read_alerts(BOOTSTRAP, topics.alerts)

    expected = {p.event_id for p in published if p.change != "updated"}
    # c0..c5: fired and resolved each (c5 resolved before the receiver was back)
    assert len(expected) == 12
    keys = hook.keys()
    duplicates = [k for k, n in Counter(keys).items() if n > 1]
    assert duplicates == [] and set(keys) == expected
    assert all(d.signed for d in hook.deliveries)
