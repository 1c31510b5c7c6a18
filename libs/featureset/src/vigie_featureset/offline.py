"""The offline reference: every registry feature recomputed from whole tables with pandas.

It shares nothing with state.py / compute.py on purpose: it exists to check them (and to build
training sets). The handbook's features are computed the handbook's way (per-entity groupby and
time-based ``rolling``); the extras by their definitions, vectorised (rank + searchsorted counts)
where rolling cannot express them, and with one plain loop for the distinct counts.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]  # no pandas-stubs in the workspace yet

from .registry import FEATURE_NAMES

_US = 1_000_000
_H = 3_600 * _US
_D = 24 * _H
_DELAY_DAYS = 7
_MAX_GAP_S = 30 * 86_400.0

I64 = npt.NDArray[np.int64]
F64 = npt.NDArray[np.float64]


def _epoch_us(values: Any) -> I64:
    stamps = pd.to_datetime(values, utc=True).dt.tz_convert(None)
    return np.asarray(stamps.to_numpy().astype("datetime64[us]").astype(np.int64), dtype=np.int64)


def _count_le(q_group: I64, q_t: I64, e_group: I64, e_t: I64, weights: F64 | None = None) -> F64:
    """For each query, the number (or weight sum) of events of the same group at or before q_t."""
    if e_t.size == 0:
        return np.zeros(q_t.size)
    _, inverse = np.unique(np.concatenate([q_t, e_t]), return_inverse=True)
    k = int(inverse.max()) + 2
    q_key = q_group * k + inverse[: q_t.size] + 1
    e_key = e_group * k + inverse[q_t.size :] + 1
    order = np.argsort(e_key, kind="stable")
    e_sorted = e_key[order]
    hi = np.searchsorted(e_sorted, q_key, side="right")
    lo = np.searchsorted(e_sorted, q_group * k, side="left")
    if weights is None:
        return (hi - lo).astype(np.float64)
    cum = np.concatenate([[0.0], np.cumsum(weights[order])])
    return np.asarray(cum[hi] - cum[lo], dtype=np.float64)


def _ratio(num: F64, den: F64) -> F64:
    """num / den, 0 where den is 0."""
    return np.divide(num, den, out=np.zeros(np.shape(num)), where=den != 0)


def _codes(*columns: Any) -> list[I64]:
    """Shared integer codes for the values of several columns (same value, same code)."""
    sizes = [len(c) for c in columns]
    joined = pd.concat([pd.Series(np.asarray(c, dtype=object)) for c in columns], ignore_index=True)
    codes, _ = pd.factorize(joined)
    out, start = [], 0
    for n in sizes:
        out.append(np.asarray(codes[start : start + n], dtype=np.int64))
        start += n
    return out


def _windows(
    df: pd.DataFrame, key: str, window: timedelta, values: F64 | None = None
) -> tuple[Any, I64]:
    """Per ``key`` group, the rolling ``window`` of ``values`` (default amount_minor) over
    (t - window, t], this row and the rows before it in (time, id) order included (the handbook's
    ``rolling(window)``), and where each of its results goes: it lists groups in order of first
    appearance, each in row order (its index is (key, when), not the rows)."""
    data = df["amount_minor"].to_numpy() if values is None else values
    series = pd.Series(data, index=pd.DatetimeIndex(df["when"]))
    rolled = series.groupby(df[key].to_numpy(), sort=False).rolling(window)
    codes, _ = pd.factorize(df[key])
    return rolled, np.argsort(codes, kind="stable")


def _rolling(
    df: pd.DataFrame, key: str, window: timedelta, *, with_sum: bool = True
) -> tuple[F64, F64]:
    """Per ``key`` group, the count and the sum of amount_minor over ``_windows``' window."""
    rolled, order = _windows(df, key, window)
    count, total = np.empty(len(df)), np.zeros(len(df))
    count[order] = rolled.count().to_numpy(dtype=np.float64)
    if with_sum:
        total[order] = rolled.sum().to_numpy(dtype=np.float64)
    return count, total


def _rolling_stat(
    df: pd.DataFrame, key: str, window: timedelta, stat: str, values: F64 | None = None
) -> F64:
    """Per ``key`` group, ``stat`` ("median", "sum") of ``_windows``' window."""
    rolled, order = _windows(df, key, window, values)
    out = np.empty(len(df))
    out[order] = getattr(rolled, stat)().to_numpy(dtype=np.float64)
    return out


def _earlier_above(owner: I64, t: I64, amount: F64, threshold: F64, window: int) -> F64:
    """For each row, the owner's earlier rows in (t - window, t] whose amount is above this
    row's threshold; rows are in (time, id) order."""
    out = np.zeros(t.size)
    order = np.argsort(owner, kind="stable")
    ow, tt = owner[order].tolist(), t[order].tolist()
    aa, th = amount[order].tolist(), threshold[order].tolist()
    res = [0] * len(ow)
    start = 0
    for i in range(len(ow)):
        if i and ow[i] != ow[i - 1]:
            start = i
        while tt[start] <= tt[i] - window:
            start += 1
        res[i] = sum(1 for j in range(start, i) if aa[j] > th[i])
    out[order] = res
    return out


def _delayed_count(df: pd.DataFrame, key: str, days: int, delay_count: F64) -> F64:
    """The handbook's terminal count: rolling (d + n) days minus rolling d days."""
    long_count, _ = _rolling(df, key, timedelta(days=_DELAY_DAYS + days), with_sum=False)
    return long_count - delay_count


def _known_frauds(
    group: I64, t: I64, fraud_at: I64, has_fraud: npt.NDArray[np.bool_], days: int
) -> F64:
    """Frauds among the group's transactions in (t - (d + n), t - d] labelled at or before t.

    Transaction j counts for every query time in [max(t_j + d, fraud_at_j), t_j + d + n).
    """
    d, n = _DELAY_DAYS * _D, days * _D
    j = np.flatnonzero(has_fraud)
    start = np.maximum(t[j] + d, fraud_at[j])
    end = t[j] + d + n
    live = start < end
    g, start, end = group[j][live], start[live], end[live]
    return _count_le(group, t, g, start) - _count_le(group, t, g, end)


def _distinct_1d(owner: I64, t: I64, value: I64) -> F64:
    """Distinct values over (t - 1d, t] of the owner's rows so far; rows are in (time, id) order."""
    out = np.zeros(t.size)
    order = np.argsort(owner, kind="stable")
    ow, tt, vv = owner[order].tolist(), t[order].tolist(), value[order].tolist()
    res = [0] * len(ow)
    start = 0
    seen: dict[int, int] = {}
    for i in range(len(ow)):
        if i and ow[i] != ow[i - 1]:
            start, seen = i, {}
        while tt[start] <= tt[i] - _D:
            v = vv[start]
            seen[v] -= 1
            if not seen[v]:
                del seen[v]
            start += 1
        seen[vv[i]] = seen.get(vv[i], 0) + 1
        res[i] = len(seen)
    out[order] = res
    return out


def compute_offline(
    transactions: pd.DataFrame,
    labels: pd.DataFrame,
    refunds: pd.DataFrame | None = None,
    sessions: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Every registry feature for every transaction, point-in-time, from whole tables.

    Inputs (times are tz-aware datetimes or naive UTC; extra columns are ignored):

    - ``transactions``: transaction_id, customer_id, card_token (None / "" / "0" = no card),
      terminal_id, merchant_id, amount_minor (int), occurred_at. A repeated transaction_id is
      kept once (the first row).
    - ``labels``: transaction_id, fraud (bool), labelled_at. A transaction counts as a fraud from
      its earliest fraud label on; genuine labels change nothing.
    - ``refunds``: refund_id, customer_id, created_at (one per refund_id).
    - ``sessions``: session_id, customer_id (the session's user id), ended_at, failed_logins.

    Returns one row per transaction, indexed by transaction_id in (occurred_at, transaction_id)
    order, one float64 column per feature in registry order.
    """
    tx = transactions.drop_duplicates("transaction_id", keep="first")
    t_us = _epoch_us(tx["occurred_at"])
    df = pd.DataFrame(
        {
            "transaction_id": tx["transaction_id"].astype(str).to_numpy(),
            "customer_id": tx["customer_id"].astype(str).to_numpy(),
            "card_token": tx["card_token"].to_numpy(dtype=object),
            "terminal_id": tx["terminal_id"].astype(str).to_numpy(),
            "merchant_id": tx["merchant_id"].astype(str).to_numpy(),
            "amount_minor": tx["amount_minor"].to_numpy(dtype=np.float64),
            "t": t_us,
        }
    )
    df = df.sort_values(["t", "transaction_id"], kind="stable").reset_index(drop=True)
    df["when"] = pd.to_datetime(df["t"].to_numpy(), unit="us")
    t = df["t"].to_numpy(dtype=np.int64)
    out: dict[str, Any] = {}

    # --- request features
    amount = df["amount_minor"].to_numpy() / 100.0
    out["amount"] = amount
    out["during_weekend"] = (df["when"].dt.day_of_week >= 5).to_numpy(dtype=np.float64)
    out["during_night"] = (df["when"].dt.hour <= 6).to_numpy(dtype=np.float64)

    # --- customer windows: the handbook's rolling over the customer's transactions
    totals: dict[str, F64] = {}
    for name, window in (
        ("1h", timedelta(hours=1)),
        ("1d", timedelta(days=1)),
        ("7d", timedelta(days=7)),
        ("30d", timedelta(days=30)),
    ):
        count, total = _rolling(df, "customer_id", window)
        totals[name] = total
        out[f"customer_nb_tx_{name}"] = count
        out[f"customer_avg_amount_{name}"] = _ratio(total / 100.0, count)
    avg30 = out["customer_avg_amount_30d"]
    out["customer_amount_ratio_30d"] = _ratio(amount, avg30)
    cust_code, term_code, merch_code = _codes(
        df["customer_id"], df["terminal_id"], df["merchant_id"]
    )
    minor = df["amount_minor"].to_numpy(dtype=np.float64)
    month = timedelta(days=30)
    middle = _rolling_stat(df, "customer_id", month, "median")
    out["customer_amount_median_ratio_30d"] = _ratio(minor, middle)
    # Sums of integers below 2**53 are exact, so these are the online integers, as floats.
    n30, s1 = out["customer_nb_tx_30d"], totals["30d"]
    s2 = _rolling_stat(df, "customer_id", month, "sum", minor * minor)
    spread = n30 * s2 - s1 * s1
    out["customer_amount_zscore_30d"] = _ratio(n30 * minor - s1, np.sqrt(spread))
    out["customer_high_amounts_7d"] = _earlier_above(cust_code, t, minor, 3 * middle, 7 * _D)
    gap = df.groupby("customer_id", sort=False)["t"].diff().to_numpy(dtype=np.float64) / _US
    out["customer_seconds_since_previous"] = np.where(
        np.isnan(gap), _MAX_GAP_S, np.minimum(gap, _MAX_GAP_S)
    )
    out["customer_distinct_terminals_1d"] = _distinct_1d(cust_code, t, term_code)
    out["customer_distinct_merchants_1d"] = _distinct_1d(cust_code, t, merch_code)

    # --- refunds and sessions of the customer, by their own times
    nb30 = out["customer_nb_tx_30d"]
    if refunds is not None and len(refunds):
        r = refunds.drop_duplicates("refund_id", keep="first")
        q, e = _codes(df["customer_id"], r["customer_id"].astype(str))
        r_t = _epoch_us(r["created_at"])
        n_ref = _count_le(q, t, e, r_t) - _count_le(q, t - 30 * _D, e, r_t)
        out["customer_refund_ratio_30d"] = _ratio(n_ref, nb30)
    else:
        out["customer_refund_ratio_30d"] = np.zeros(t.size)
    if sessions is not None and len(sessions):
        s = sessions.drop_duplicates("session_id", keep="first")
        q, e = _codes(df["customer_id"], s["customer_id"].astype(str))
        s_t = _epoch_us(s["ended_at"])
        failed = s["failed_logins"].to_numpy(dtype=np.float64)
        out["customer_sessions_1h"] = _count_le(q, t, e, s_t) - _count_le(q, t - _H, e, s_t)
        out["customer_failed_logins_1h"] = _count_le(q, t, e, s_t, failed) - _count_le(
            q, t - _H, e, s_t, failed
        )
    else:
        out["customer_sessions_1h"] = np.zeros(t.size)
        out["customer_failed_logins_1h"] = np.zeros(t.size)

    # --- card windows (rows without a card get 0)
    card = df["card_token"]
    has_card = (card.notna() & (card.astype(str) != "") & (card.astype(str) != "0")).to_numpy()
    for name in ("card_nb_tx_1h", "card_nb_tx_1d", "card_avg_amount_1d"):
        out[name] = np.zeros(t.size)
    if has_card.any():
        cards = df.loc[has_card, ["card_token", "amount_minor", "when"]].copy()
        cards["card_token"] = cards["card_token"].astype(str)
        rows = np.flatnonzero(has_card)
        n1h, _ = _rolling(cards, "card_token", timedelta(hours=1), with_sum=False)
        n1d, s1d = _rolling(cards, "card_token", timedelta(days=1))
        out["card_nb_tx_1h"][rows] = n1h
        out["card_nb_tx_1d"][rows] = n1d
        out["card_avg_amount_1d"][rows] = s1d / 100.0 / n1d

    # --- terminal and merchant risk, label-delayed
    fraud_at = np.full(t.size, np.iinfo(np.int64).max, dtype=np.int64)
    frauds = labels[labels["fraud"].astype(bool)]
    if len(frauds):
        first = (
            pd.DataFrame({"transaction_id": frauds["transaction_id"].astype(str).to_numpy(),
                          "at": _epoch_us(frauds["labelled_at"])})
            .groupby("transaction_id")["at"].min()
        )
        mapped = df["transaction_id"].map(first)
        fraud_at = np.where(mapped.isna(), fraud_at, mapped.fillna(0).to_numpy(dtype=np.int64))
    has_fraud = fraud_at != np.iinfo(np.int64).max
    for who, code in (("terminal", term_code), ("merchant", merch_code)):
        delay_count, _ = _rolling(df, f"{who}_id", timedelta(days=_DELAY_DAYS), with_sum=False)
        for days in (1, 7, 30):
            nb = _delayed_count(df, f"{who}_id", days, delay_count)
            known = _known_frauds(code, t, fraud_at, has_fraud, days)
            out[f"{who}_nb_tx_{days}d"] = nb
            out[f"{who}_risk_{days}d"] = _ratio(known, nb)

    result = pd.DataFrame({name: np.asarray(out[name], dtype=np.float64) for name in FEATURE_NAMES})
    result.index = pd.Index(df["transaction_id"].to_numpy(), name="transaction_id")
    return result
