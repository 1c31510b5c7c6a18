"""The handbook's metrics: hand-computed cases, scikit-learn, and a pandas transcription of the
handbook's ``get_train_test_set`` / ``card_precision_top_k`` on random data."""

from __future__ import annotations

import math
from datetime import date, timedelta

import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # no pandas-stubs in the workspace yet
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score  # type: ignore[import-untyped]

from vigie_evaluation import (
    HANDBOOK_TEST_WEEKS,
    SECONDS_PER_DAY,
    ScoredTransactions,
    auc_roc,
    average_precision,
    card_precision_top_k,
    card_precision_top_k_day,
    daily_metrics,
    day_number,
    evaluate_weeks,
    handbook_test_mask,
    week_metrics,
)

T = date(2018, 8, 8)
T_DAY = day_number(T)


def rows_at(days: list[int], customers: list[int], fraud: list[bool]) -> ScoredTransactions:
    """One transaction at noon of each (relative to T) day."""
    n = len(days)
    time = [(T_DAY + d) * SECONDS_PER_DAY + 43_200.0 for d in days]
    return ScoredTransactions.from_columns(
        range(n), time, customers, [0.5] * n, fraud, [t + 7 * SECONDS_PER_DAY for t in time]
    )


def test_auc_and_ap_hand_computed() -> None:
    y = [False, False, True, True]
    s = [0.1, 0.4, 0.35, 0.8]
    # pairs (pos, neg) ranked right: (0.35 > 0.1), (0.8 > 0.1), (0.8 > 0.4); wrong: (0.35 < 0.4)
    assert auc_roc(y, s) == pytest.approx(0.75)
    # thresholds: 0.8 -> P=1, R=.5; 0.35 -> P=2/3, R=1; AP = .5*1 + .5*2/3
    assert average_precision(y, s) == pytest.approx(0.5 + 1 / 3)


def test_auc_and_ap_match_sklearn_and_degenerate_cases_are_nan() -> None:
    rng = np.random.default_rng(1)
    y = rng.random(500) < 0.1
    s = rng.random(500) + y * 0.3
    assert auc_roc(y, s) == roc_auc_score(y, s)
    assert average_precision(y, s) == average_precision_score(y, s)
    assert math.isnan(auc_roc([False, False], [0.1, 0.2]))
    assert math.isnan(average_precision([False, False], [0.1, 0.2]))
    assert math.isnan(auc_roc([], []))


def test_card_precision_day_uses_max_score_per_card_and_divides_by_k() -> None:
    cust = ["a", "a", "b", "c", "d"]
    score = [0.9, 0.1, 0.8, 0.3, 0.5]
    fraud = [False, True, False, True, False]
    # per card: a 0.9 (compromised: its other transaction), b 0.8, d 0.5, c 0.3 (compromised)
    assert card_precision_top_k_day(cust, score, fraud, 2) == (["a"], 0.5)
    found, p = card_precision_top_k_day(cust, score, fraud, 3)
    assert found == ["a"] and p == pytest.approx(1 / 3)
    # fewer cards than k: still divided by k, as the handbook does
    found, p = card_precision_top_k_day(cust, score, fraud, 5)
    assert set(found) == {"a", "c"} and p == pytest.approx(0.4)
    assert card_precision_top_k_day([], [], [], 5) == ([], 0.0)
    with pytest.raises(ValueError):
        card_precision_top_k_day(cust, score, fraud, 0)


def test_card_precision_removes_cards_detected_on_earlier_days() -> None:
    day = [0, 0, 0, 1, 1, 1]
    cust = [1, 2, 3, 1, 2, 3]
    score = [0.9, 0.5, 0.1, 0.9, 0.5, 0.4]
    fraud = [True, False, False, True, False, True]
    nb, per_day, mean = card_precision_top_k(day, cust, score, fraud, 1)
    # day 0: card 1 detected; day 1: card 1 removed, top-1 is card 2 (genuine)
    assert per_day == [1.0, 0.0] and mean == 0.5
    assert nb == [1, 1]  # compromised cards left each day: {1}, then {3}
    _, per_day_kept, _ = card_precision_top_k(day, cust, score, fraud, 1, remove_detected=False)
    assert per_day_kept == [1.0, 1.0]


def test_known_frauds_are_dropped_from_the_right_days() -> None:
    # customer 1: fraud on T-14 (first day of the training week): known for the whole week
    # customer 2: fraud on T-15, before the training week: never known (handbook)
    # customer 3: fraud on T-6: known from test day T+2 (T-6 <= T+2-8)
    # customer 4: fraud on T-7 (delay week): known from T+1
    # customer 5: fraud on T+3 itself: known only from T+11, outside the week
    history = rows_at([-14, -15, -6, -7, 3], [1, 2, 3, 4, 5], [True] * 5)
    week_days = [d for d in range(7) for _ in range(5)]
    week_customers = [1, 2, 3, 4, 5] * 7
    week = rows_at(week_days, week_customers, [False] * 35)
    rows = concat(history, week)
    for rule in ("handbook", "label_time"):
        mask = handbook_test_mask(rows, T, rule=rule)
        pairs = zip(rows.day[mask], rows.customer[mask], strict=True)
        kept = {(int(d) - T_DAY, c) for d, c in pairs}
        expected = {(0, 2), (0, 3), (0, 4), (0, 5), (1, 2), (1, 3), (1, 5)}
        expected |= {(d, c) for d in range(2, 7) for c in (2, 5)}
        assert kept == expected, rule
    # nothing before the test week is kept; customer 5's fraud of T+3 is itself a test row
    assert list(handbook_test_mask(rows, T)[: len(history)]) == [False] * 4 + [True]


def test_label_time_rule_follows_late_labels() -> None:
    rows = rows_at([-10, 0, 1, 2], [7, 7, 7, 7], [True, False, False, False])
    late = ScoredTransactions(
        transaction_id=rows.transaction_id,
        time=rows.time,
        customer=rows.customer,
        score=rows.score,
        fraud=rows.fraud,
        # the fraud's label came 11.5 days later, during test day T+1 (noon)
        label_time=rows.time + np.array([11.0, 7, 7, 7]) * SECONDS_PER_DAY,
    )
    mask = handbook_test_mask(late, T, rule="label_time")
    assert list(mask) == [False, True, True, False]
    assert list(handbook_test_mask(late, T)) == [False, False, False, False]
    with pytest.raises(ValueError):
        handbook_test_mask(
            ScoredTransactions.from_columns([1], [0.0], [1], [0.1], [False]), T, rule="label_time"
        )


def concat(a: ScoredTransactions, b: ScoredTransactions) -> ScoredTransactions:
    assert a.label_time is not None and b.label_time is not None
    return ScoredTransactions(
        transaction_id=np.concatenate([a.transaction_id, b.transaction_id + len(a)]),
        time=np.concatenate([a.time, b.time]),
        customer=np.concatenate([a.customer, b.customer]),
        score=np.concatenate([a.score, b.score]),
        fraud=np.concatenate([a.fraud, b.fraud]),
        label_time=np.concatenate([a.label_time, b.label_time]),
    )


# --- the handbook's code, transcribed on pandas (TX_TIME_DAYS, CUSTOMER_ID, TX_FRAUD, predictions)


def hb_get_test_set(df: pd.DataFrame, start_training_day: int) -> pd.DataFrame:
    delta_train = delta_delay = delta_test = 7
    train = df[(df.TX_TIME_DAYS >= start_training_day)
               & (df.TX_TIME_DAYS < start_training_day + delta_train)]
    known = set(train[train.TX_FRAUD == 1].CUSTOMER_ID)
    start = train.TX_TIME_DAYS.min()
    parts = []
    for day in range(delta_test):
        test_day = df[df.TX_TIME_DAYS == start + delta_train + delta_delay + day]
        delay_day = df[df.TX_TIME_DAYS == start + delta_train + day - 1]
        known = known.union(set(delay_day[delay_day.TX_FRAUD == 1].CUSTOMER_ID))
        parts.append(test_day[~test_day.CUSTOMER_ID.isin(known)])
    return pd.concat(parts)


def hb_card_precision_top_k(df: pd.DataFrame, top_k: int) -> float:
    detected: list[int] = []
    per_day = []
    for day in sorted(df.TX_TIME_DAYS.unique()):
        d = df[df.TX_TIME_DAYS == day][["predictions", "CUSTOMER_ID", "TX_FRAUD"]]
        d = d[~d.CUSTOMER_ID.isin(detected)]
        d = d.groupby("CUSTOMER_ID").max().sort_values(by="predictions", ascending=False)
        top = d.reset_index(drop=False).head(top_k)
        found = list(top[top.TX_FRAUD == 1].CUSTOMER_ID)
        per_day.append(len(found) / top_k)
        detected.extend(found)
    return float(np.mean(per_day))


def test_week_metrics_equal_the_handbook_code_on_random_data() -> None:
    rng = np.random.default_rng(7)
    n = 30_000
    days = rng.integers(T_DAY - 20, T_DAY + 28, n)
    time = days * SECONDS_PER_DAY + rng.integers(0, SECONDS_PER_DAY, n)
    customer = rng.integers(0, 800, n)
    fraud = rng.random(n) < 0.02
    score = rng.random(n) + fraud * rng.random(n)  # continuous: no ties in the card ranking
    rows = ScoredTransactions.from_columns(range(n), time, customer, score, fraud)
    df = pd.DataFrame({"TX_TIME_DAYS": days, "CUSTOMER_ID": customer,
                       "TX_FRAUD": fraud.astype(int), "predictions": score})
    weeks = [T, T + timedelta(days=7)]
    summary = evaluate_weeks(rows, weeks, top_k=20)
    for w, got in zip(weeks, summary.weeks, strict=True):
        test = hb_get_test_set(df, day_number(w) - 14)
        assert got.n_tx == len(test) and got.n_fraud == int(test.TX_FRAUD.sum())
        assert got.auc_roc == roc_auc_score(test.TX_FRAUD, test.predictions)
        assert got.average_precision == average_precision_score(test.TX_FRAUD, test.predictions)
        assert got.card_precision == pytest.approx(hb_card_precision_top_k(test, 20), abs=1e-12)
        assert [d.day for d in got.days] == [w + timedelta(days=i) for i in range(7)]
        assert sum(d.n_tx for d in got.days) == got.n_tx
    assert summary.auc_roc == pytest.approx(np.mean([w.auc_roc for w in summary.weeks]))
    assert summary.card_precision > 0.05  # the scores carry signal: the test is not vacuous


def test_week_metrics_directly_and_daily_curves() -> None:
    rng = np.random.default_rng(3)
    n = 5_000
    time = (T_DAY + rng.integers(0, 7, n)) * SECONDS_PER_DAY + rng.integers(0, 86_400, n)
    fraud = rng.random(n) < 0.05
    rows = ScoredTransactions.from_columns(
        range(n), time, rng.integers(0, 300, n), rng.random(n) + fraud, fraud
    )
    week = week_metrics(rows, T, top_k=10)
    assert week.n_tx == n and week.auc_roc > 0.9
    daily = daily_metrics(rows, top_k=10)
    assert len(daily) == 7 and sum(d.n_fraud for d in daily) == int(fraud.sum())
    assert all(0.0 <= d.card_precision <= 1.0 for d in daily)


def test_unscored_rows_may_give_context_but_not_be_tested() -> None:
    # the fraud of T-10 is known from the first test day although it was never scored
    rows = rows_at([-10, 0, 0], [7, 7, 8], [True, False, True])
    context = ScoredTransactions(
        transaction_id=rows.transaction_id,
        time=rows.time,
        customer=rows.customer,
        score=np.array([np.nan, 0.2, 0.9]),
        fraud=rows.fraud,
    )
    week = week_metrics(context, T)
    assert (week.n_tx, week.n_fraud) == (1, 1)  # only customer 8's transaction is tested
    unscored = ScoredTransactions(
        transaction_id=rows.transaction_id,
        time=rows.time,
        customer=rows.customer,
        score=np.array([0.1, 0.2, np.nan]),  # customer 8 is tested and unscored
        fraud=rows.fraud,
    )
    with pytest.raises(ValueError, match="unscored"):
        week_metrics(unscored, T)


def test_columns_must_have_one_length_and_days_need_aware_datetimes() -> None:
    with pytest.raises(ValueError):
        ScoredTransactions.from_columns([1, 2], [0.0], [1], [0.1], [False])
    from datetime import datetime

    with pytest.raises(ValueError):
        day_number(datetime(2018, 8, 8))  # noqa: DTZ001 - the naive datetime is the point
    assert HANDBOOK_TEST_WEEKS[0] == T and day_number(T) == 17_751
