"""Replay input without a database: column mapping, checks and rejects, days, the plan, the map."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # no pandas-stubs in the workspace yet
import pyarrow.parquet as pq  # type: ignore[import-untyped]  # pyarrow ships no type information
import pytest

from vigie_traffic.dataset import ColumnMap, ReplayInputError, load, replay_days
from vigie_traffic.handbook import handbook_days
from vigie_traffic.plan import DisputeWrite, TxWrite, actions
from vigie_traffic.replay import map_table, plan_replay, rejects_path
from vigie_traffic.replay_cli import main, parse_args
from vigie_traffic.simulator import SimConfig, Simulator

HEADER = "TRANSACTION_ID,TX_DATETIME,CUSTOMER_ID,TERMINAL_ID,TX_AMOUNT,TX_FRAUD,EXTRA\n"


def _csv(tmp_path: Path, body: str, header: str = HEADER) -> Path:
    path = tmp_path / "tx.csv"
    path.write_text(header + body, encoding="utf-8")
    return path


def test_column_map_defaults_overrides_and_errors() -> None:
    assert ColumnMap.parse("") == ColumnMap()
    m = ColumnMap.parse("amount=amt, fraud=is_fraud")
    assert (m.amount, m.fraud, m.datetime) == ("amt", "is_fraud", "TX_DATETIME")
    with pytest.raises(ValueError, match="unknown field 'amout'"):
        ColumnMap.parse("amout=x")
    with pytest.raises(ValueError, match="not field=COLUMN"):
        ColumnMap.parse("amount")
    with pytest.raises(SystemExit):
        parse_args(["play", "f.csv", "--columns", "nope=x"])


def test_a_good_csv_is_sorted_by_time_with_exact_values(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "t3,2018-04-02 00:00:01,c2,T9,12.5,0,x\n"
        "t1,2018-04-01 23:59:59.250,007,T1,57.16,1,x\n"
        "t2,2018-04-02T01:00:00+02:00,c2,T1,0,0,x\n",  # 23:00 UTC on the 1st
    )
    tx = load(path).transactions
    assert tx.transaction_id.tolist() == ["t2", "t1", "t3"]
    assert tx.row.tolist() == [3, 2, 1]
    assert list(tx.datetimes()) == [
        datetime(2018, 4, 1, 23, 0, tzinfo=UTC),
        datetime(2018, 4, 1, 23, 59, 59, 250_000, tzinfo=UTC),
        datetime(2018, 4, 2, 0, 0, 1, tzinfo=UTC),
    ]
    assert tx.customer_id.tolist() == ["c2", "007", "c2"]  # text as written: "007" stays
    assert tx.amount_cents.tolist() == [0, 5716, 1250]
    assert tx.fraud.tolist() == [False, True, False]


def test_a_missing_column_names_it(tmp_path: Path) -> None:
    path = _csv(tmp_path, "t1,2018-04-01,c,t,1,0\n", header="TRANSACTION_ID,TX_DATETIME,"
                "CUSTOMER_ID,TERMINAL_ID,AMOUNT,TX_FRAUD\n")  # fmt: skip
    with pytest.raises(ReplayInputError, match=r"missing column\(s\) TX_AMOUNT \(amount\)"):
        load(path)
    # ... and --columns maps it
    assert len(load(path, ColumnMap.parse("amount=AMOUNT")).transactions) == 1


def test_bad_rows_are_rejected_with_their_reasons_and_the_rest_loads(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "t1,2018-04-01 10:00:00,c1,T1,10,0,x\n"  # row 1: good
        "t2,yesterday,c1,T1,10,0,x\n"  # row 2: datetime
        "t3,2018-04-01 11:00:00,c1,T1,-4,0,x\n"  # row 3: negative
        "t4,2018-04-01 12:00:00,c1,T1,ten,2,x\n"  # row 4: amount and label
        "t5,2018-04-01 13:00:00,,T1,10,0,x\n"  # row 5: customer
        "t1,2018-04-01 14:00:00,c1,T1,10,1,x\n"  # row 6: duplicate id
        "t7,2018-04-01 15:00:00,c2,T2,3.5,1.0,x\n",  # row 7: good (1.0 is a 1)
    )
    loaded = load(path)
    assert loaded.transactions.transaction_id.tolist() == ["t1", "t7"]
    assert loaded.n_rejected == 5
    rejects = loaded.rejects
    assert rejects["row"].tolist() == [2, 3, 4, 5, 6]
    reasons = dict(zip(rejects["row"], rejects["reason"], strict=True))
    assert reasons[2] == "TX_DATETIME: not a datetime"
    assert reasons[3] == "TX_AMOUNT: negative amount"
    assert reasons[4] == "TX_AMOUNT: not a number; TX_FRAUD: fraud label not 0 or 1"
    assert reasons[5] == "CUSTOMER_ID: missing customer id"
    assert reasons[6] == "TRANSACTION_ID: duplicate transaction id"
    assert rejects["TX_DATETIME"].tolist()[0] == "yesterday"  # the values as read
    messages = [str(p) for p in loaded.problems]
    assert "column TX_AMOUNT: negative amount in 1 row(s) (3)" in messages
    assert "column TX_FRAUD: fraud label not 0 or 1 in 1 row(s) (4)" in messages


def test_a_file_with_no_valid_row_is_an_error(tmp_path: Path) -> None:
    path = _csv(tmp_path, "t1,never,c1,T1,10,0,x\nt2,never,c1,T1,10,0,x\n")
    with pytest.raises(ReplayInputError, match=r"no valid row.*TX_DATETIME: not a datetime"):
        load(path)


def test_parquet_with_typed_columns_and_mapped_names(tmp_path: Path) -> None:
    path = tmp_path / "tx.parquet"
    pd.DataFrame(
        {
            "id": [10, 11, 12],
            "ts": pd.to_datetime(["2018-04-01 10:00", "2018-04-01 09:00", "2018-04-01 11:00"]),
            "card": [1, 2, 1],
            "pos": [5, 5, 6],
            "amt": [1.5, float("nan"), 2.25],
            "label": [True, False, False],
        }
    ).to_parquet(path)
    cols = ColumnMap.parse(
        "transaction_id=id,datetime=ts,customer_id=card,terminal_id=pos,amount=amt,fraud=label"
    )
    loaded = load(path, cols)
    tx = loaded.transactions
    assert tx.transaction_id.tolist() == ["10", "12"]
    assert [d.hour for d in tx.datetimes()] == [10, 11]  # naive: UTC
    assert tx.fraud.tolist() == [True, False]
    assert loaded.rejects["reason"].tolist() == ["amt: not a number"]


def test_days_split_at_utc_midnight_and_renumber_ids(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "a,2018-04-01 10:00:00,c9,T2,1,0,x\n"
        "b,2018-04-01 23:00:00.5,c1,T1,2,1,x\n"
        "c,2018-04-03 01:00:00,c9,T1,3,0,x\n",
    )
    days = replay_days(load(path).transactions)
    assert days.start == datetime(2018, 4, 1, tzinfo=UTC)
    assert [d.day for d in days.days] == [0, 2]
    assert days.customers.tolist() == ["c1", "c9"] and days.terminals.tolist() == ["T1", "T2"]
    first, third = days.days
    assert first.tx_id.tolist() == [0, 1] and third.tx_id.tolist() == [2]
    assert first.customer.tolist() == [1, 0] and first.terminal.tolist() == [1, 0]
    assert first.time_s.tolist() == [36_000.0, 82_800.5]
    assert third.time_s.tolist() == [2 * 86_400 + 3_600.0]


def test_the_replay_plan_writes_every_row_and_every_label(tmp_path: Path) -> None:
    path = _csv(
        tmp_path,
        "a,2018-04-01 10:00:00.25,c1,T1,10,1,x\n"
        "b,2018-04-02 10:00:00,c2,T1,20,0,x\n"
        "z,2018-04-02 11:00:00,c2,T2,0,1,x\n"  # fraud of amount 0: no dispute possible
        "c,2018-04-03 10:00:00,c1,T2,30,1,x\n",  # its label is due after the file's end
    )
    tx = load(path).transactions
    plan = plan_replay(tx, "p", label_delay=timedelta(days=2))
    assert plan.lost_labels == 1
    assert len(plan.world.customers) == 2 and len(plan.world.terminals) == 2
    assert plan.world.customers[0].location_x is None  # a file has no grid positions
    steps = list(actions(plan.world, plan.days, plan.timeline, plan.config))
    txs = [s for s in steps if isinstance(s, TxWrite)]
    disputes = [s for s in steps if isinstance(s, DisputeWrite)]
    assert [t.tx for t in txs] == [0, 1, 2, 3]
    assert not any(t.declined for t in txs)
    assert txs[0].at == datetime(2018, 4, 1, 10, 0, 0, 250_000, tzinfo=UTC)
    assert [(d.tx, d.at, d.amount_cents) for d in disputes] == [
        (0, datetime(2018, 4, 3, 10, 0, 0, 250_000, tzinfo=UTC), 1000),
        (3, datetime(2018, 4, 5, 10, tzinfo=UTC), 3000),
    ]
    times = [s.at for s in steps]
    assert times == sorted(times)

    ids = np.array(["101", "102", None, None], dtype=object)
    table = map_table(tx, ids, timedelta(days=2))
    rows = table.to_pylist()
    assert [r["file_transaction_id"] for r in rows] == ["a", "b", "z", "c"]
    assert [r["transaction_id"] for r in rows] == ["101", "102", None, None]
    assert [r["amount"] for r in rows] == [10.0, 20.0, 0.0, 30.0]
    assert [r["fraud"] for r in rows] == [1, 0, 1, 1]
    assert rows[0]["label_at"] == datetime(2018, 4, 3, 10, 0, 0, 250_000, tzinfo=UTC)
    assert rows[1]["label_at"] is None and rows[2]["label_at"] is None
    assert rejects_path(tmp_path / "run.map.parquet") == tmp_path / "run.map.rejects.csv"


@pytest.mark.parametrize("suffix", [".parquet", ".csv"])
def test_simulate_writes_the_simulators_stream_in_handbook_format(
    tmp_path: Path, suffix: str
) -> None:
    out = tmp_path / f"sim{suffix}"
    assert main(["simulate", str(out), "--days", "5", "--customers", "40",
                 "--terminals", "80", "--seed", "3"]) == 0  # fmt: skip
    config = SimConfig(n_customers=40, n_terminals=80, nb_days=5, seed=3)
    days = list(Simulator(config).days())
    if suffix == ".parquet":
        schema = pq.read_schema(out).names
        assert schema[:5] == ["TRANSACTION_ID", "TX_DATETIME", "CUSTOMER_ID", "TERMINAL_ID",
                              "TX_AMOUNT"]  # fmt: skip
    tx = load(out).transactions
    assert tx.transaction_id.tolist() == [str(i) for d in days for i in d.tx_id]
    assert tx.amount_cents.tolist() == [int(a) for d in days for a in d.amount_cents]
    assert tx.fraud.tolist() == [bool(f) for d in days for f in d.fraud]
    start = config.start
    assert list(tx.datetimes()) == [
        start + timedelta(seconds=int(t)) for d in days for t in d.time_s
    ]


def test_simulate_handbook_writes_the_handbooks_draw(tmp_path: Path) -> None:
    out = tmp_path / "hb.parquet"
    assert main(["simulate", str(out), "--handbook", "--days", "4", "--customers", "30",
                 "--terminals", "60"]) == 0  # fmt: skip
    days = list(handbook_days(SimConfig(n_customers=30, n_terminals=60, nb_days=4)))
    tx = load(out).transactions
    assert tx.amount_cents.tolist() == [int(a) for d in days for a in d.amount_cents]
    seeded = list(Simulator(SimConfig(n_customers=30, n_terminals=60, nb_days=4)).days())
    assert tx.amount_cents.tolist() != [int(a) for d in seeded for a in d.amount_cents]


def test_cli_fails_clearly_before_connecting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _csv(tmp_path, "t1,2018-04-01,c,t,1,0\n", header="A,B,C,D,E,F\n")
    assert main(["play", str(path)]) == 2
    assert "missing column(s) TRANSACTION_ID (transaction_id)" in capsys.readouterr().err
    assert main(["simulate", str(tmp_path / "x.json"), "--days", "1"]) == 2
    assert "unknown format" in capsys.readouterr().err
    args = parse_args(["play", "f.csv"])
    assert (args.rate, args.label_delay_days, args.unlimited) == (100.0, 7.0, False)
