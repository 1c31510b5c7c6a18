"""``vigie-replay play`` against the real OLTP PostgreSQL: rows, disputes, map and rejects."""

from __future__ import annotations

import csv
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import psycopg
import pyarrow.parquet as pq  # type: ignore[import-untyped]  # pyarrow ships no type information
import pytest

from vigie_localstack.settings import StackSettings
from vigie_traffic.replay_cli import main
from vigie_traffic.writer import WorldIds, delete_run

pytestmark = pytest.mark.integration

FILE = (
    "TX_ID,WHEN,CARD,POS,AMT,LABEL\n"
    "f3,2018-04-02 09:30:00,c2,p1,80.10,1\n"
    "f1,2018-04-01 08:00:00.5,c1,p1,12.34,0\n"
    "f2,2018-04-01 20:15:00,c1,p2,250.00,1\n"
    "bad,2018-04-01 21:00:00,c3,p2,-1,0\n"
    "f4,2018-04-03 07:00:00,c3,p2,5,0\n"
)
COLUMNS = (
    "transaction_id=TX_ID,datetime=WHEN,customer_id=CARD,terminal_id=POS,amount=AMT,fraud=LABEL"
)


@pytest.fixture
def conn(stack: StackSettings) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(stack.postgres_dsn(), autocommit=True) as c:
        yield c


def _run_ids(conn: psycopg.Connection[Any], prefix: str) -> WorldIds:
    """The run's rows, found from its customers' external_ref, for the cleanup."""

    def ids(sql: str, *params: Any) -> list[int]:
        return [int(r[0]) for r in conn.execute(sql, params).fetchall()]

    customers = ids("SELECT id FROM customers WHERE external_ref LIKE %s", f"{prefix}-c%")
    terminals = ids(
        "SELECT DISTINCT terminal_id FROM transactions WHERE customer_id = ANY(%s)", customers
    )
    return WorldIds(
        customers=customers,
        merchants=ids("SELECT DISTINCT merchant_id FROM terminals WHERE id = ANY(%s)", terminals),
        terminals=terminals,
        cards=ids("SELECT id FROM cards WHERE customer_id = ANY(%s)", customers),
    )


def test_a_small_file_replays_into_transactions_and_disputes(
    conn: psycopg.Connection[Any], unique: str, tmp_path: Path
) -> None:
    source = tmp_path / "tx.csv"
    source.write_text(FILE, encoding="utf-8")
    map_path = tmp_path / "out" / "run.map.parquet"
    prefix = f"rp-{unique}"
    try:
        code = main(["play", str(source), "--columns", COLUMNS, "--unlimited",
                     "--label-delay-days", "7", "--map", str(map_path), "--ref-prefix", prefix,
                     "--batch-size", "2"])  # fmt: skip
        assert code == 0

        rows = pq.read_table(map_path).to_pylist()
        assert [r["file_transaction_id"] for r in rows] == ["f1", "f2", "f3", "f4"]
        assert all(r["transaction_id"] is not None for r in rows)
        assert [r["customer_id"] for r in rows] == ["c1", "c1", "c2", "c3"]
        assert [r["terminal_id"] for r in rows] == ["p1", "p2", "p1", "p2"]
        assert [r["amount"] for r in rows] == [12.34, 250.0, 80.1, 5.0]
        assert [r["fraud"] for r in rows] == [0, 1, 1, 0]
        when = {r["file_transaction_id"]: r["datetime"] for r in rows}
        assert when["f1"] == datetime(2018, 4, 1, 8, 0, 0, 500_000, tzinfo=UTC)

        with (map_path.parent / "run.map.rejects.csv").open(encoding="utf-8") as fh:
            rejects = list(csv.DictReader(fh))
        assert [(r["row"], r["reason"], r["TX_ID"]) for r in rejects] == [
            ("4", "AMT: negative amount", "bad")
        ]

        by_file = {r["file_transaction_id"]: int(r["transaction_id"]) for r in rows}
        db = {
            r[0]: r[1:]
            for r in conn.execute(
                "SELECT t.id, t.amount, t.occurred_at, t.status, c.external_ref"
                " FROM transactions t JOIN customers c ON c.id = t.customer_id"
                " WHERE t.id = ANY(%s)",
                (list(by_file.values()),),
            ).fetchall()
        }
        assert len(db) == 4
        for r in rows:
            amount, occurred_at, status, ref = db[by_file[r["file_transaction_id"]]]
            assert amount == Decimal(str(r["amount"]))
            assert occurred_at == r["datetime"]
            assert status == "authorized"
            assert ref.startswith(f"{prefix}-c")
        # one customer row per file customer id, one terminal per file terminal id
        refs = {db[by_file[f]][3] for f in ("f1", "f2")}
        assert len(refs) == 1
        disputes = conn.execute(
            "SELECT transaction_id, amount, opened_at, category FROM disputes"
            " WHERE transaction_id = ANY(%s) ORDER BY opened_at",
            (list(by_file.values()),),
        ).fetchall()
        assert disputes == [
            (by_file["f2"], Decimal("250.0000"), when["f2"] + timedelta(days=7), "fraud"),
            (by_file["f3"], Decimal("80.1000"), when["f3"] + timedelta(days=7), "fraud"),
        ]
        labelled = {r["file_transaction_id"]: r["label_at"] for r in rows}
        assert labelled["f2"] == when["f2"] + timedelta(days=7) and labelled["f1"] is None
    finally:
        delete_run(conn, _run_ids(conn, prefix))
    assert not conn.execute(
        "SELECT 1 FROM customers WHERE external_ref LIKE %s", (f"{prefix}-c%",)
    ).fetchall()


def test_an_interrupted_replay_resumes_where_it_stopped(
    conn: psycopg.Connection[Any], unique: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source = tmp_path / "tx.csv"
    source.write_text(FILE, encoding="utf-8")
    map_path = tmp_path / "run.map.parquet"
    prefix = f"rs-{unique}"
    common = ["play", str(source), "--columns", COLUMNS, "--unlimited", "--label-delay-days", "7",
              "--map", str(map_path), "--batch-size", "1"]  # fmt: skip
    try:
        # the first run stops after two transactions (as a Ctrl-C or a killed process would)
        assert main([*common, "--ref-prefix", prefix, "--max-transactions", "2"]) == 0
        first = {
            r["file_transaction_id"]: r["transaction_id"]
            for r in pq.read_table(map_path).to_pylist()
        }
        assert first["f1"] is not None and first["f2"] is not None and first["f3"] is None
        # a second run without --resume would write the world again: refused
        assert main([*common, "--ref-prefix", prefix]) == 2
        assert "--resume it" in capsys.readouterr().err

        assert main([*common, "--resume"]) == 0

        rows = pq.read_table(map_path).to_pylist()
        by_file = {r["file_transaction_id"]: r["transaction_id"] for r in rows}
        assert by_file["f1"] == first["f1"] and by_file["f2"] == first["f2"]
        assert all(by_file.values())
        ids = [int(i) for i in by_file.values()]
        world = _run_ids(conn, prefix)
        in_db = conn.execute(
            "SELECT id FROM transactions WHERE customer_id = ANY(%s) ORDER BY id",
            (world.customers,),
        ).fetchall()
        assert sorted(ids) == [r[0] for r in in_db]  # each file row written once
        disputed = conn.execute(
            "SELECT transaction_id FROM disputes WHERE transaction_id = ANY(%s) ORDER BY 1", (ids,)
        ).fetchall()
        assert [r[0] for r in disputed] == sorted([int(by_file["f2"]), int(by_file["f3"])])

        # resuming a finished run writes nothing more
        assert main([*common, "--resume"]) == 0
        assert "0 + 4 written before" in capsys.readouterr().out
        assert conn.execute(
            "SELECT count(*) FROM disputes WHERE transaction_id = ANY(%s)", (ids,)
        ).fetchone() == (2,)

        # another file on this world is refused, and the map is left as it was
        other = tmp_path / "other.csv"
        other.write_text(FILE.replace("12.34", "12.35"), encoding="utf-8")
        before = map_path.read_bytes()
        assert main(["play", str(other), *common[2:], "--resume"]) == 2
        assert "not the same" in capsys.readouterr().err
        assert map_path.read_bytes() == before
    finally:
        delete_run(conn, _run_ids(conn, prefix))


def test_sigterm_stops_a_replay_like_ctrl_c(
    conn: psycopg.Connection[Any], unique: str, tmp_path: Path
) -> None:
    rows = [
        f"f{i},2018-04-01 {i // 60:02d}:{i % 60:02d}:00,c{i % 10},p{i % 5},10.00,0"
        for i in range(300)
    ]
    source = tmp_path / "tx.csv"
    source.write_text("\n".join(["TX_ID,WHEN,CARD,POS,AMT,LABEL", *rows]) + "\n", encoding="utf-8")
    map_path = tmp_path / "run.map.parquet"
    prefix = f"rt-{unique}"
    proc = subprocess.Popen(  # noqa: S603 - our own entry point
        [sys.executable, "-m", "vigie_traffic.replay_cli", "play", str(source), "--columns",
         COLUMNS, "--rate", "40", "--batch-size", "5", "--map", str(map_path), "--ref-prefix",
         prefix],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while _written(conn, prefix) < 20:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        assert proc.stdout is not None
        seen: list[str] = []
        while not seen or seen[-1] != "interrupted\n":
            seen.append(proc.stdout.readline())
            assert seen[-1] and time.monotonic() < deadline
        proc.send_signal(signal.SIGTERM)  # an impatient second one, while the map is written
        # The rest through the same reader: readline() may already hold the "map:" line in its
        # buffer, which communicate() (reading the pipe itself) would never see.
        out = proc.stdout.read()
        proc.wait(timeout=30)

        assert proc.returncode == 0 and "map:" in out
        replayed = [r for r in pq.read_table(map_path).to_pylist() if r["transaction_id"]]
        assert 20 <= len(replayed) < 300
        assert len(replayed) == _written(conn, prefix)  # the map says what the database holds
    finally:
        if proc.poll() is None:
            proc.kill()
        if proc.stdout is not None:
            proc.stdout.close()
        delete_run(conn, _run_ids(conn, prefix))


def _written(conn: psycopg.Connection[Any], prefix: str) -> int:
    row = conn.execute(
        "SELECT count(*) FROM transactions t JOIN customers c ON c.id = t.customer_id"
        " WHERE c.external_ref LIKE %s",
        (f"{prefix}-c%",),
    ).fetchone()
    return int(row[0]) if row else 0
