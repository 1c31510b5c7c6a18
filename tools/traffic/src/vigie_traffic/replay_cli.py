"""``vigie-replay``: play a transactions file through the OLTP database, and report how well the
platform scored it.

- ``vigie-replay simulate OUT.parquet --days 183``: the simulator's default stream as a file
  (``--handbook``: the handbook's own data set);
- ``vigie-replay play FILE --rate 200``: the file's transactions written in time order, each fraud
  label a dispute ``--label-delay-days`` later; writes the map, and the rejects and the world's
  ids beside it; ``--resume`` continues an interrupted run (same file, map, seed and delay);
- ``vigie-replay report --map MAP.parquet --out REPORT.md``: scores from ``fraud.scores`` against
  the labels, per day and over the period.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import psycopg

from vigie_contracts.topics import FRAUD_SCORES
from vigie_localstack.settings import StackSettings
from vigie_runtime.settings import KafkaSettings
from vigie_traffic.dataset import ColumnMap, ReplayInputError, load, write_simulated
from vigie_traffic.handbook import handbook_days
from vigie_traffic.replay import (
    VigieIds,
    load_world,
    map_table,
    plan_replay,
    play,
    rejects_path,
    world_path,
    write_map,
)
from vigie_traffic.report import build_report, read_map, render
from vigie_traffic.scores import ScoresTopicMissing, read_scores
from vigie_traffic.simulator import SimConfig, Simulator
from vigie_traffic.writer import ResumeMismatch, RunStats, WorldIds, delete_run

PROG = "vigie-replay"


def _columns(spec: str) -> ColumnMap:
    try:
        return ColumnMap.parse(spec)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from exc


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog=PROG, description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = p.add_subparsers(dest="command", required=True)

    sim = sub.add_parser("simulate", help="write the simulator's stream as a handbook-format file")
    sim.add_argument("out", type=Path, help=".parquet or .csv")
    sim.add_argument("--days", type=int, default=183)
    sim.add_argument("--customers", type=int, default=5_000)
    sim.add_argument("--terminals", type=int, default=10_000)
    sim.add_argument("--seed", type=int, default=0)
    sim.add_argument("--start", type=date.fromisoformat, default=date(2018, 4, 1))
    sim.add_argument(
        "--handbook",
        action="store_true",
        help="the handbook's own draw (its generator call for call, its fixed seeds): the data "
        "set its published results were measured on",
    )

    pl = sub.add_parser("play", help="replay a transactions file through the OLTP database")
    pl.add_argument("file", type=Path, help="CSV or Parquet")
    pl.add_argument(
        "--columns",
        type=_columns,
        default=ColumnMap(),
        help="field=COLUMN,... over the handbook's names (fields: transaction_id, datetime, "
        "customer_id, terminal_id, amount, fraud)",
    )
    pl.add_argument("--rate", type=float, default=100.0, help="transactions per wall second")
    pl.add_argument("--unlimited", action="store_true", help="ignore --rate: write at full speed")
    pl.add_argument("--label-delay-days", type=float, default=7.0)
    pl.add_argument(
        "--map", type=Path, default=None, help="the map to write (default: FILE.map.parquet)"
    )
    pl.add_argument("--seed", type=int, default=0, help="names, cards and channels of the world")
    pl.add_argument("--batch-size", type=int, default=50)
    pl.add_argument("--max-transactions", type=int, default=None)
    pl.add_argument("--ref-prefix", default=None, help="customers.external_ref prefix")
    pl.add_argument("--cleanup", action="store_true", help="delete the run's rows when it ends")
    pl.add_argument(
        "--resume",
        action="store_true",
        help="continue the interrupted run of --map: its world, what it wrote skipped",
    )

    rp = sub.add_parser("report", help="the platform's scores against the map's labels")
    rp.add_argument("--map", type=Path, required=True)
    rp.add_argument("--out", type=Path, required=True)
    rp.add_argument("--topic", default=FRAUD_SCORES.name)
    rp.add_argument("--top-k", type=int, default=100)
    rp.add_argument("--bootstrap", default=None, help="default: the local stack's Kafka")
    return p.parse_args(argv)


def _fail(message: str) -> int:
    print(f"{PROG}: {message}", file=sys.stderr, flush=True)
    return 2


def simulate(args: argparse.Namespace) -> int:
    try:
        config = SimConfig(
            n_customers=args.customers,
            n_terminals=args.terminals,
            nb_days=args.days,
            start=datetime.combine(args.start, datetime.min.time(), tzinfo=UTC),
            seed=args.seed,
        )
        t0 = time.monotonic()
        days = handbook_days(config) if args.handbook else Simulator(config).days()
        n, frauds = write_simulated(days, config.start, args.out)
    except ValueError as exc:
        return _fail(str(exc))
    draw = "the handbook's draw" if args.handbook else f"seed {args.seed}"
    print(
        f"{args.out}: {n} transactions ({frauds} frauds) over {args.days} days, {draw} "
        f"({time.monotonic() - t0:.1f} s)",
        flush=True,
    )
    return 0


def _progress(stats: RunStats) -> None:
    print(stats.summary(), flush=True)


@contextlib.contextmanager
def _stopped_like_ctrl_c() -> Iterator[None]:
    """SIGTERM (a supervisor, ``kill``) and SIGINT stop the run like Ctrl-C: the batch in flight
    rolls back and the map is written. (A shell starts a background command with SIGINT
    ignored: it is restored here.) Once stopping, further signals are ignored to the end of the
    process, so an impatient second one cannot leave the map behind what the database holds.
    Without a signal the previous handlers are put back after."""
    signals = (signal.SIGTERM, signal.SIGINT)
    stopping = False

    def interrupt(signum: int, frame: object) -> None:
        nonlocal stopping
        if stopping:
            print(f"{signal.Signals(signum).name} ignored: writing the map", flush=True)
            return
        stopping = True
        raise KeyboardInterrupt(signal.Signals(signum).name)

    before = {sig: signal.signal(sig, interrupt) for sig in signals}
    try:
        yield
    finally:
        for sig, handler in before.items():
            signal.signal(sig, signal.SIG_IGN if stopping else handler)


def play_file(args: argparse.Namespace) -> int:
    if args.rate <= 0 and not args.unlimited:
        return _fail("--rate must be positive")
    if args.batch_size < 1:
        return _fail("--batch-size must be at least 1")
    map_path: Path = args.map or args.file.with_suffix(".map.parquet")
    world_file = world_path(map_path)
    prefix = args.ref_prefix or f"replay-{secrets.token_hex(3)}"
    if args.resume:
        try:
            prefix, _ = load_world(world_file)
        except ValueError as exc:
            return _fail(f"--resume: {exc}")
    elif world_file.exists():
        return _fail(f"{world_file}: a run wrote this map's world: --resume it, or choose a --map")
    try:
        loaded = load(args.file, args.columns)
    except ReplayInputError as exc:
        return _fail(str(exc))
    rejected = rejects_path(map_path)
    rejected.parent.mkdir(parents=True, exist_ok=True)
    loaded.rejects.to_csv(rejected, index=False)
    for problem in loaded.problems:
        print(f"{PROG}: {args.file}: {problem}", file=sys.stderr, flush=True)
    tx = loaded.transactions
    print(
        f"{args.file}: {len(tx)} transactions to replay, {loaded.n_rejected} rejected "
        f"(-> {rejected})",
        flush=True,
    )
    delay = timedelta(days=args.label_delay_days)
    plan = plan_replay(tx, prefix, seed=args.seed, label_delay=delay)
    print(
        f"world: {len(plan.world.customers)} customers, {len(plan.world.terminals)} terminals, "
        f"{len(plan.world.merchants)} merchants, ref prefix {prefix}; "
        f"{int(tx.fraud.sum())} fraud labels, {plan.lost_labels} of them on amount 0 (no dispute)",
        flush=True,
    )
    ids = VigieIds(len(tx))
    settings = StackSettings()
    world_ids: WorldIds | None = None
    mismatch: ResumeMismatch | None = None
    with (
        _stopped_like_ctrl_c(),
        psycopg.connect(settings.postgres_dsn(), autocommit=True) as conn,
    ):
        try:
            world_ids, writer = play(
                conn,
                plan,
                ids,
                rate=None if args.unlimited else args.rate,
                world_file=world_file,
                resume=args.resume,
                batch_size=args.batch_size,
                max_transactions=args.max_transactions,
                progress=_progress,
            )
            print(f"done: {writer.stats.summary()}", flush=True)
        except KeyboardInterrupt:
            # Batches are whole database transactions: the map says exactly what was written.
            print("interrupted", flush=True)
        except ResumeMismatch as exc:
            mismatch = exc  # nothing written: the earlier run's map stays as it is
        finally:
            if mismatch is None:
                write_map(map_path, map_table(tx, ids.ids, delay))
                print(f"map: {map_path} ({ids.written} of {len(tx)} rows replayed)", flush=True)
        if mismatch is not None:
            return _fail(f"--resume: {mismatch}")
        if args.cleanup and world_ids is not None:
            delete_run(conn, world_ids)
            world_file.unlink(missing_ok=True)
            print("rows of the run deleted", flush=True)
    return 0


def report(args: argparse.Namespace) -> int:
    if args.top_k < 1:
        return _fail("--top-k must be at least 1")
    try:
        labels = read_map(args.map)
    except (OSError, ValueError) as exc:
        return _fail(f"{args.map}: cannot read the map: {exc}")
    stack = StackSettings()
    kafka = KafkaSettings(bootstrap_servers=args.bootstrap or f"{stack.host}:{stack.kafka_port}")
    wanted = {t for t in labels.transaction_id if t is not None}
    try:
        found = asyncio.run(read_scores(kafka, args.topic, wanted=wanted))
    except ScoresTopicMissing as exc:
        return _fail(str(exc))
    result = build_report(labels, found.scores, top_k=args.top_k)
    source = (
        f"Map `{args.map}`; scores from topic `{args.topic}`: {found.messages} messages, "
        f"{len(found.scores)} transactions of the map scored, {found.not_in_map} scores of other "
        f"transactions, {found.other_events} other events, {found.undecodable} undecodable."
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(render(result, source=source), encoding="utf-8")
    period = result.period
    summary = (
        "no scored transaction"
        if period is None
        else f"AUC ROC {period.auc_roc:.3f}, AP {period.average_precision:.3f}, "
        f"CP@{args.top_k} {period.card_precision:.3f}"
    )
    print(
        f"{args.out}: {result.n_scored} scored, {result.n_unscored} without score; {summary}",
        flush=True,
    )
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    if args.command == "simulate":
        return simulate(args)
    if args.command == "play":
        return play_file(args)
    return report(args)


if __name__ == "__main__":
    raise SystemExit(main())
