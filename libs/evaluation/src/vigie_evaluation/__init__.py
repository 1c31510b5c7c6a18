"""Prequential quality of fraud scores, measured the way the fraud-detection handbook measures it.

Le Borgne et al., *Reproducible Machine Learning for Credit Card Fraud Detection*, shared functions
``get_train_test_set``, ``card_precision_top_k_day`` and ``card_precision_top_k``:

- a test week starts on day ``T``; the "training" week is ``[T - delay - train, T - delay)``.
  For test day ``T + i`` the customers with a fraud on any day of ``[T - delay - train,
  T - delay - 1 + i]`` are *known* compromised and their transactions are dropped (the handbook's
  ``start + delta_train + day - 1``); with labels delivered ``delay`` days after the transaction,
  that is exactly "every fraud of the window whose label arrived before the test day";
- AUC ROC and average precision (scikit-learn) over the week's remaining transactions;
- card precision@k: per day, each customer (the handbook's card) scored by the max score of its
  transactions that day; the share of the ``k`` top customers with a fraud that day (divided by
  ``k`` even when fewer customers remain); customers detected on earlier days of the week are
  removed; the week's figure is the mean over its days.

Ties in the card ranking are broken by customer id (the handbook's ``groupby`` sorts by customer,
then pandas' unstable quicksort orders equal scores arbitrarily).

Inputs are per-transaction columns (:class:`ScoredTransactions`) so the same code serves the
replay report (issue 11): transaction id, event time, customer, score, label, label time. Time is
UTC epoch seconds; days are UTC calendar days. The rows must include the labelled transactions of
the two weeks before each test week (the known frauds come from them); those may be unscored
(score NaN). Every transaction of a test day must have a score.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Literal

import numpy as np
import numpy.typing as npt
from sklearn.metrics import (  # type: ignore[import-untyped]
    average_precision_score,
    roc_auc_score,
)

SECONDS_PER_DAY = 86_400

KnownRule = Literal["handbook", "label_time"]


@dataclass(frozen=True, slots=True)
class ScoredTransactions:
    """One row per scored transaction, as parallel arrays.

    ``label_time`` (epoch seconds, NaN when no label arrived) is only read by the ``label_time``
    rule; the handbook rule uses the final labels alone.
    """

    transaction_id: npt.NDArray[np.int64]
    time: npt.NDArray[np.float64]
    customer: npt.NDArray[np.generic]
    score: npt.NDArray[np.float64]
    fraud: npt.NDArray[np.bool_]
    label_time: npt.NDArray[np.float64] | None = None

    def __post_init__(self) -> None:
        n = len(self.transaction_id)
        cols = [self.time, self.customer, self.score, self.fraud]
        if self.label_time is not None:
            cols.append(self.label_time)
        if any(len(c) != n for c in cols):
            raise ValueError("every column of ScoredTransactions must have the same length")

    @classmethod
    def from_columns(
        cls,
        transaction_id: Iterable[int],
        time: Iterable[float],
        customer: Iterable[object],
        score: Iterable[float],
        fraud: Iterable[bool],
        label_time: Iterable[float] | None = None,
    ) -> ScoredTransactions:
        return cls(
            transaction_id=np.asarray(list(transaction_id), dtype=np.int64),
            time=np.asarray(list(time), dtype=np.float64),
            customer=np.asarray(list(customer)),
            score=np.asarray(list(score), dtype=np.float64),
            fraud=np.asarray(list(fraud), dtype=np.bool_),
            label_time=None
            if label_time is None
            else np.asarray(list(label_time), dtype=np.float64),
        )

    def __len__(self) -> int:
        return len(self.transaction_id)

    @property
    def day(self) -> npt.NDArray[np.int64]:
        """UTC day number (days since 1970-01-01) of each transaction."""
        return np.floor(self.time / SECONDS_PER_DAY).astype(np.int64)

    def take(self, mask: npt.NDArray[np.bool_]) -> ScoredTransactions:
        return ScoredTransactions(
            transaction_id=self.transaction_id[mask],
            time=self.time[mask],
            customer=self.customer[mask],
            score=self.score[mask],
            fraud=self.fraud[mask],
            label_time=None if self.label_time is None else self.label_time[mask],
        )


@dataclass(frozen=True, slots=True)
class DayMetrics:
    day: date
    n_tx: int
    n_fraud: int
    auc_roc: float  # NaN when the day has a single class
    average_precision: float
    card_precision: float
    n_compromised_cards: int  # after removing the week's earlier detections (handbook)


@dataclass(frozen=True, slots=True)
class WeekMetrics:
    start: date
    n_tx: int
    n_fraud: int
    auc_roc: float
    average_precision: float
    card_precision: float
    days: tuple[DayMetrics, ...] = field(default=())


@dataclass(frozen=True, slots=True)
class Summary:
    """Mean over the evaluated weeks (the issue's bar is on these means)."""

    auc_roc: float
    average_precision: float
    card_precision: float
    weeks: tuple[WeekMetrics, ...]


def day_number(d: date | datetime) -> int:
    """UTC day number of a date (or of an aware datetime's UTC date)."""
    if isinstance(d, datetime):
        if d.tzinfo is None:
            raise ValueError("datetimes must be timezone-aware")
        d = d.astimezone(UTC).date()
    return (d - date(1970, 1, 1)).days


def _date(day: int) -> date:
    return date.fromordinal(date(1970, 1, 1).toordinal() + day)


def auc_roc(fraud: npt.ArrayLike, score: npt.ArrayLike) -> float:
    """scikit-learn's ROC AUC; NaN when only one class is present (instead of raising)."""
    y = np.asarray(fraud, dtype=np.bool_)
    if y.size == 0 or y.all() or not y.any():
        return math.nan
    return float(roc_auc_score(y, np.asarray(score, dtype=np.float64)))


def average_precision(fraud: npt.ArrayLike, score: npt.ArrayLike) -> float:
    """scikit-learn's average precision; NaN when there is no fraud."""
    y = np.asarray(fraud, dtype=np.bool_)
    if not y.any():
        return math.nan
    return float(average_precision_score(y, np.asarray(score, dtype=np.float64)))


def card_precision_top_k_day(
    customer: npt.ArrayLike, score: npt.ArrayLike, fraud: npt.ArrayLike, top_k: int = 100
) -> tuple[list[object], float]:
    """The handbook's ``card_precision_top_k_day``: (compromised cards in the top k, precision)."""
    if top_k < 1:
        raise ValueError("top_k must be at least 1")
    cust = np.asarray(customer)
    if cust.size == 0:
        return [], 0.0
    keys, inverse = np.unique(cust, return_inverse=True)
    best = np.full(keys.size, -np.inf)
    np.maximum.at(best, inverse, np.asarray(score, dtype=np.float64))
    bad = np.zeros(keys.size, dtype=np.bool_)
    np.logical_or.at(bad, inverse, np.asarray(fraud, dtype=np.bool_))
    # keys are sorted, so a stable sort on -score breaks ties by customer id.
    top = np.argsort(-best, kind="stable")[:top_k]
    detected = [k.item() if isinstance(k, np.generic) else k for k in keys[top][bad[top]]]
    return detected, len(detected) / top_k


def card_precision_top_k(
    day: npt.ArrayLike,
    customer: npt.ArrayLike,
    score: npt.ArrayLike,
    fraud: npt.ArrayLike,
    top_k: int = 100,
    *,
    remove_detected: bool = True,
) -> tuple[list[int], list[float], float]:
    """The handbook's ``card_precision_top_k``: (compromised cards per day, CP@k per day, mean)."""
    days = np.asarray(day)
    cust = np.asarray(customer)
    sc = np.asarray(score, dtype=np.float64)
    fr = np.asarray(fraud, dtype=np.bool_)
    detected: set[object] = set()
    nb_compromised: list[int] = []
    per_day: list[float] = []
    for d in np.unique(days):
        m = days == d
        if detected:
            m &= ~np.isin(cust, np.asarray(list(detected), dtype=cust.dtype))
        nb_compromised.append(int(np.unique(cust[m & fr]).size))
        found, precision = card_precision_top_k_day(cust[m], sc[m], fr[m], top_k)
        per_day.append(precision)
        if remove_detected:
            detected.update(found)
    mean = float(np.mean(per_day)) if per_day else math.nan
    return nb_compromised, per_day, mean


def handbook_test_mask(
    rows: ScoredTransactions,
    week_start: date,
    *,
    delta_train: int = 7,
    delta_delay: int = 7,
    delta_test: int = 7,
    rule: KnownRule = "handbook",
) -> npt.NDArray[np.bool_]:
    """Rows of the handbook's test set for the week starting ``week_start``.

    ``rule="handbook"`` is ``get_train_test_set``: customers with a fraud on the days
    ``[T - delay - train, T + i - delay - 1]`` are dropped from test day ``T + i``.
    ``rule="label_time"`` drops instead the customers with a fraud of day ``>= T - delay - train``
    whose label arrived before test day ``T + i`` began (the same thing when every label takes
    exactly ``delta_delay`` days; the honest rule when label delays vary).
    """
    t0 = day_number(week_start)
    days = rows.day
    first_known = t0 - delta_delay - delta_train
    frauds = rows.fraud & (days >= first_known)
    if rule == "label_time":
        if rows.label_time is None:
            raise ValueError("the label_time rule needs label times")
        label_time = rows.label_time
    keep = np.zeros(len(rows), dtype=np.bool_)
    for i in range(delta_test):
        d = t0 + i
        if rule == "handbook":
            known_m = frauds & (days <= d - delta_delay - 1)
        else:
            known_m = frauds & (label_time < d * SECONDS_PER_DAY)
        known = np.unique(rows.customer[known_m])
        today = days == d
        keep |= today & ~np.isin(rows.customer, known)
    return keep


def week_metrics(
    rows: ScoredTransactions,
    week_start: date,
    *,
    top_k: int = 100,
    delta_train: int = 7,
    delta_delay: int = 7,
    delta_test: int = 7,
    rule: KnownRule = "handbook",
) -> WeekMetrics:
    """AUC ROC, AP and CP@k of one test week (see the module docstring), with per-day figures."""
    test = rows.take(
        handbook_test_mask(
            rows,
            week_start,
            delta_train=delta_train,
            delta_delay=delta_delay,
            delta_test=delta_test,
            rule=rule,
        )
    )
    if np.isnan(test.score).any():
        raise ValueError(f"unscored transactions in the test week of {week_start}")
    days = test.day
    nb_compromised, cp_per_day, cp_mean = card_precision_top_k(
        days, test.customer, test.score, test.fraud, top_k
    )
    per_day: list[DayMetrics] = []
    for j, d in enumerate(np.unique(days)):
        m = days == d
        per_day.append(
            DayMetrics(
                day=_date(int(d)),
                n_tx=int(m.sum()),
                n_fraud=int(test.fraud[m].sum()),
                auc_roc=auc_roc(test.fraud[m], test.score[m]),
                average_precision=average_precision(test.fraud[m], test.score[m]),
                card_precision=cp_per_day[j],
                n_compromised_cards=nb_compromised[j],
            )
        )
    return WeekMetrics(
        start=week_start,
        n_tx=len(test),
        n_fraud=int(test.fraud.sum()),
        auc_roc=auc_roc(test.fraud, test.score),
        average_precision=average_precision(test.fraud, test.score),
        card_precision=cp_mean,
        days=tuple(per_day),
    )


def evaluate_weeks(
    rows: ScoredTransactions,
    week_starts: Sequence[date],
    *,
    top_k: int = 100,
    delta_delay: int = 7,
    rule: KnownRule = "handbook",
) -> Summary:
    """:func:`week_metrics` of each week and their means (NaN weeks are left out of a mean)."""
    weeks = tuple(
        week_metrics(rows, w, top_k=top_k, delta_delay=delta_delay, rule=rule)
        for w in week_starts
    )

    def mean(values: list[float]) -> float:
        finite = [v for v in values if not math.isnan(v)]
        return float(np.mean(finite)) if finite else math.nan

    return Summary(
        auc_roc=mean([w.auc_roc for w in weeks]),
        average_precision=mean([w.average_precision for w in weeks]),
        card_precision=mean([w.card_precision for w in weeks]),
        weeks=weeks,
    )


def daily_metrics(rows: ScoredTransactions, top_k: int = 100) -> list[DayMetrics]:
    """Per-day prequential figures over every transaction (no known-fraud filter, no removal of
    earlier detections): the curves the service exports while it runs."""
    days = rows.day
    out: list[DayMetrics] = []
    for d in np.unique(days):
        m = days == d
        y, s, c = rows.fraud[m], rows.score[m], rows.customer[m]
        _, cp = card_precision_top_k_day(c, s, y, top_k)
        out.append(
            DayMetrics(
                day=_date(int(d)),
                n_tx=int(m.sum()),
                n_fraud=int(y.sum()),
                auc_roc=auc_roc(y, s),
                average_precision=average_precision(y, s),
                card_precision=cp,
                n_compromised_cards=int(np.unique(c[y]).size),
            )
        )
    return out


HANDBOOK_TEST_WEEKS: tuple[date, ...] = (
    date(2018, 8, 8),
    date(2018, 8, 15),
    date(2018, 8, 22),
    date(2018, 8, 29),
)
"""The four test weeks of issue 9 (the handbook's chapter 5 assessment on its simulated data)."""
