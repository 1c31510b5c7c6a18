"""PostgreSQL plays the OLTP database: logical WAL for Debezium and the payments schema."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

import psycopg
import pytest

from vigie_localstack.settings import StackSettings

pytestmark = pytest.mark.integration

OLTP_TABLES = {
    "customers",
    "merchants",
    "terminals",
    "cards",
    "transactions",
    "refunds",
    "disputes",
}


def _connect(stack: StackSettings) -> psycopg.Connection[tuple[object, ...]]:
    return psycopg.connect(
        host=stack.host,
        port=stack.postgres_port,
        user=stack.postgres_user,
        password=stack.postgres_password,
        dbname=stack.postgres_db,
    )


def test_logical_replication_is_enabled(stack: StackSettings) -> None:
    with _connect(stack) as conn:
        assert conn.execute("SHOW wal_level").fetchone() == ("logical",)
        row = conn.execute("SELECT rolreplication FROM pg_roles WHERE rolname = current_user")
        assert row.fetchone() == (True,)


def test_oltp_schema_has_every_table_with_full_replica_identity(stack: StackSettings) -> None:
    with _connect(stack) as conn:
        rows = conn.execute(
            "SELECT relname, relreplident FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r'"
        ).fetchall()
    identity = {str(name): str(ident) for name, ident in rows}
    assert OLTP_TABLES <= identity.keys()
    assert all(identity[table] == "f" for table in OLTP_TABLES)


def test_a_payment_round_trips_with_exact_money(stack: StackSettings, unique: str) -> None:
    with _connect(stack) as conn, conn.transaction(force_rollback=True):
        customer = conn.execute(
            "INSERT INTO customers (full_name, email) VALUES (%s, %s) RETURNING id",
            ("Ada Test", f"{unique}@example.test"),
        ).fetchone()
        merchant = conn.execute(
            "INSERT INTO merchants (name, mcc) VALUES ('Shop', '5411') RETURNING id"
        ).fetchone()
        assert customer and merchant
        terminal = conn.execute(
            "INSERT INTO terminals (merchant_id) VALUES (%s) RETURNING id", (merchant[0],)
        ).fetchone()
        assert terminal
        tx = conn.execute(
            "INSERT INTO transactions (customer_id, terminal_id, merchant_id, amount, currency) "
            "VALUES (%s, %s, %s, %s, 'EUR') RETURNING id, amount, status, updated_at",
            (customer[0], terminal[0], merchant[0], Decimal("12.3456")),
        ).fetchone()
        assert tx is not None
        assert tx[1] == Decimal("12.3456") and tx[2] == "pending"
        updated = conn.execute(
            "UPDATE transactions SET status = 'authorized' WHERE id = %s RETURNING updated_at",
            (tx[0],),
        ).fetchone()
        assert updated is not None
        assert isinstance(updated[0], datetime) and isinstance(tx[3], datetime)
        assert updated[0] >= tx[3]
        with pytest.raises(psycopg.errors.CheckViolation):
            conn.execute("SAVEPOINT neg")
            conn.execute("UPDATE transactions SET amount = -1 WHERE id = %s", (tx[0],))
        conn.execute("ROLLBACK TO SAVEPOINT neg")
