"""The worker against the real Kafka and Redis: a replayed simulated stream gives, in Redis,
exactly compute_offline()'s values at each entity's last event."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import features_testkit as kit
import pytest

from vigie_localstack.settings import StackSettings
from vigie_runtime import KafkaSettings, Producer
from vigie_stores.testing import throwaway_redis

pytestmark = pytest.mark.integration


async def test_replay_equals_offline(stack: StackSettings, unique: str, tmp_path: Path) -> None:
    s = kit.settings(stack, unique, tmp_path / "state")
    stream = kit.simulate(n_customers=40, n_terminals=60, nb_days=40)
    want = kit.expected(stream)
    items = kit.ordered(stream, s)
    await kit.create_topics(s)
    try:
        async with (
            throwaway_redis(s.redis) as store,
            Producer(KafkaSettings(bootstrap_servers=kit.bootstrap(stack))) as producer,
            kit.worker_in_process(s),
        ):
            for chunk in kit.chunks(items, timedelta(days=10)):
                await kit.produce(producer, chunk)
                await kit.wait_until(lambda: kit.caught_up(s), timeout_s=60)
            problems = await kit.mismatches(store, want)
            assert problems == [], problems[:20]
            kinds = {k[0] for k in want.values}
            assert kinds == {"customer", "card", "terminal", "merchant"}
            assert len(want.values) > 50
    finally:
        await kit.delete_topics(s, unique)
