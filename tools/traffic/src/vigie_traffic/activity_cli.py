"""``vigie-activity``: app sessions of the simulated customers to the clickstream collector, and
service logs to ``logs.raw``, beside ``vigie-traffic``'s payments.

Example: ``vigie-activity --sessions-per-s 2 --logs-per-s 20``, with the collector's API key in
``VIGIE_ACTIVITY_API_KEY``.
The customers are the OLTP database's newest; session times follow its newest transaction time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import sys
import time
from collections.abc import Sequence
from datetime import UTC, datetime

import httpx
import numpy as np
import psycopg
from aiokafka import AIOKafkaProducer

from vigie_contracts.topics import LOGS_RAW
from vigie_localstack.settings import StackSettings

from .activity import log_line, session

CUSTOMERS_SQL = "SELECT id FROM customers ORDER BY id DESC LIMIT 5000"
CLOCK_SQL = "SELECT max(occurred_at) FROM transactions"


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    settings = StackSettings()
    p = argparse.ArgumentParser(prog="vigie-activity", description=__doc__)
    p.add_argument("--sessions-per-s", type=float, default=2.0)
    p.add_argument("--logs-per-s", type=float, default=20.0)
    p.add_argument(
        "--collector",
        default=f"http://{settings.host}:{settings.apps_port_base + 2}",
        help="the clickstream collector's base URL",
    )
    p.add_argument("--bootstrap", default=f"{settings.host}:{settings.kafka_port}")
    p.add_argument("--logs-topic", default=LOGS_RAW.name)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--seconds", type=float, default=None, help="stop after (default: never)")
    args = p.parse_args(argv)
    if args.sessions_per_s < 0 or args.logs_per_s < 0:
        p.error("rates cannot be negative")
    args.api_key = os.environ.get("VIGIE_ACTIVITY_API_KEY", "")
    if args.sessions_per_s > 0 and not args.api_key:
        p.error("sessions need the collector's API key in VIGIE_ACTIVITY_API_KEY")
    return args


def _world(dsn: str) -> tuple[list[str], datetime]:
    with psycopg.connect(dsn, connect_timeout=5) as conn:
        customers = [str(row[0]) for row in conn.execute(CUSTOMERS_SQL).fetchall()]
        row = conn.execute(CLOCK_SQL).fetchone()
    clock = row[0] if row and row[0] is not None else datetime.now(UTC)
    return customers, clock


async def run(args: argparse.Namespace) -> dict[str, int]:
    rng = np.random.default_rng(args.seed)
    dsn = StackSettings().postgres_dsn()
    counts = {"sessions": 0, "click_events": 0, "rejected": 0, "log_lines": 0, "errors": 0}
    producer = AIOKafkaProducer(bootstrap_servers=args.bootstrap, linger_ms=20)
    await producer.start()
    started = time.monotonic()
    headers = {"x-api-key": args.api_key}
    try:
        async with httpx.AsyncClient(base_url=args.collector, timeout=10) as client:
            customers, clock = await asyncio.to_thread(_world, dsn)
            tick = 0
            while args.seconds is None or time.monotonic() - started < args.seconds:
                if tick % 30 == 29:
                    customers, clock = await asyncio.to_thread(_world, dsn)
                tick += 1
                n_sessions = int(rng.poisson(args.sessions_per_s))
                if customers and n_sessions:
                    batch = [
                        event.json()
                        for _ in range(n_sessions)
                        for event in session(
                            customers[int(rng.integers(len(customers)))], clock, rng
                        )
                    ]
                    try:
                        answer = await client.post("/v1/batch", json=batch, headers=headers)
                        if answer.status_code == 202:
                            counts["sessions"] += n_sessions
                            counts["click_events"] += int(answer.json()["accepted"])
                            counts["rejected"] += len(answer.json()["rejected"])
                        else:
                            counts["errors"] += 1
                    except httpx.HTTPError:
                        counts["errors"] += 1  # the collector restarts: the next tick retries
                now = datetime.now(UTC)
                for _ in range(int(rng.poisson(args.logs_per_s))):
                    service, line = log_line(now, customers, rng)
                    await producer.send(args.logs_topic, line, key=service.encode())
                    counts["log_lines"] += 1
                await asyncio.sleep(1.0)
    finally:
        await producer.stop()
    return counts


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    counts: dict[str, int] = {}
    with contextlib.suppress(KeyboardInterrupt):
        counts = asyncio.run(run(args))
    print("activity:", " ".join(f"{k}={v}" for k, v in counts.items()), file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
