"""Writes the planned world and actions into the OLTP PostgreSQL, at a chosen rate.

Row ids come from the tables' identity columns (``RETURNING id``) and are kept in maps, so runs
never collide with each other nor with rows other programs write; customers carry an
``external_ref`` that names the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

import psycopg

from vigie_traffic.plan import Action, DisputeWrite, RefundWrite, TxWrite, World

INSERT_CUSTOMER = (
    "INSERT INTO customers (external_ref, full_name, email, phone, date_of_birth, location_x,"
    " location_y) VALUES (%s, %s, %s, %s, %s, %s, %s) RETURNING id"
)
INSERT_MERCHANT = "INSERT INTO merchants (name, mcc, city) VALUES (%s, %s, %s) RETURNING id"
INSERT_TERMINAL = (
    "INSERT INTO terminals (merchant_id, terminal_type, location_x, location_y)"
    " VALUES (%s, %s, %s, %s) RETURNING id"
)
INSERT_CARD = (
    "INSERT INTO cards (customer_id, pan, brand, expiry_month, expiry_year)"
    " VALUES (%s, %s, %s, %s, %s) RETURNING id"
)
INSERT_TRANSACTION = (
    "INSERT INTO transactions (customer_id, card_id, terminal_id, merchant_id, amount, status,"
    " channel, entry_mode, decline_reason, occurred_at, authorized_at)"
    " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) RETURNING id"
)
INSERT_DISPUTE = (
    "INSERT INTO disputes (transaction_id, reason_code, category, amount, opened_at)"
    " VALUES (%s, %s, 'fraud', %s, %s)"
)
INSERT_REFUND = (
    "INSERT INTO refunds (transaction_id, amount, reason, status)"
    " VALUES (%s, %s, 'customer_request', 'succeeded')"
)


def cents(amount_cents: int) -> Decimal:
    return Decimal(amount_cents).scaleb(-2)


@dataclass(frozen=True, slots=True)
class WorldIds:
    """Database ids, indexed like the simulator's customers, merchants, terminals (and cards)."""

    customers: list[int]
    merchants: list[int]
    terminals: list[int]
    cards: list[int]


@dataclass(slots=True)
class RunStats:
    transactions: int = 0
    declined: int = 0
    disputes: int = 0
    refunds: int = 0
    elapsed_s: float = 0.0
    simulated_at: datetime | None = None

    @property
    def rate(self) -> float:
        return self.transactions / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> str:
        at = self.simulated_at.isoformat(timespec="seconds") if self.simulated_at else "-"
        return (
            f"simulated {at}  tx {self.transactions} (declined {self.declined})  "
            f"disputes {self.disputes}  refunds {self.refunds}  "
            f"{self.rate:.1f} tx/s over {self.elapsed_s:.1f} s"
        )


@dataclass(slots=True)
class _Pending:
    txs: list[TxWrite] = field(default_factory=list)
    disputes: list[DisputeWrite] = field(default_factory=list)
    refunds: list[RefundWrite] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.txs) + len(self.disputes) + len(self.refunds)


def _insert_returning(
    conn: psycopg.Connection[Any], sql: str, rows: Sequence[Sequence[Any]]
) -> list[int]:
    if not rows:
        return []
    ids: list[int] = []
    with conn.cursor() as cur:
        # One result per row, in row order: a multi-row INSERT's RETURNING order is not guaranteed.
        cur.executemany(sql, rows, returning=True)
        while True:
            row = cur.fetchone()
            assert row is not None  # noqa: S101 - every statement returns its id
            ids.append(int(row[0]))
            if not cur.nextset():
                break
    return ids


def write_world(conn: psycopg.Connection[Any], world: World) -> WorldIds:
    with conn.transaction():
        customers = _insert_returning(
            conn,
            INSERT_CUSTOMER,
            [
                (c.external_ref, c.full_name, c.email, c.phone, c.date_of_birth,
                 c.location_x, c.location_y)
                for c in world.customers
            ],
        )  # fmt: skip
        merchants = _insert_returning(
            conn, INSERT_MERCHANT, [(m.name, m.mcc, m.city) for m in world.merchants]
        )
        terminals = _insert_returning(
            conn,
            INSERT_TERMINAL,
            [
                (merchants[t.merchant], t.terminal_type, t.location_x, t.location_y)
                for t in world.terminals
            ],
        )
        cards = _insert_returning(
            conn,
            INSERT_CARD,
            [
                (customers[c.customer], c.pan, c.brand, c.expiry_month, c.expiry_year)
                for c in world.cards
            ],
        )
    return WorldIds(customers=customers, merchants=merchants, terminals=terminals, cards=cards)


class ActionWriter:
    """Executes actions in batches of ``batch_size`` rows, one database transaction each, pacing
    transaction inserts at ``rate`` per second of wall time (``None``: as fast as possible).

    Simulated time is not tied to wall time: it advances as fast as the rate lets the stream
    progress, and every row keeps its simulated event time (occurred_at, opened_at).
    ``on_written`` receives each committed batch's transactions and their database ids.
    """

    def __init__(
        self,
        conn: psycopg.Connection[Any],
        world: World,
        ids: WorldIds,
        *,
        rate: float | None = None,
        batch_size: int = 50,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_written: Callable[[Sequence[TxWrite], Sequence[int]], None] | None = None,
    ) -> None:
        if rate is not None and rate <= 0:
            raise ValueError("the rate must be positive")
        if batch_size < 1:
            raise ValueError("the batch size must be at least 1")
        self._conn = conn
        self._world = world
        self._ids = ids
        self._rate = rate
        self._batch_size = batch_size
        self._clock = clock
        self._sleep = sleep
        self._on_written = on_written
        self._tx_ids: dict[int, int] = {}
        self.stats = RunStats()

    def run(
        self,
        actions: Iterable[Action],
        *,
        max_transactions: int | None = None,
        progress: Callable[[RunStats], None] | None = None,
        progress_every_s: float = 5.0,
    ) -> RunStats:
        started = self._clock()
        last_report = started
        pending = _Pending()
        queued_tx = 0
        for action in actions:
            if isinstance(action, TxWrite):
                if max_transactions is not None and queued_tx >= max_transactions:
                    break
                queued_tx += 1
                pending.txs.append(action)
            elif isinstance(action, DisputeWrite):
                pending.disputes.append(action)
            else:
                pending.refunds.append(action)
            if len(pending) >= self._batch_size:
                self._flush(pending, started)
                pending = _Pending()
                now = self._clock()
                if progress is not None and now - last_report >= progress_every_s:
                    last_report = now
                    progress(self.stats)
        self._flush(pending, started)
        return self.stats

    def _flush(self, pending: _Pending, started: float) -> None:
        if not pending:
            return
        ids, world = self._ids, self._world
        with self._conn.transaction():
            rows = []
            for a in pending.txs:
                status = "declined" if a.declined else "authorized"
                rows.append(
                    (
                        ids.customers[a.customer],
                        ids.cards[a.customer],
                        ids.terminals[a.terminal],
                        ids.merchants[world.terminals[a.terminal].merchant],
                        cents(a.amount_cents),
                        status,
                        a.channel,
                        a.entry_mode,
                        a.decline_reason,
                        a.at,
                        None if a.declined else a.at,
                    )
                )
            db_ids = _insert_returning(self._conn, INSERT_TRANSACTION, rows)
            for a, db_id in zip(pending.txs, db_ids, strict=True):
                if a.follow_up:
                    self._tx_ids[a.tx] = db_id
            with self._conn.cursor() as cur:
                if pending.disputes:
                    cur.executemany(
                        INSERT_DISPUTE,
                        [
                            (self._tx_ids.pop(d.tx), d.reason_code, cents(d.amount_cents), d.at)
                            for d in pending.disputes
                        ],
                    )
                if pending.refunds:
                    cur.executemany(
                        INSERT_REFUND,
                        [(self._tx_ids.pop(r.tx), cents(r.amount_cents)) for r in pending.refunds],
                    )
        if self._on_written is not None:
            self._on_written(pending.txs, db_ids)
        s = self.stats
        s.transactions += len(pending.txs)
        s.declined += sum(a.declined for a in pending.txs)
        s.disputes += len(pending.disputes)
        s.refunds += len(pending.refunds)
        times = [a.at for a in pending.txs]
        times += [d.at for d in pending.disputes] + [r.at for r in pending.refunds]
        s.simulated_at = max(times)
        if self._rate is not None:
            ahead = started + s.transactions / self._rate - self._clock()
            if ahead > 0:
                self._sleep(ahead)
        s.elapsed_s = self._clock() - started


def delete_run(conn: psycopg.Connection[Any], ids: WorldIds) -> None:
    """Removes every row of a run, children first (the foreign keys forbid any other order)."""
    tx_of_run = "SELECT id FROM transactions WHERE customer_id = ANY(%s)"
    with conn.transaction(), conn.cursor() as cur:
        cur.execute(f"DELETE FROM disputes WHERE transaction_id IN ({tx_of_run})", (ids.customers,))  # noqa: S608 - constant SQL
        cur.execute(f"DELETE FROM refunds WHERE transaction_id IN ({tx_of_run})", (ids.customers,))  # noqa: S608 - constant SQL
        cur.execute("DELETE FROM transactions WHERE customer_id = ANY(%s)", (ids.customers,))
        cur.execute("DELETE FROM cards WHERE id = ANY(%s)", (ids.cards,))
        cur.execute("DELETE FROM customers WHERE id = ANY(%s)", (ids.customers,))
        cur.execute("DELETE FROM terminals WHERE id = ANY(%s)", (ids.terminals,))
        cur.execute("DELETE FROM merchants WHERE id = ANY(%s)", (ids.merchants,))
