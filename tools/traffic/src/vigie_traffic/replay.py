"""A transactions file played through the OLTP database, and the map that ties its rows to vigie's.

The file's transactions become OLTP rows in time order, each fraud label a ``fraud`` dispute
``label_delay`` after its transaction (event times kept: ``occurred_at`` is the file's datetime,
``opened_at`` that plus the delay). Every row is authorized (no simulated declines, no refunds), so
no label is lost, except a fraud of amount 0, which the disputes table forbids (counted).

The map (Parquet) has one row per accepted file row: the file's ``file_transaction_id``, vigie's
``transaction_id`` (the OLTP ``transactions.id`` as text, as ingest-cdc publishes it; null when
the row was not written), ``datetime``, ``customer_id``, ``terminal_id``, ``amount``, ``fraud``
(0/1) and ``label_at`` (when its dispute is due: null for a genuine row or an amount of 0; a
run stopped early by ``--max-transactions`` or Ctrl-C never writes the later ones).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from vigie_traffic.dataset import ObjectArray, Transactions, replay_days
from vigie_traffic.plan import ActionConfig, Timeline, TxWrite, World, actions, build_world
from vigie_traffic.simulator import Day
from vigie_traffic.writer import ActionWriter, RunStats, WorldIds, write_world

MAP_SCHEMA = pa.schema(
    [
        ("file_transaction_id", pa.string()),
        ("transaction_id", pa.string()),
        ("datetime", pa.timestamp("us", tz="UTC")),
        ("customer_id", pa.string()),
        ("terminal_id", pa.string()),
        ("amount", pa.float64()),
        ("fraud", pa.int8()),
        ("label_at", pa.timestamp("us", tz="UTC")),
    ]
)


@dataclass(frozen=True, slots=True)
class ReplayPlan:
    world: World
    timeline: Timeline
    config: ActionConfig
    replay: Transactions
    days: list[Day]

    @property
    def lost_labels(self) -> int:
        """Frauds of amount 0: no dispute can carry their label."""
        return int((self.replay.fraud & (self.replay.amount_cents == 0)).sum())


def plan_replay(
    tx: Transactions, ref_prefix: str, *, seed: int = 0, label_delay: timedelta
) -> ReplayPlan:
    """The world (one customer, card and terminal per distinct file id; no grid positions) and
    the days to feed :func:`vigie_traffic.plan.actions`."""
    world_seed, timeline_seed = np.random.SeedSequence(seed).spawn(2)
    days = replay_days(tx)
    unknown = np.full(days.customers.size, np.nan)
    world = build_world(
        ref_prefix,
        seed=world_seed,
        customers=(unknown, unknown),
        terminals=(np.full(days.terminals.size, np.nan), np.full(days.terminals.size, np.nan)),
        issued_year=days.start.year,
    )
    timeline = Timeline(start=days.start, end_s=None, seed=timeline_seed)
    config = ActionConfig(label_delay=label_delay, decline_share=0.0, refund_share=0.0)
    return ReplayPlan(world=world, timeline=timeline, config=config, replay=tx, days=days.days)


class VigieIds:
    """vigie's transaction id of each replayed row, filled as batches commit."""

    def __init__(self, n: int) -> None:
        self.ids: ObjectArray = np.full(n, None, dtype=object)

    def record(self, txs: Sequence[TxWrite], db_ids: Sequence[int]) -> None:
        for tx, db_id in zip(txs, db_ids, strict=True):
            self.ids[tx.tx] = str(db_id)

    @property
    def written(self) -> int:
        return int(sum(i is not None for i in self.ids))


def play(
    conn: psycopg.Connection[Any],
    plan: ReplayPlan,
    ids: VigieIds,
    *,
    rate: float | None,
    batch_size: int = 50,
    max_transactions: int | None = None,
    progress: Callable[[RunStats], None] | None = None,
) -> tuple[WorldIds, ActionWriter]:
    """Writes the world, then the transactions and disputes; ``ids`` fills as batches commit
    (an interrupt leaves it true to what is in the database)."""
    world_ids = write_world(conn, plan.world)
    writer = ActionWriter(
        conn,
        plan.world,
        world_ids,
        rate=rate,
        batch_size=batch_size,
        on_written=ids.record,
    )
    stream = actions(plan.world, plan.days, plan.timeline, plan.config)
    writer.run(stream, max_transactions=max_transactions, progress=progress)
    return world_ids, writer


def map_table(tx: Transactions, vigie_ids: ObjectArray, label_delay: timedelta) -> Any:
    times = pa.array(tx.time_us, pa.int64()).cast(pa.timestamp("us", tz="UTC"))
    delay_us = label_delay // timedelta(microseconds=1)
    labelled = tx.fraud & (tx.amount_cents > 0)
    label_at = pa.array(tx.time_us + delay_us, pa.int64(), mask=~labelled).cast(
        pa.timestamp("us", tz="UTC")
    )
    return pa.table(
        [
            pa.array(tx.transaction_id.tolist(), pa.string()),
            pa.array(vigie_ids.tolist(), pa.string()),
            times,
            pa.array(tx.customer_id.tolist(), pa.string()),
            pa.array(tx.terminal_id.tolist(), pa.string()),
            pa.array(tx.amount_cents / 100, pa.float64()),
            pa.array(tx.fraud.astype(np.int8)),
            label_at,
        ],
        schema=MAP_SCHEMA,
    )


def write_map(path: Path, table: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)


def rejects_path(map_path: Path) -> Path:
    """Beside the map: ``run.map.parquet`` -> ``run.map.rejects.csv``."""
    return map_path.with_suffix(".rejects.csv")
