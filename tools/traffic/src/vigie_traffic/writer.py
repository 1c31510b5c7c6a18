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


@dataclass(frozen=True, slots=True)
class Written:
    """What an earlier run of the same actions committed, read back from the database: the ids
    of its transactions in insertion order (one writer, identity ids: the stream's order) with
    what identifies each (customer id, amount, event time), and the transactions that already
    have their dispute or refund."""

    transactions: Sequence[tuple[int, int, Decimal, datetime]]
    followed_up: frozenset[int]


def written_rows(conn: psycopg.Connection[Any], ids: WorldIds) -> Written:
    """The rows an earlier run of the world ``ids`` wrote (see ``Written``)."""
    of_run = "SELECT id FROM transactions WHERE customer_id = ANY(%s)"
    rows = conn.execute(
        "SELECT id, customer_id, amount, occurred_at FROM transactions"
        " WHERE customer_id = ANY(%s) ORDER BY id",
        (ids.customers,),
    ).fetchall()
    followed = conn.execute(
        f"SELECT transaction_id FROM disputes WHERE transaction_id IN ({of_run})"  # noqa: S608 - constant SQL
        f" UNION SELECT transaction_id FROM refunds WHERE transaction_id IN ({of_run})",
        (ids.customers, ids.customers),
    ).fetchall()
    return Written(
        transactions=[(int(r[0]), int(r[1]), r[2], r[3]) for r in rows],
        followed_up=frozenset(int(r[0]) for r in followed),
    )


class ResumeMismatch(ValueError):
    """The database holds rows of the world that are not this stream's."""


@dataclass(slots=True)
class RunStats:
    transactions: int = 0
    declined: int = 0
    #: transactions (and their disputes and refunds) an earlier run had written: skipped
    resumed: int = 0
    disputes: int = 0
    refunds: int = 0
    elapsed_s: float = 0.0
    simulated_at: datetime | None = None

    @property
    def rate(self) -> float:
        return self.transactions / self.elapsed_s if self.elapsed_s > 0 else 0.0

    def summary(self) -> str:
        at = self.simulated_at.isoformat(timespec="seconds") if self.simulated_at else "-"
        earlier = f" + {self.resumed} written before" if self.resumed else ""
        return (
            f"simulated {at}  tx {self.transactions}{earlier} (declined {self.declined})  "
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
        written: Written | None = None,
    ) -> RunStats:
        """Writes ``actions``; with ``written`` (an interrupted run of the same actions), the
        transactions, disputes and refunds it committed are skipped and the rest written: the
        stream resumes where it stopped. ``max_transactions`` counts new transactions."""
        started = self._clock()
        last_report = started
        pending = _Pending()
        queued_tx = 0
        earlier = written.transactions if written is not None else ()
        followed_up = written.followed_up if written is not None else frozenset()
        seen_tx = 0
        adopted: list[tuple[TxWrite, int]] = []
        for action in actions:
            if isinstance(action, TxWrite):
                if seen_tx < len(earlier):
                    adopted.append((action, self._adopt(action, earlier[seen_tx])))
                    seen_tx += 1
                    if seen_tx == len(earlier) and self._on_written is not None:
                        # the earlier run's rows, for the caller's map
                        self._on_written([a for a, _ in adopted], [i for _, i in adopted])
                    continue
                seen_tx += 1
                if max_transactions is not None and queued_tx >= max_transactions:
                    break
                queued_tx += 1
                pending.txs.append(action)
            elif self._tx_ids.get(action.tx) in followed_up:
                del self._tx_ids[action.tx]  # written before the interruption
                continue
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
        if seen_tx < len(earlier):
            raise ResumeMismatch(
                f"the database holds {len(earlier)} transactions of this world, the stream only "
                f"{seen_tx}: not the same file, seed or label delay"
            )
        self._flush(pending, started)
        return self.stats

    def _adopt(self, action: TxWrite, row: tuple[int, int, Decimal, datetime]) -> int:
        """The earlier run's row of ``action``, checked to be that very transaction."""
        db_id, customer_id, amount, occurred_at = row
        expected = (self._ids.customers[action.customer], cents(action.amount_cents), action.at)
        if (customer_id, amount, occurred_at) != expected:
            raise ResumeMismatch(
                f"transaction {db_id} of the database is (customer {customer_id}, {amount}, "
                f"{occurred_at.isoformat()}), the stream's is (customer {expected[0]}, "
                f"{expected[1]}, {expected[2].isoformat()}): not the same file, seed or world"
            )
        if action.follow_up:
            self._tx_ids[action.tx] = db_id
        self.stats.resumed += 1
        return db_id

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
