"""Consumer lag from Kafka itself: the reader's offsets, and a group that stops consuming raising
a lag alert within the rule's window, resolved once it catches up."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiokafka import AIOKafkaConsumer

from vigie_alerting.adapters.lag import LagReader
from vigie_alerting.testing import (
    WEBHOOK_ENV,
    WEBHOOK_KEY,
    alerting,
    make_topics,
    producer,
    read_alerts,
    receiver,
    settings_for,
    throwaway_database,
)
from vigie_localstack.settings import StackSettings
from vigie_runtime import KafkaSettings, Producer
from vigie_runtime.testing import eventually, topic_factory

pytestmark = pytest.mark.integration

STACK = StackSettings()
BOOTSTRAP = f"{STACK.host}:{STACK.kafka_port}"
MONGO = f"mongodb://{STACK.host}:{STACK.mongo_port}"


@asynccontextmanager
async def consuming(topic: str, group: str) -> AsyncIterator[list[int]]:
    """A consumer of ``group`` that commits after every poll; yields the count it read."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=BOOTSTRAP,
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    read = [0]

    async def run() -> None:
        while True:
            batches = await consumer.getmany(timeout_ms=100)
            if batches:
                read[0] += sum(len(records) for records in batches.values())
                await consumer.commit()

    task = asyncio.create_task(run())
    try:
        yield read
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await consumer.stop()


async def test_the_reader_gives_committed_and_end_offsets_of_watched_groups(unique: str) -> None:
    group = f"lagread-{unique}"
    async with topic_factory(BOOTSTRAP) as factory, producer(BOOTSTRAP) as send:
        topic = (await factory.create(f"test-al-lag-{unique}", 2)).name
        for i in range(6):
            await send.send_raw(topic, b"x", key=None, partition=i % 2)
        async with consuming(topic, group) as read:

            async def all_read() -> bool:
                return read[0] == 6

            await eventually(all_read)
        for _ in range(5):
            await send.send_raw(topic, b"y", key=None, partition=1)
        async with LagReader(KafkaSettings(bootstrap_servers=BOOTSTRAP)) as reader:
            readings = await reader.read(lambda g: g == group)
    assert [r.group for r in readings] == [group]
    reading = readings[0]
    assert dict(reading.committed) == {(topic, 0): 3, (topic, 1): 3}
    assert dict(reading.ends) == {(topic, 0): 3, (topic, 1): 8}
    assert reading.lag == 5


RULES = """
defaults: {{update_interval: 1s, reopen_within: 1s}}
rules:
  - {{name: lag, kind: consumer_lag, groups: ["{group}*"], threshold: 5, window: {window}s,
     min_samples: 3}}
webhooks:
  - {{name: hook, url: "{url}", secret_env: {env}}}
"""


@pytest.mark.slow
async def test_a_group_that_stops_consuming_raises_a_lag_alert_within_the_window(
    unique: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(WEBHOOK_ENV, WEBHOOK_KEY.decode())
    window = 3.0
    group = f"lagtest-{unique}"
    database = f"alerting_test_{unique}"
    async with (
        topic_factory(BOOTSTRAP) as factory,
        receiver() as hook,
        throwaway_database(MONGO, database),
        Producer(KafkaSettings(bootstrap_servers=BOOTSTRAP, linger_ms=0)) as send,
    ):
        topics = await make_topics(factory, unique)
        watched = (await factory.create(f"test-al-lagged-{unique}", 3)).name
        rules_path = tmp_path / "rules.yaml"
        rules = RULES.format(group=group, window=window, url=hook.url, env=WEBHOOK_ENV)
        rules_path.write_text(rules)
        settings = settings_for(
            unique, topics, rules_path, bootstrap=BOOTSTRAP, mongo_url=MONGO, database=database
        )
        traffic_on = asyncio.Event()

        async def traffic() -> None:
            while True:
                await traffic_on.wait()
                await send.send_raw(watched, b"tx", key=None)
                await asyncio.sleep(0.02)

        feeder = asyncio.create_task(traffic())
        try:
            async with alerting(settings):
                traffic_on.set()
                async with consuming(watched, group) as read:
                    # keeping up for a whole window: no alert
                    await asyncio.sleep(window + 1)  # the time under test, not a synchronisation
                    assert read[0] > 0 and not hook.of("lag")
                stopped = time.monotonic()

                async def alerted() -> bool:
                    return bool(hook.of("lag", "fired"))

                await eventually(alerted, timeout_s=window * 4)
                took = time.monotonic() - stopped
                fired = hook.of("lag", "fired")[0].body["alert"]
                assert fired["labels"]["group"] == group and int(fired["labels"]["lag"]) > 5
                assert "stalled" in fired["labels"]["why"]
                # min_samples readings at lag_interval after the lag passed the threshold
                assert took < window + 1.5, took
                traffic_on.clear()
                async with consuming(watched, group):

                    async def resolved() -> bool:
                        return bool(hook.of("lag", "resolved"))

                    await eventually(resolved, timeout_s=window * 4)
                published = await read_alerts(BOOTSTRAP, topics.alerts)
        finally:
            feeder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feeder
    changes = [p.change for p in published if p.alert.rule == "lag"]
    assert changes.count("fired") == 1 and changes[-1] == "resolved", changes
