"""``vigie-traffic``: the handbook's simulated payments, written into the OLTP database.

Example: ``vigie-traffic --rate 200 --days 30 --customers 500 --terminals 1000 --seed 7``.
"""

from __future__ import annotations

import argparse
import secrets
import sys
import time
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta

import psycopg

from vigie_localstack.settings import StackSettings
from vigie_traffic.plan import ActionConfig, actions, simulator_timeline, simulator_world
from vigie_traffic.simulator import SimConfig, Simulator
from vigie_traffic.writer import ActionWriter, RunStats, delete_run, write_world


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="vigie-traffic", description=__doc__)
    p.add_argument("--rate", type=float, default=100.0, help="transactions per wall second")
    p.add_argument("--unlimited", action="store_true", help="ignore --rate: write at full speed")
    p.add_argument("--days", type=int, default=183)
    p.add_argument("--customers", type=int, default=5_000)
    p.add_argument("--terminals", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", type=date.fromisoformat, default=date(2018, 4, 1))
    p.add_argument("--max-transactions", type=int, default=None)
    p.add_argument("--label-delay-days", type=float, default=7.0)
    p.add_argument("--batch-size", type=int, default=50)
    p.add_argument("--cleanup", action="store_true", help="delete the run's rows when it ends")
    p.add_argument(
        "--ref-prefix",
        default=None,
        help="customers.external_ref prefix (default: sim-s<seed>-<random>, so runs never collide)",
    )
    return p.parse_args(argv)


def _report(stats: RunStats) -> None:
    print(stats.summary(), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        sim_config = SimConfig(
            n_customers=args.customers,
            n_terminals=args.terminals,
            nb_days=args.days,
            start=datetime.combine(args.start, datetime.min.time(), tzinfo=UTC),
            seed=args.seed,
        )
    except ValueError as exc:
        print(f"vigie-traffic: {exc}", file=sys.stderr)
        return 2
    settings = StackSettings()
    prefix = args.ref_prefix or f"sim-s{args.seed}-{secrets.token_hex(3)}"
    t0 = time.monotonic()
    sim = Simulator(sim_config)
    world = simulator_world(sim, prefix)
    print(
        f"world: {args.customers} customers, {args.terminals} terminals, "
        f"{len(world.merchants)} merchants, seed {args.seed}, ref prefix {prefix} "
        f"({time.monotonic() - t0:.1f} s)",
        flush=True,
    )
    # autocommit: each batch is its own explicit transaction (conn.transaction() in the writer).
    with psycopg.connect(settings.postgres_dsn(), autocommit=True) as conn:
        t0 = time.monotonic()
        ids = write_world(conn, world)
        print(f"world written in {time.monotonic() - t0:.1f} s", flush=True)
        writer = ActionWriter(
            conn,
            world,
            ids,
            rate=None if args.unlimited else args.rate,
            batch_size=args.batch_size,
        )
        plan = actions(
            world,
            sim.days(),
            simulator_timeline(sim),
            ActionConfig(label_delay=timedelta(days=args.label_delay_days)),
        )
        try:
            stats = writer.run(plan, max_transactions=args.max_transactions, progress=_report)
        except KeyboardInterrupt:
            # Batches are whole database transactions: an interrupt leaves no half-written batch.
            stats = writer.stats
            print("interrupted", flush=True)
        print("done: ", end="")
        _report(stats)
        if args.cleanup:
            delete_run(conn, ids)
            print("rows of the run deleted", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
