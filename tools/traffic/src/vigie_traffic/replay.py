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

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
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
from vigie_traffic.writer import (
    ActionWriter,
    ResumeMismatch,
    RunStats,
    WorldIds,
    write_world,
    written_rows,
)

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
    ref_prefix: str
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
    return ReplayPlan(
        ref_prefix=ref_prefix,
        world=world,
        timeline=timeline,
        config=config,
        replay=tx,
        days=days.days,
    )


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


def world_path(map_path: Path) -> Path:
    """Beside the map: ``run.map.parquet`` -> ``run.map.world.json`` (what ``--resume`` needs)."""
    return map_path.with_suffix(".world.json")


def save_world(path: Path, ref_prefix: str, ids: WorldIds) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({"ref_prefix": ref_prefix, **asdict(ids)}), encoding="utf-8")
    tmp.replace(path)


def load_world(path: Path) -> tuple[str, WorldIds]:
    """The ref prefix and database ids of a run's world; raises ValueError on a bad file."""
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
        ids = WorldIds(**{k: [int(i) for i in raw[k]] for k in asdict(WorldIds([], [], [], []))})
        return str(raw["ref_prefix"]), ids
    except (OSError, KeyError, TypeError, ValueError) as exc:
        raise ValueError(f"{path}: not a replay world: {exc}") from exc


def play(
    conn: psycopg.Connection[Any],
    plan: ReplayPlan,
    ids: VigieIds,
    *,
    rate: float | None,
    world_file: Path,
    resume: bool = False,
    batch_size: int = 50,
    max_transactions: int | None = None,
    progress: Callable[[RunStats], None] | None = None,
) -> tuple[WorldIds, ActionWriter]:
    """Writes the world (its ids to ``world_file``), then the transactions and disputes; ``ids``
    fills as batches commit (an interrupt leaves it true to what is in the database). With
    ``resume``, the world is ``world_file``'s and what an earlier run of the same plan wrote is
    skipped (checked row by row: ``ResumeMismatch`` when the database holds other rows)."""
    written = None
    if resume:
        _, world_ids = load_world(world_file)
        sizes = (len(world_ids.customers), len(world_ids.terminals), len(world_ids.cards))
        planned = (len(plan.world.customers), len(plan.world.terminals), len(plan.world.cards))
        if sizes != planned:
            raise ResumeMismatch(
                f"{world_file}: a world of {sizes} (customers, terminals, cards), the file's is "
                f"{planned}: not the same file"
            )
        written = written_rows(conn, world_ids)
        if len(written.transactions) > len(plan.replay):
            raise ResumeMismatch(
                f"the database holds {len(written.transactions)} transactions of this world, "
                f"the file {len(plan.replay)}: not the same file"
            )
    else:
        world_ids = write_world(conn, plan.world)
        save_world(world_file, plan.ref_prefix, world_ids)
    writer = ActionWriter(
        conn,
        plan.world,
        world_ids,
        rate=rate,
        batch_size=batch_size,
        on_written=ids.record,
    )
    stream = actions(plan.world, plan.days, plan.timeline, plan.config)
    writer.run(stream, max_transactions=max_transactions, progress=progress, written=written)
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
