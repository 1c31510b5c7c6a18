"""Debezium change events of the OLTP database, as Kafka Connect writes them to ``cdc.public.*``."""

from __future__ import annotations

import json
import time
import uuid
from datetime import date
from typing import Any

import httpx
import psycopg
import pytest
from aiokafka import AIOKafkaConsumer

from vigie_localstack.settings import StackSettings

pytestmark = pytest.mark.integration

SETTINGS = StackSettings()
BOOTSTRAP = f"{SETTINGS.host}:{SETTINGS.kafka_port}"
#: Generous for a 2-core machine: Debezium usually delivers in well under a second.
DEADLINE_S = 30.0

Event = tuple[dict[str, Any], dict[str, Any] | None]  # (key, value); value None = tombstone


async def _connect() -> psycopg.AsyncConnection[tuple[Any, ...]]:
    return await psycopg.AsyncConnection.connect(
        host=SETTINGS.host, port=SETTINGS.postgres_port, user=SETTINGS.postgres_user,
        password=SETTINGS.postgres_password, dbname=SETTINGS.postgres_db, autocommit=True,
    )


async def _events_for(topic: str, row_id: int, count: int) -> list[Event]:
    """The first ``count`` records of ``topic`` keyed by ``{"id": row_id}``, in topic order."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=BOOTSTRAP,
        group_id=f"vigie-test-{uuid.uuid4().hex[:12]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    found: list[Event] = []
    deadline = time.monotonic() + DEADLINE_S
    try:
        while len(found) < count and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=1_000)
            for messages in batch.values():
                for message in messages:
                    key = json.loads(message.key)
                    if key == {"id": row_id}:
                        value = None if message.value is None else json.loads(message.value)
                        found.append((key, value))
    finally:
        await consumer.stop()
    return found


def test_connector_and_task_running() -> None:
    url = f"http://{SETTINGS.host}:{SETTINGS.connect_port}/connectors/vigie-oltp/status"
    status = httpx.get(url, timeout=5).json()
    assert status["connector"]["state"] == "RUNNING"
    assert [t["state"] for t in status["tasks"]] == ["RUNNING"]


async def test_customer_insert_update_delete_events() -> None:
    email = f"cdc-{uuid.uuid4().hex}@example.test"
    async with await _connect() as conn:
        row = await (await conn.execute(
            "INSERT INTO customers (full_name, email, date_of_birth, location_x, location_y)"
            " VALUES (%s, %s, %s, %s, %s) RETURNING id",
            ("Ada Lovelace", email, date(1990, 5, 17), 12.5, 80.25),
        )).fetchone()
        assert row is not None
        customer_id = int(row[0])
        await conn.execute(
            "UPDATE customers SET status = 'suspended' WHERE id = %s", (customer_id,)
        )
        await conn.execute("DELETE FROM customers WHERE id = %s", (customer_id,))

    events = await _events_for("cdc.public.customers", customer_id, 4)

    assert len(events) == 4, events
    (_, created), (_, updated), (_, deleted), (key, tombstone) = events
    assert created is not None and updated is not None and deleted is not None
    assert [created["op"], updated["op"], deleted["op"]] == ["c", "u", "d"]

    assert created["before"] is None
    after = created["after"]
    assert after["id"] == customer_id
    assert after["email"] == email
    assert after["full_name"] == "Ada Lovelace"
    assert after["status"] == "active"
    assert after["country_code"] == "FR"
    assert after["location_x"] == 12.5
    # date columns are days since the epoch; timestamptz columns are ISO-8601 strings.
    assert after["date_of_birth"] == (date(1990, 5, 17) - date(1970, 1, 1)).days
    assert isinstance(after["created_at"], str) and after["created_at"].endswith("Z")
    assert created["source"]["table"] == "customers"
    assert created["source"]["db"] == SETTINGS.postgres_db
    assert isinstance(created["source"]["lsn"], int)

    # REPLICA IDENTITY FULL: updates and deletes carry the whole previous row.
    assert updated["before"]["status"] == "active"
    assert updated["after"]["status"] == "suspended"
    assert updated["after"]["email"] == email
    assert updated["source"]["lsn"] > created["source"]["lsn"]

    assert deleted["after"] is None
    assert deleted["before"]["id"] == customer_id
    assert deleted["before"]["status"] == "suspended"

    assert key == {"id": customer_id} and tombstone is None


async def test_money_is_an_exact_decimal_string() -> None:
    """numeric(19,4) amounts arrive as strings (decimal.handling.mode=string), never as floats."""
    tag = uuid.uuid4().hex[:8]
    async with await _connect() as conn:
        async with conn.transaction():
            cur = await conn.execute(
                "INSERT INTO merchants (name, mcc) VALUES (%s, '5411') RETURNING id",
                (f"cdc-test-{tag}",),
            )
            merchant_id = (await cur.fetchone() or [0])[0]
            cur = await conn.execute(
                "INSERT INTO terminals (merchant_id) VALUES (%s) RETURNING id", (merchant_id,)
            )
            terminal_id = (await cur.fetchone() or [0])[0]
            cur = await conn.execute(
                "INSERT INTO customers (full_name, email) VALUES (%s, %s) RETURNING id",
                ("Grace Hopper", f"cdc-{tag}@example.test"),
            )
            customer_id = (await cur.fetchone() or [0])[0]
            cur = await conn.execute(
                "INSERT INTO transactions (customer_id, terminal_id, merchant_id, amount, currency)"
                " VALUES (%s, %s, %s, 1234567.8901, 'EUR') RETURNING id",
                (customer_id, terminal_id, merchant_id),
            )
            transaction_id = int((await cur.fetchone() or [0])[0])
        try:
            events = await _events_for("cdc.public.transactions", transaction_id, 1)
        finally:
            async with conn.transaction():
                await conn.execute("DELETE FROM transactions WHERE id = %s", (transaction_id,))
                await conn.execute("DELETE FROM terminals WHERE id = %s", (terminal_id,))
                await conn.execute("DELETE FROM merchants WHERE id = %s", (merchant_id,))
                await conn.execute("DELETE FROM customers WHERE id = %s", (customer_id,))

    assert len(events) == 1, events
    value = events[0][1]
    assert value is not None and value["op"] == "c"
    assert value["after"]["amount"] == "1234567.8901"
    assert value["after"]["currency"] == "EUR"
    assert value["after"]["customer_id"] == customer_id
