"""The replay report: the platform's scores against the file's labels, as Markdown.

Per day and over the whole period: AUC ROC, average precision and card precision@k (a card is a
customer, as in the handbook), computed by ``vigie_evaluation``; the period's card
precision is the mean of the daily figures. Transactions without a score are counted and left out
of the figures. Where the map covers the handbook's four test weeks (issue 9), their figures
(known frauds removed, earlier detections removed) sit beside the issue's quality bar.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import numpy as np
import numpy.typing as npt
import pyarrow.parquet as pq  # type: ignore[import-untyped]  # pyarrow ships no type information

from vigie_evaluation import (
    HANDBOOK_TEST_WEEKS,
    DayMetrics,
    ScoredTransactions,
    Summary,
    auc_roc,
    average_precision,
    daily_metrics,
    day_number,
    evaluate_weeks,
)

#: issue 9's bar: the handbook's best tuned offline baselines on its four test weeks
QUALITY_BAR = {"auc_roc": 0.875, "average_precision": 0.694, "card_precision": 0.304}


@dataclass(frozen=True, slots=True)
class LabelledMap:
    """The replay map's columns the report needs (see :mod:`vigie_traffic.replay`)."""

    transaction_id: npt.NDArray[np.object_]  # vigie's id (str), None where not replayed
    time: npt.NDArray[np.float64]  # UTC epoch seconds
    customer: npt.NDArray[np.object_]
    fraud: npt.NDArray[np.bool_]
    label_time: npt.NDArray[np.float64]  # NaN where no label was sent

    def __len__(self) -> int:
        return int(self.transaction_id.size)


def read_map(path: Path) -> LabelledMap:
    table = pq.read_table(
        path, columns=["transaction_id", "datetime", "customer_id", "fraud", "label_at"]
    )

    def seconds(name: str) -> npt.NDArray[np.float64]:
        us = table.column(name).cast("int64").to_numpy(zero_copy_only=False)
        return np.asarray(us, dtype=np.float64) / 1e6

    return LabelledMap(
        transaction_id=np.asarray(table.column("transaction_id").to_pylist(), dtype=object),
        time=seconds("datetime"),
        customer=np.asarray(table.column("customer_id").to_pylist(), dtype=object),
        fraud=np.asarray(table.column("fraud").to_numpy(zero_copy_only=False) == 1),
        label_time=seconds("label_at"),
    )


@dataclass(frozen=True, slots=True)
class Period:
    n_tx: int
    n_fraud: int
    auc_roc: float
    average_precision: float
    card_precision: float  # mean of the daily figures


@dataclass(frozen=True, slots=True)
class Report:
    n_rows: int
    n_not_replayed: int
    n_scored: int
    n_unscored: int
    n_unscored_fraud: int
    top_k: int
    days: tuple[DayMetrics, ...]
    period: Period | None  # None: nothing scored
    weeks: Summary | None  # None: no handbook test week fully covered


def _mean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return float(np.mean(finite)) if finite else math.nan


def covered_weeks(days: set[int], weeks: tuple[date, ...] = HANDBOOK_TEST_WEEKS) -> list[date]:
    """Test weeks whose seven days, and the fourteen before (training and delay), have scores."""
    return [w for w in weeks if all(day_number(w) + i in days for i in range(-14, 7))]


def build_report(labels: LabelledMap, scores: Mapping[str, float], top_k: int = 100) -> Report:
    replayed = np.asarray([t is not None for t in labels.transaction_id], dtype=np.bool_)
    score = np.asarray(
        [scores.get(t, math.nan) if t is not None else math.nan for t in labels.transaction_id],
        dtype=np.float64,
    )
    scored = ~np.isnan(score)
    unscored = replayed & ~scored
    rows = ScoredTransactions(
        transaction_id=np.asarray([int(t) for t in labels.transaction_id[scored]], np.int64),
        time=labels.time[scored],
        customer=labels.customer[scored],
        score=score[scored],
        fraud=labels.fraud[scored],
        label_time=labels.label_time[scored],
    )
    days = tuple(daily_metrics(rows, top_k)) if len(rows) else ()
    period = None
    weeks = None
    if len(rows):
        period = Period(
            n_tx=len(rows),
            n_fraud=int(rows.fraud.sum()),
            auc_roc=auc_roc(rows.fraud, rows.score),
            average_precision=average_precision(rows.fraud, rows.score),
            card_precision=_mean([d.card_precision for d in days]),
        )
        present = covered_weeks({int(d) for d in np.unique(rows.day)})
        if present:
            weeks = evaluate_weeks(rows, present, top_k=top_k)
    return Report(
        n_rows=len(labels),
        n_not_replayed=int((~replayed).sum()),
        n_scored=int(scored.sum()),
        n_unscored=int(unscored.sum()),
        n_unscored_fraud=int((unscored & labels.fraud).sum()),
        top_k=top_k,
        days=days,
        period=period,
        weeks=weeks,
    )


def _f(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.3f}"


def render(report: Report, *, title: str = "Replay report", source: str = "") -> str:
    k = report.top_k
    out = [f"# {title}", ""]
    if source:
        out += [source, ""]
    out += [
        f"- transactions in the map: {report.n_rows}",
        f"- not replayed (no vigie id): {report.n_not_replayed}",
        f"- scored: {report.n_scored}",
        f"- replayed but no score: {report.n_unscored} (of which fraud: {report.n_unscored_fraud})",
        "",
    ]
    if report.period is None:
        out += ["No transaction of the map has a score: no figures.", ""]
        return "\n".join(out)
    p = report.period
    out += [
        "## Whole period",
        "",
        f"| transactions | frauds | AUC ROC | average precision | card precision@{k} |",
        "|---:|---:|---:|---:|---:|",
        f"| {p.n_tx} | {p.n_fraud} | {_f(p.auc_roc)} | {_f(p.average_precision)}"
        f" | {_f(p.card_precision)} |",
        "",
        f"Card precision@{k} over the period is the mean of the daily figures. A day with a single",
        "class has no AUC ROC, a day without fraud no average precision (n/a).",
        "",
    ]
    if report.weeks is not None:
        w = report.weeks
        bar = QUALITY_BAR
        out += [
            "## Handbook test weeks (issue 9's protocol)",
            "",
            f"| week | transactions | frauds | AUC ROC | average precision | card precision@{k} |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        out += [
            f"| {x.start} | {x.n_tx} | {x.n_fraud} | {_f(x.auc_roc)} | "
            f"{_f(x.average_precision)} | {_f(x.card_precision)} |"
            for x in w.weeks
        ]
        out += [
            f"| **mean** | | | **{_f(w.auc_roc)}** | **{_f(w.average_precision)}** | "
            f"**{_f(w.card_precision)}** |",
            f"| bar | | | {bar['auc_roc']} | {bar['average_precision']} | "
            f"{bar['card_precision']} |",
            "",
        ]
    out += [
        "## Per day",
        "",
        f"| day | transactions | frauds | AUC ROC | average precision | card precision@{k} |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    out += [
        f"| {d.day} | {d.n_tx} | {d.n_fraud} | {_f(d.auc_roc)} | {_f(d.average_precision)} | "
        f"{_f(d.card_precision)} |"
        for d in report.days
    ]
    out.append("")
    return "\n".join(out)
