"""The writer against the real OLTP PostgreSQL: what lands in the tables is exactly the plan."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from typing import Any

import psycopg
import pytest

from vigie_localstack.settings import StackSettings
from vigie_traffic.plan import (
    ActionConfig,
    DisputeWrite,
    RefundWrite,
    TxWrite,
    actions,
    luhn_valid,
    simulator_timeline,
    simulator_world,
)
from vigie_traffic.simulator import SimConfig, Simulator
from vigie_traffic.writer import ActionWriter, WorldIds, delete_run, write_world

pytestmark = pytest.mark.integration

CONFIG = SimConfig(n_customers=50, n_terminals=100, nb_days=10, seed=42)


@pytest.fixture
def conn(stack: StackSettings) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(stack.postgres_dsn(), autocommit=True) as c:
        yield c


def _count(conn: psycopg.Connection[Any], sql: str, *params: Any) -> int:
    row = conn.execute(sql, params).fetchone()
    assert row is not None
    return int(row[0])


def test_a_small_world_lands_exactly_as_simulated(
    conn: psycopg.Connection[Any], unique: str
) -> None:
    sim = Simulator(CONFIG)
    world = simulator_world(sim, f"test-{unique}")
    # More refunds than the default 1%, so a world this small has some.
    timeline = simulator_timeline(sim)
    plan = list(actions(world, sim.days(), timeline, ActionConfig(refund_share=0.05)))
    planned_tx = [a for a in plan if isinstance(a, TxWrite)]
    planned_disputes = [a for a in plan if isinstance(a, DisputeWrite)]
    planned_refunds = [a for a in plan if isinstance(a, RefundWrite)]
    assert planned_tx and planned_disputes and planned_refunds

    ids: WorldIds | None = None
    try:
        ids = write_world(conn, world)
        rate = 600.0
        t0 = time.monotonic()
        stats = ActionWriter(conn, world, ids, rate=rate).run(plan)
        elapsed = time.monotonic() - t0
        assert stats.transactions == len(planned_tx)
        assert stats.disputes == len(planned_disputes)
        assert stats.refunds == len(planned_refunds)
        # Paced: not faster than the rate (one batch of slack), and the rate is actually reached.
        assert elapsed >= (len(planned_tx) - 50) / rate
        assert 0.5 * rate < stats.rate <= 1.05 * rate

        prefix = f"test-{unique}-c%"
        assert (
            _count(conn, "SELECT count(*) FROM customers WHERE external_ref LIKE %s", prefix) == 50
        )
        assert (
            _count(conn, "SELECT count(*) FROM terminals WHERE id = ANY(%s)", ids.terminals) == 100
        )
        pans = conn.execute(
            "SELECT pan FROM cards WHERE customer_id = ANY(%s)", (ids.customers,)
        ).fetchall()
        assert len(pans) == 50 and all(luhn_valid(p[0]) for p in pans)

        # Our rows, in insertion order (identity ids grow), are the plan's transactions one for one.
        rows = conn.execute(
            "SELECT id, customer_id, terminal_id, amount, occurred_at, status FROM transactions"
            " WHERE customer_id = ANY(%s) ORDER BY id",
            (ids.customers,),
        ).fetchall()
        assert len(rows) == len(planned_tx)
        db_of: dict[int, int] = {}
        for row, tx in zip(rows, planned_tx, strict=True):
            db_id, customer_id, terminal_id, amount, occurred_at, status = row
            assert customer_id == ids.customers[tx.customer]
            assert terminal_id == ids.terminals[tx.terminal]
            assert amount == Decimal(tx.amount_cents) / 100
            assert occurred_at == tx.at
            assert status == ("declined" if tx.declined else "authorized")
            db_of[tx.tx] = db_id

        disputes = conn.execute(
            "SELECT transaction_id, category, reason_code, amount, opened_at FROM disputes"
            " WHERE transaction_id = ANY(%s)",
            (list(db_of.values()),),
        ).fetchall()
        fraud_db_ids = {db_of[t.tx] for t in planned_tx if t.fraud}
        end = CONFIG.start + timedelta(days=CONFIG.nb_days)
        due = {
            db_of[t.tx]
            for t in planned_tx
            if t.fraud and not t.declined and t.at + timedelta(days=7) < end
        }
        assert due and {d[0] for d in disputes} == due
        assert {d[0] for d in disputes} <= fraud_db_ids  # never a genuine payment
        tx_by_db = {db_of[t.tx]: t for t in planned_tx}
        for tx_id, category, reason, amount, opened_at in disputes:
            assert category == "fraud" and reason in {"10.4", "4837"}
            assert amount == Decimal(tx_by_db[tx_id].amount_cents) / 100
            assert opened_at == tx_by_db[tx_id].at + timedelta(days=7)
        refunded = conn.execute(
            "SELECT transaction_id FROM refunds WHERE transaction_id = ANY(%s)",
            (list(db_of.values()),),
        ).fetchall()
        assert {r[0] for r in refunded} == {db_of[r.tx] for r in planned_refunds}
        assert not {r[0] for r in refunded} & fraud_db_ids
    finally:
        if ids is not None:
            delete_run(conn, ids)
    assert _count(conn, "SELECT count(*) FROM customers WHERE id = ANY(%s)", ids.customers) == 0
    assert _count(conn, "SELECT count(*) FROM merchants WHERE id = ANY(%s)", ids.merchants) == 0


def test_max_transactions_stops_the_stream(conn: psycopg.Connection[Any], unique: str) -> None:
    sim = Simulator(CONFIG)
    world = simulator_world(sim, f"cap-{unique}")
    ids = write_world(conn, world)
    try:
        stats = ActionWriter(conn, world, ids, batch_size=7).run(
            actions(world, sim.days(), simulator_timeline(sim)), max_transactions=33
        )
        assert stats.transactions == 33
        n = _count(
            conn, "SELECT count(*) FROM transactions WHERE customer_id = ANY(%s)", ids.customers
        )
        assert n == 33
    finally:
        delete_run(conn, ids)
