"""A transactions file to replay: read (CSV or Parquet), checked row by row, and cut into the days
:func:`vigie_traffic.plan.actions` plans; and the simulator's stream written in the same format.

The format is the fraud-detection handbook's (``TRANSACTION_ID, TX_DATETIME, CUSTOMER_ID,
TERMINAL_ID, TX_AMOUNT, TX_FRAUD``, further columns ignored); :class:`ColumnMap` renames them.
Datetimes without a zone are UTC. Ids are kept as text, exactly as written. Amounts are rounded
to the cent. A row that fails a check is rejected with its reasons and the rest replays.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]  # no pandas-stubs in the workspace yet
import pyarrow as pa  # type: ignore[import-untyped]  # pyarrow ships no type information
import pyarrow.csv as pa_csv  # type: ignore[import-untyped]
import pyarrow.parquet as pq  # type: ignore[import-untyped]

from vigie_traffic.simulator import SECONDS_PER_DAY, Day, IntArray

ObjectArray = npt.NDArray[np.object_]
#: rows shown in an error message; the rejects file has them all
SHOWN_ROWS = 5


class ReplayInputError(Exception):
    """The file cannot be replayed at all (unreadable, a column missing, no valid row)."""


@dataclass(frozen=True, slots=True)
class ColumnMap:
    """The file's name for each field; the defaults are the handbook's."""

    transaction_id: str = "TRANSACTION_ID"
    datetime: str = "TX_DATETIME"
    customer_id: str = "CUSTOMER_ID"
    terminal_id: str = "TERMINAL_ID"
    amount: str = "TX_AMOUNT"
    fraud: str = "TX_FRAUD"

    @classmethod
    def parse(cls, spec: str) -> ColumnMap:
        """``field=COLUMN,...`` over the defaults, e.g. ``amount=amt,fraud=is_fraud``."""
        known = [f.name for f in fields(cls)]
        changes: dict[str, str] = {}
        for item in filter(None, (part.strip() for part in spec.split(","))):
            key, sep, column = (s.strip() for s in item.partition("="))
            if not sep or not column:
                raise ValueError(f"--columns: {item!r} is not field=COLUMN")
            if key not in known:
                raise ValueError(f"--columns: unknown field {key!r} (fields: {', '.join(known)})")
            changes[key] = column
        return replace(cls(), **changes)

    def items(self) -> list[tuple[str, str]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self)]


@dataclass(frozen=True, slots=True)
class Problem:
    """One kind of bad value in one column: how many rows, and the first of them."""

    column: str
    reason: str
    count: int
    rows: tuple[int, ...]

    def __str__(self) -> str:
        shown = ", ".join(map(str, self.rows))
        more = ", ..." if self.count > len(self.rows) else ""
        return f"column {self.column}: {self.reason} in {self.count} row(s) ({shown}{more})"


@dataclass(frozen=True, slots=True)
class Transactions:
    """The accepted rows, in time order (ties keep the file's order), as parallel arrays."""

    row: IntArray  # 1-based data row of the file (a CSV's header is line 1: row n is line n + 1)
    transaction_id: ObjectArray  # str
    time_us: IntArray  # UTC epoch microseconds
    customer_id: ObjectArray  # str
    terminal_id: ObjectArray  # str
    amount_cents: IntArray
    fraud: npt.NDArray[np.bool_]

    def __len__(self) -> int:
        return int(self.row.size)

    def datetimes(self) -> Iterator[datetime]:
        epoch = datetime(1970, 1, 1, tzinfo=UTC)
        return (epoch + timedelta(microseconds=int(us)) for us in self.time_us)


@dataclass(frozen=True, slots=True)
class Loaded:
    transactions: Transactions
    #: one row per rejected row: ``row``, ``reason``, then the file's columns as read
    rejects: pd.DataFrame
    problems: tuple[Problem, ...]

    @property
    def n_rejected(self) -> int:
        return len(self.rejects)


def _read(path: Path, columns: ColumnMap) -> pd.DataFrame:
    wanted = [name for _, name in columns.items()]
    suffix = path.suffix.lower()
    try:
        if suffix in (".parquet", ".pq"):
            present = set(pq.read_schema(path).names)
            _check_columns(path, columns, present)
            return pd.read_parquet(path, columns=wanted)
        if suffix in (".csv", ".txt"):
            # text as written: the checks below decide what a value means, not pandas' guesses
            frame = pd.read_csv(path, dtype=str, keep_default_na=False)
            _check_columns(path, columns, set(frame.columns))
            return frame[wanted]
    except (OSError, ValueError, pa.ArrowException) as exc:
        raise ReplayInputError(f"{path}: cannot read it: {exc}") from exc
    raise ReplayInputError(f"{path}: unknown format {suffix!r} (.csv or .parquet)")


def _check_columns(path: Path, columns: ColumnMap, present: set[str]) -> None:
    missing = [f"{name} ({field})" for field, name in columns.items() if name not in present]
    if missing:
        raise ReplayInputError(
            f"{path}: missing column(s) {', '.join(missing)}; the file has "
            f"{', '.join(sorted(present)) or 'no columns'} (map names with --columns)"
        )


def _blank(values: pd.Series) -> npt.NDArray[np.bool_]:
    return np.asarray(values.isna() | (values.astype(str).str.strip() == ""), dtype=np.bool_)


def _datetimes_us(values: pd.Series) -> tuple[IntArray, npt.NDArray[np.bool_]]:
    """UTC epoch microseconds, and which values did not parse."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        parsed = values.dt.tz_convert("UTC")
    elif pd.api.types.is_datetime64_dtype(values.dtype):
        parsed = values.dt.tz_localize("UTC")
    else:
        text = values.astype(str).where(~values.isna(), "")
        parsed = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
    bad = np.asarray(parsed.isna(), dtype=np.bool_)
    filled = parsed.where(~bad, pd.Timestamp(0, tz="UTC"))
    return np.asarray(filled.dt.as_unit("us").astype("int64"), dtype=np.int64), bad


def _numbers(values: pd.Series) -> npt.NDArray[np.float64]:
    if pd.api.types.is_bool_dtype(values.dtype):
        values = values.astype("Int8")
    if not pd.api.types.is_numeric_dtype(values.dtype):
        values = pd.to_numeric(values.astype(str).str.strip(), errors="coerce")
    return np.asarray(values.astype("Float64").fillna(np.nan), dtype=np.float64)


def _text(values: pd.Series) -> ObjectArray:
    return np.asarray([str(v).strip() for v in values], dtype=object)


def load(path: Path, columns: ColumnMap | None = None) -> Loaded:
    """Read and check ``path``; raises :class:`ReplayInputError` when nothing can be replayed."""
    cols = columns or ColumnMap()
    frame = _read(path, cols)
    n = len(frame)
    if n == 0:
        raise ReplayInputError(f"{path}: no rows")
    row = np.arange(1, n + 1, dtype=np.int64)
    tx_blank = _blank(frame[cols.transaction_id])
    time_us, time_bad = _datetimes_us(frame[cols.datetime])
    customer_blank = _blank(frame[cols.customer_id])
    terminal_blank = _blank(frame[cols.terminal_id])
    amount = _numbers(frame[cols.amount])
    label = _numbers(frame[cols.fraud])
    tx_id = _text(frame[cols.transaction_id])
    with np.errstate(invalid="ignore"):
        amount_nan = ~np.isfinite(amount)
        amount_negative = ~amount_nan & (amount < 0)
        label_bad = ~np.isin(label, (0.0, 1.0))
    checks: list[tuple[str, str, npt.NDArray[np.bool_]]] = [
        (cols.transaction_id, "missing transaction id", tx_blank),
        (cols.datetime, "not a datetime", time_bad),
        (cols.customer_id, "missing customer id", customer_blank),
        (cols.terminal_id, "missing terminal id", terminal_blank),
        (cols.amount, "not a number", amount_nan),
        (cols.amount, "negative amount", amount_negative),
        (cols.fraud, "fraud label not 0 or 1", label_bad),
    ]
    # A repeated id would make the map ambiguous: the first occurrence wins.
    duplicate = ~tx_blank & np.asarray(pd.Series(tx_id).duplicated(keep="first"), dtype=np.bool_)
    checks.append((cols.transaction_id, "duplicate transaction id", duplicate))

    reasons = np.full(n, "", dtype=object)
    problems: list[Problem] = []
    for column, reason, mask in checks:
        hit = np.flatnonzero(mask)
        if hit.size == 0:
            continue
        shown = tuple(int(r) for r in row[hit[:SHOWN_ROWS]])
        problems.append(Problem(column, reason, int(hit.size), shown))
        text = f"{column}: {reason}"
        for i in hit:
            reasons[i] = f"{reasons[i]}; {text}" if reasons[i] else text
    bad = reasons != ""
    rejects = frame[bad].astype(str).copy()
    rejects.insert(0, "reason", reasons[bad])
    rejects.insert(0, "row", row[bad])
    good = np.flatnonzero(~bad)
    if good.size == 0:
        raise ReplayInputError(f"{path}: no valid row; " + "; ".join(str(p) for p in problems))
    order = good[np.argsort(time_us[good], kind="stable")]
    transactions = Transactions(
        row=row[order],
        transaction_id=tx_id[order],
        time_us=time_us[order],
        customer_id=_text(frame[cols.customer_id])[order],
        terminal_id=_text(frame[cols.terminal_id])[order],
        amount_cents=np.rint(amount[order] * 100).astype(np.int64),
        fraud=label[order] == 1.0,
    )
    return Loaded(
        transactions=transactions,
        rejects=rejects.reset_index(drop=True),
        problems=tuple(problems),
    )


@dataclass(frozen=True, slots=True)
class ReplayDays:
    """The file as the planner's days: customers and terminals renumbered ``0..n-1`` (their
    file ids are ``customers[i]``, ``terminals[i]``); a ``Day.tx_id`` indexes the transactions."""

    start: datetime  # midnight UTC of the first transaction's day: time_s counts from it
    days: list[Day]
    customers: ObjectArray
    terminals: ObjectArray


def replay_days(tx: Transactions) -> ReplayDays:
    first = next(tx.datetimes())
    start = datetime(first.year, first.month, first.day, tzinfo=UTC)
    start_us = (start - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    offset_us = tx.time_us - start_us
    time_s = offset_us / 1e6
    day_of = offset_us // (SECONDS_PER_DAY * 1_000_000)
    customers, customer = np.unique(tx.customer_id.astype(str), return_inverse=True)
    terminals, terminal = np.unique(tx.terminal_id.astype(str), return_inverse=True)
    days: list[Day] = []
    numbers, starts = np.unique(day_of, return_index=True)
    bounds = [*starts.tolist(), len(tx)]
    empty = np.zeros(0, dtype=np.int64)
    for d, lo, hi in zip(numbers.tolist(), bounds, bounds[1:], strict=False):
        days.append(
            Day(
                day=int(d),
                tx_id=np.arange(lo, hi, dtype=np.int64),
                time_s=time_s[lo:hi],
                customer=customer[lo:hi].astype(np.int64),
                terminal=terminal[lo:hi].astype(np.int64),
                amount_cents=tx.amount_cents[lo:hi],
                fraud=tx.fraud[lo:hi],
                scenario=np.zeros(hi - lo, dtype=np.int8),
                compromised_terminals=empty,
                compromised_customers=empty,
            )
        )
    return ReplayDays(
        start=start,
        days=days,
        customers=customers.astype(object),
        terminals=terminals.astype(object),
    )


HANDBOOK_SCHEMA = pa.schema(
    [
        ("TRANSACTION_ID", pa.int64()),
        ("TX_DATETIME", pa.timestamp("s", tz="UTC")),
        ("CUSTOMER_ID", pa.int64()),
        ("TERMINAL_ID", pa.int64()),
        ("TX_AMOUNT", pa.float64()),
        ("TX_TIME_SECONDS", pa.int64()),
        ("TX_TIME_DAYS", pa.int64()),
        ("TX_FRAUD", pa.int8()),
        ("TX_FRAUD_SCENARIO", pa.int8()),
    ]
)


def _day_table(start: datetime, day: Day) -> Any:
    start_s = int(start.timestamp())
    time_s = np.asarray(day.time_s, dtype=np.int64)
    return pa.table(
        [
            pa.array(day.tx_id),
            pa.array(start_s + time_s, pa.timestamp("s", tz="UTC")),
            pa.array(day.customer),
            pa.array(day.terminal),
            pa.array(day.amount_cents / 100),
            pa.array(time_s),
            pa.array(time_s // SECONDS_PER_DAY),
            pa.array(day.fraud.astype(np.int8)),
            pa.array(day.scenario),
        ],
        schema=HANDBOOK_SCHEMA,
    )


def write_simulated(days: Iterable[Day], start: datetime, out: Path) -> tuple[int, int]:
    """Simulated days (``Simulator.days()`` or ``handbook_days()``, the first at ``start``) in
    the handbook's format (Parquet, or CSV by the suffix), streamed a day at a time; returns
    (transactions, frauds)."""
    suffix = out.suffix.lower()
    if suffix not in (".parquet", ".pq", ".csv"):
        raise ValueError(f"{out}: unknown format {suffix!r} (.csv or .parquet)")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    n = frauds = 0
    writer: Any = (
        pa_csv.CSVWriter(tmp, HANDBOOK_SCHEMA)
        if suffix == ".csv"
        else pq.ParquetWriter(tmp, HANDBOOK_SCHEMA)
    )
    try:
        for day in days:
            writer.write_table(_day_table(start, day))
            n += len(day)
            frauds += int(day.fraud.sum())
    finally:
        writer.close()
    tmp.replace(out)  # a reader never sees half a file
    return n, frauds
