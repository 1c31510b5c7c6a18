"""The replay report's arithmetic on hand-made scores and labels, and the latest-score rule."""

from __future__ import annotations

import math
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from vigie_contracts.events import FraudScore
from vigie_contracts.events.fraud import Decision
from vigie_traffic.report import LabelledMap, build_report, covered_weeks, render
from vigie_traffic.scores import ScoreRead

DAY = 86_400.0
T0 = datetime(2018, 4, 1, tzinfo=UTC).timestamp()


def _map(rows: list[tuple[str | None, float, str, int]]) -> LabelledMap:
    """(vigie id, seconds after T0, customer, fraud)."""
    return LabelledMap(
        transaction_id=np.asarray([r[0] for r in rows], dtype=object),
        time=np.asarray([T0 + r[1] for r in rows], dtype=np.float64),
        customer=np.asarray([r[2] for r in rows], dtype=object),
        fraud=np.asarray([r[3] == 1 for r in rows], dtype=np.bool_),
        label_time=np.asarray(
            [T0 + r[1] + 7 * DAY if r[3] else math.nan for r in rows], dtype=np.float64
        ),
    )


LABELS = _map(
    [
        # day 0: the two frauds score above the two genuine rows: perfect
        ("1", 100, "a", 1), ("2", 200, "b", 0), ("3", 300, "c", 1), ("4", 400, "d", 0),
        # day 1: labels 1, 0, 1, 0 scored 0.9, 0.8, 0.3, 0.1
        ("5", DAY + 1, "a", 1), ("6", DAY + 2, "b", 0), ("7", DAY + 3, "c", 1),
        ("8", DAY + 4, "d", 0),
        # day 2: only genuine rows, and one row without a score, one never replayed
        ("9", 2 * DAY + 5, "a", 0), ("10", 2 * DAY + 6, "b", 0), ("11", 2 * DAY + 7, "e", 1),
        (None, 2 * DAY + 8, "f", 1),
    ]
)  # fmt: skip
SCORES = {
    "1": 0.9, "2": 0.2, "3": 0.7, "4": 0.1,
    "5": 0.9, "6": 0.8, "7": 0.3, "8": 0.1,
    "9": 0.4, "10": 0.6,
    "999": 1.0,  # a transaction the map does not hold
}  # fmt: skip


def test_per_day_and_period_figures() -> None:
    report = build_report(LABELS, SCORES, top_k=2)
    assert (report.n_rows, report.n_not_replayed, report.n_scored) == (12, 1, 10)
    assert (report.n_unscored, report.n_unscored_fraud) == (1, 1)
    d0, d1, d2 = report.days
    assert d0.day == date(2018, 4, 1) and (d0.n_tx, d0.n_fraud) == (4, 2)
    assert d0.auc_roc == 1.0 and d0.average_precision == 1.0
    assert d0.card_precision == 1.0  # top 2 cards a, c: both compromised
    # positives 0.9, 0.3 against negatives 0.8, 0.1: 3 of the 4 pairs ranked right
    assert d1.auc_roc == pytest.approx(0.75)
    # ranks: 0.9 (fraud) p=1, 0.8, 0.3 (fraud) p=2/3 -> (1 + 2/3) / 2
    assert d1.average_precision == pytest.approx(5 / 6)
    assert d1.card_precision == 0.5  # top 2: a (fraud), b
    assert math.isnan(d2.auc_roc) and math.isnan(d2.average_precision)
    assert d2.card_precision == 0.0 and d2.n_tx == 2
    p = report.period
    assert p is not None and (p.n_tx, p.n_fraud) == (10, 4)
    # pooled: positives 0.9, 0.7, 0.9, 0.3 against negatives 0.2, 0.1, 0.8, 0.1, 0.4, 0.6
    wins = sum(
        1.0 if pos > neg else 0.5 if pos == neg else 0.0
        for pos in (0.9, 0.7, 0.9, 0.3)
        for neg in (0.2, 0.1, 0.8, 0.1, 0.4, 0.6)
    )
    assert p.auc_roc == pytest.approx(wins / 24)
    assert p.card_precision == pytest.approx((1.0 + 0.5 + 0.0) / 3)
    assert report.weeks is None  # three days cover no handbook test week


def test_nothing_scored_gives_counts_and_no_figures() -> None:
    report = build_report(LABELS, {})
    assert report.period is None and report.days == ()
    assert report.n_unscored == 11
    assert "no figures" in render(report)


def test_markdown_has_the_tables() -> None:
    text = render(build_report(LABELS, SCORES, top_k=2), source="map m.parquet")
    assert text.startswith("# Replay report\n\nmap m.parquet\n")
    assert "| 10 | 4 | " in text  # whole period: transactions, frauds
    assert "| 2018-04-02 | 4 | 2 | 0.750 | 0.833 | 0.500 |" in text
    assert "| 2018-04-03 | 2 | 0 | n/a | n/a | 0.000 |" in text
    assert "replayed but no score: 1 (of which fraud: 1)" in text
    assert "card precision@2" in text


def test_handbook_weeks_need_their_days_and_the_fourteen_before() -> None:
    week = date(2018, 8, 8)
    first = (week - date(1970, 1, 1)).days
    assert covered_weeks(set(range(first - 14, first + 7)), (week,)) == [week]
    assert covered_weeks(set(range(first - 13, first + 7)), (week,)) == []


def _score(tx: str, score: float, at: datetime) -> FraudScore:
    return FraudScore(
        transaction_id=tx,
        customer_id="c",
        score=score,
        decision=Decision.APPROVE,
        model_name="m",
        model_version="1",
        scored_at=at,
    )


def test_the_latest_score_of_a_transaction_wins() -> None:
    read = ScoreRead()
    now = datetime(2026, 1, 1, tzinfo=UTC)
    read.add(_score("1", 0.2, now + timedelta(seconds=5)), {"1", "2"})
    read.add(_score("1", 0.9, now), {"1", "2"})  # older, read later: ignored
    read.add(_score("2", 0.3, now), {"1", "2"})
    read.add(_score("2", 0.4, now), {"1", "2"})  # same time, later offset: wins
    read.add(_score("3", 0.5, now), {"1", "2"})
    assert read.scores == {"1": 0.2, "2": 0.4}
    assert read.not_in_map == 1
