"""Sessions and log lines of the simulated customers, and their trip to Kafka."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import numpy as np
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from vigie_contracts.events import ClickstreamEvent
from vigie_localstack.settings import StackSettings
from vigie_traffic.activity import log_line, session
from vigie_traffic.activity_cli import parse_args, run

START = datetime(2018, 5, 1, 12, tzinfo=UTC)


def test_a_session_logs_in_then_browses_in_time_order_and_fits_the_contract() -> None:
    rng = np.random.default_rng(3)
    for _ in range(200):
        events = session("42", START, rng)
        names = [e.name for e in events]
        login = names.index("login")
        assert set(names[:login]) <= {"login_failed"}
        assert "page_view" in names
        if "purchase" in names:
            assert names.index("checkout_started") < names.index("purchase")
        times = [e.occurred_at for e in events]
        assert times == sorted(times) and times[0] == START
        for event in events:
            body = {**event.json(), "app_id": "demo"}
            body.pop("event_id")
            ClickstreamEvent.model_validate(body)


def test_sessions_are_seeded() -> None:
    a = session("7", START, np.random.default_rng(1))
    b = session("7", START, np.random.default_rng(1))
    assert a == b


def test_log_lines_mix_formats_errors_and_auth_failures() -> None:
    rng = np.random.default_rng(0)
    lines = [log_line(START, ["1", "2"], rng) for _ in range(3000)]
    by_service = {service for service, _ in lines}
    assert by_service == {"payments-api", "auth-service", "settlement-batch"}
    texts = [line.decode() for _, line in lines]
    assert any(t.startswith("{") and '"level": "error"' in t for t in texts)
    assert any("login failed: invalid password" in t for t in texts)
    assert any(" ERROR [settlement-batch]" in t for t in texts)


async def test_log_lines_reach_kafka(stack: StackSettings, unique: str) -> None:
    topic = f"activity-logs-{unique}"
    bootstrap = f"{stack.host}:{stack.kafka_port}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        await admin.close()
    args = parse_args(
        ["--sessions-per-s", "0", "--logs-per-s", "30", "--seconds", "2.5", "--logs-topic", topic,
         "--bootstrap", bootstrap]
    )  # fmt: skip
    counts = await run(args)
    assert counts["log_lines"] > 0 and counts["errors"] == 0
    consumer = AIOKafkaConsumer(topic, bootstrap_servers=bootstrap, auto_offset_reset="earliest")
    await consumer.start()
    try:
        seen = 0
        async with asyncio.timeout(30):
            while seen < counts["log_lines"]:
                batch = await consumer.getmany(timeout_ms=1000)
                seen += sum(len(records) for records in batch.values())
    finally:
        await consumer.stop()
    assert seen == counts["log_lines"]
