"""Each feature's definition on small hand-made cases, online and offline alike."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from vigie_contracts.events.features import EntityType
from vigie_featureset import (
    FEATURE_NAMES,
    FEATURES,
    HANDBOOK_FEATURES,
    EntityState,
    LabelFact,
    RefundFact,
    SessionFact,
    TxFact,
    UnknownFeature,
    complete,
    compute_offline,
    entity_values,
    entity_view_values,
    feature,
    vector_keys,
    views,
)
from vigie_featureset.testing import Fact, OnlineReplay, frames

T = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)  # a Tuesday, noon
DAY, HOUR = timedelta(days=1), timedelta(hours=1)


def tx(tid: str, at: datetime, amount: int = 1_000, *, customer: str = "c1",
       card: str | None = "k1", terminal: str = "T1", merchant: str = "M1") -> TxFact:
    return TxFact(tid, customer, card, terminal, merchant, None, amount, at)


def both(facts: Sequence[Fact], target: TxFact) -> dict[str, float]:
    """The target's vector online (scored after everything was applied) and offline, which must
    agree; returns it."""
    replay = OnlineReplay()
    for f in facts:
        replay.apply(f)
    online = replay.vector(target)
    offline = compute_offline(*frames(facts)).loc[target.transaction_id]
    for name in FEATURE_NAMES:
        assert math.isclose(online[name], float(offline[name]), rel_tol=1e-9, abs_tol=1e-12), name
    return online


def test_registry_names_and_order() -> None:
    assert HANDBOOK_FEATURES == (
        "amount", "during_weekend", "during_night",
        "customer_nb_tx_1d", "customer_avg_amount_1d", "customer_nb_tx_7d",
        "customer_avg_amount_7d", "customer_nb_tx_30d", "customer_avg_amount_30d",
        "terminal_nb_tx_1d", "terminal_risk_1d", "terminal_nb_tx_7d", "terminal_risk_7d",
        "terminal_nb_tx_30d", "terminal_risk_30d",
    )
    assert tuple(f.name for f in FEATURES[:15]) == HANDBOOK_FEATURES
    assert len(set(FEATURE_NAMES)) == len(FEATURES) == 36
    assert feature("terminal_risk_7d").delay == timedelta(days=7)
    assert feature("terminal_risk_7d").window == timedelta(days=7)
    assert feature("card_nb_tx_1h").entity is EntityType.CARD
    with pytest.raises(UnknownFeature):
        feature("nope")
    assert "merchant_risk_30d" in views(EntityType.MERCHANT)["merchant_risk"]
    assert views(EntityType.DEVICE) == {}


def test_amount_weekend_and_night() -> None:
    cases = [
        (datetime(2026, 3, 14, 6, 59, 59, tzinfo=UTC), 1.0, 1.0),  # Saturday, hour 6
        (datetime(2026, 3, 15, 23, 0, tzinfo=UTC), 1.0, 0.0),  # Sunday night, hour 23
        (datetime(2026, 3, 13, 7, 0, tzinfo=UTC), 0.0, 0.0),  # Friday 07:00
        (datetime(2026, 3, 16, 0, 0, tzinfo=UTC), 0.0, 1.0),  # Monday midnight
    ]
    for at, weekend, night in cases:
        target = tx("a", at, 12_345)
        v = both([target], target)
        assert (v["amount"], v["during_weekend"], v["during_night"]) == (123.45, weekend, night)


def test_customer_window_edges() -> None:
    old = tx("a", T - DAY, 1_000)  # exactly t - 1d: out of 1d, in 7d
    mid = tx("b", T - DAY + timedelta(microseconds=1), 3_000)  # just inside 1d
    far = tx("c", T - timedelta(days=30), 5_000)  # exactly t - 30d: out of everything
    target = tx("d", T, 2_000)
    v = both([far, old, mid, target], target)
    assert v["customer_nb_tx_1d"] == 2.0 and v["customer_avg_amount_1d"] == 25.0
    assert v["customer_nb_tx_7d"] == 3.0 and v["customer_avg_amount_7d"] == 20.0
    assert v["customer_nb_tx_30d"] == 3.0
    assert v["customer_nb_tx_1h"] == 1.0 and v["customer_avg_amount_1h"] == 20.0
    assert v["customer_amount_ratio_30d"] == 1.0
    assert v["customer_seconds_since_previous"] == DAY.total_seconds() - 1e-6


def test_amount_against_the_customers_month() -> None:
    earlier = [
        tx("e", T - 31 * DAY, 90_000),  # outside the 30 days
        tx("a1", T - 20 * DAY, 1_000),
        tx("a2", T - 19 * DAY, 1_000),
        tx("a3", T - 18 * DAY, 1_000),
        tx("b", T - 7 * DAY, 6_000),  # in the 30 days, on the 7-day edge: not a recent high
        tx("c", T - 5 * DAY, 6_000),  # a recent high: above 3x the median (10.00)
        tx("d", T - HOUR, 1_000),
        tx("f", T - 2 * DAY, 90_000, customer="c2"),  # another customer's
    ]
    target = tx("g", T, 2_000)
    v = both([*earlier, target], target)
    month = [10.0, 10.0, 10.0, 60.0, 60.0, 10.0, 20.0]
    assert v["customer_amount_median_ratio_30d"] == 2.0
    zscore = (20.0 - statistics.fmean(month)) / statistics.pstdev(month)
    assert v["customer_amount_zscore_30d"] == pytest.approx(zscore, rel=1e-12)
    assert v["customer_high_amounts_7d"] == 1.0
    # The scored transaction is not one of its own earlier highs; the same amounts: no spread.
    same = [tx(f"s{i}", T - i * DAY, 1_000) for i in (3, 2, 1)]
    high = tx("h", T, 50_000)
    v = both([*same, high], high)
    assert (v["customer_high_amounts_7d"], v["customer_amount_median_ratio_30d"]) == (0.0, 50.0)
    flat = tx("h", T, 1_000)
    assert both([*same, flat], flat)["customer_amount_zscore_30d"] == 0.0


def test_ties_at_the_same_time_are_ordered_by_id() -> None:
    a, b = tx("tx-a", T, 1_000), tx("tx-b", T, 3_000)
    # Either way round, "a" does not see "b" and "b" sees "a".
    for facts in ([a, b], [b, a]):
        assert both(facts, a)["customer_nb_tx_1h"] == 1.0
        vb = both(facts, b)
        assert vb["customer_nb_tx_1h"] == 2.0 and vb["customer_avg_amount_1h"] == 20.0
        assert vb["customer_seconds_since_previous"] == 0.0
        assert vb["card_nb_tx_1h"] == 2.0


def test_duplicates_count_once() -> None:
    a = tx("a", T - HOUR / 2)
    target = tx("b", T)
    v = both([a, a, target, target], target)
    assert v["customer_nb_tx_1h"] == 2.0 and v["card_nb_tx_1d"] == 2.0


def test_previous_transaction_gap_and_its_cap() -> None:
    target = tx("b", T)
    assert both([target], target)["customer_seconds_since_previous"] == 30 * 86_400.0
    long_ago = tx("a", T - timedelta(days=45))
    assert both([long_ago, target], target)["customer_seconds_since_previous"] == 30 * 86_400.0
    recent = tx("a", T - timedelta(seconds=90))
    assert both([recent, target], target)["customer_seconds_since_previous"] == 90.0


def test_distinct_terminals_and_merchants_over_a_day() -> None:
    facts: list[Fact] = [
        tx("a", T - DAY, terminal="T9", merchant="M9"),  # edge: out
        tx("b", T - 2 * HOUR, terminal="T2", merchant="M1"),
        tx("c", T - HOUR, terminal="T2", merchant="M2"),
    ]
    target = tx("d", T, terminal="T3", merchant="M1")
    v = both([*facts, target], target)
    assert v["customer_distinct_terminals_1d"] == 2.0  # T2, T3
    assert v["customer_distinct_merchants_1d"] == 2.0  # M1, M2


def test_cards() -> None:
    other_card = tx("a", T - HOUR / 2, card="k2")
    same_card_old = tx("b", T - DAY + timedelta(seconds=1), 4_000)
    target = tx("c", T, 2_000)
    v = both([other_card, same_card_old, target], target)
    assert (v["card_nb_tx_1h"], v["card_nb_tx_1d"], v["card_avg_amount_1d"]) == (1.0, 2.0, 30.0)
    for card in (None, "", "0"):
        no_card = tx("n", T, card=card)
        v = both([same_card_old, no_card], no_card)
        assert (v["card_nb_tx_1h"], v["card_nb_tx_1d"], v["card_avg_amount_1d"]) == (0, 0, 0)
        assert (EntityType.CARD, card) not in vector_keys(no_card)


def test_terminal_delay_edges_and_label_times() -> None:
    d = timedelta(days=7)
    at_edge = tx("a", T - d, customer="x")  # t - d: inside every delayed window
    too_recent = tx("b", T - d + timedelta(seconds=1), customer="x")  # inside the delay: never
    at_1d_start = tx("c", T - d - DAY, customer="x")  # t - (d + 1d): out of 1d, in 7d
    at_30d_start = tx("e", T - d - timedelta(days=30), customer="x")  # out of all
    facts: list[Fact] = [at_30d_start, at_1d_start, at_edge, too_recent]
    labels = [
        LabelFact("a", True, T),  # known exactly at t: counts
        LabelFact("c", True, T + timedelta(seconds=1)),  # known after t: not yet
        LabelFact("c", False, T - DAY),  # genuine labels change nothing
        LabelFact("e", True, T - DAY),
    ]
    target = tx("z", T, customer="y")
    v = both([*facts, *labels, target], target)
    assert (v["terminal_nb_tx_1d"], v["terminal_risk_1d"]) == (1.0, 1.0)
    assert (v["terminal_nb_tx_7d"], v["terminal_risk_7d"]) == (2.0, 0.5)
    assert (v["terminal_nb_tx_30d"], v["terminal_risk_30d"]) == (2.0, 0.5)
    assert (v["merchant_nb_tx_7d"], v["merchant_risk_7d"]) == (2.0, 0.5)
    # A later, earlier-dated fraud label on "c" makes it count.
    v = both([*facts, *labels, LabelFact("c", True, T - HOUR), target], target)
    assert v["terminal_risk_7d"] == 1.0
    # No transaction in the window: risk 0.
    lonely = tx("z", T, terminal="T7", merchant="M7")
    assert both([*facts, lonely], lonely)["terminal_risk_30d"] == 0.0


def test_refunds_and_sessions() -> None:
    facts: list[Fact] = [
        tx("a", T - 2 * DAY),
        RefundFact("r0", "a", "c1", T - timedelta(days=30), 100),  # edge: out
        RefundFact("r1", "a", "c1", T, 100),  # at t: in
        RefundFact("r1", "a", "c1", T, 100),  # duplicate
        RefundFact("r2", "a", "c2", T, 100),  # someone else's
        SessionFact("s0", "c1", T - HOUR, 5),  # edge: out
        SessionFact("s1", "c1", T - HOUR + timedelta(seconds=1), 2),
        SessionFact("s2", "c1", T, 1),
        SessionFact("s3", "c1", T + timedelta(seconds=1), 7),  # after t: out
    ]
    target = tx("b", T)
    v = both([*facts, target], target)
    assert v["customer_refund_ratio_30d"] == 0.5  # 1 refund / 2 transactions
    assert (v["customer_sessions_1h"], v["customer_failed_logins_1h"]) == (2.0, 3.0)


def test_entity_values_match_the_vector_of_the_latest_transaction() -> None:
    facts: list[Fact] = [
        tx("a", T - 3 * DAY, 700, terminal="T2"),
        tx("b", T - HOUR, 900, card="k2"),
        SessionFact("s", "c1", T - HOUR / 2, 1),
        RefundFact("r", "a", "c1", T - DAY, 50),
    ]
    last = tx("c", T, 1_100)
    replay = OnlineReplay()
    for f in [*facts, last]:
        replay.apply(f)
    vector = replay.vector(last)
    customer = replay.states[(EntityType.CUSTOMER, "c1")]
    stored = entity_values(EntityType.CUSTOMER, customer)
    assert len(stored) == 14
    for name, value in stored.items():
        assert value == vector[name], name
    by_view = entity_view_values(EntityType.CUSTOMER, customer)
    assert set(by_view) == {"customer_windows", "customer_clickstream"}
    assert by_view["customer_clickstream"] == {
        "customer_sessions_1h": 1.0, "customer_failed_logins_1h": 1.0
    }
    card = entity_values(EntityType.CARD, replay.states[(EntityType.CARD, "k1")], T)
    assert card == {"card_nb_tx_1h": 1.0, "card_nb_tx_1d": 1.0, "card_avg_amount_1d": 11.0}
    terminal = replay.states[(EntityType.TERMINAL, "T2")]
    risk = entity_values(EntityType.TERMINAL, terminal, T + timedelta(days=7))
    assert risk["terminal_nb_tx_7d"] == 1.0 and risk["terminal_risk_7d"] == 0.0
    # Before anything happened, and for entities without features.
    assert entity_values(EntityType.CUSTOMER, EntityState(EntityType.CUSTOMER))[
        "customer_seconds_since_previous"
    ] == 30 * 86_400.0
    assert entity_values(EntityType.DEVICE, EntityState(EntityType.DEVICE)) == {}


def test_complete_without_any_state_is_a_first_transaction() -> None:
    target = tx("a", T, 5_000)
    v = complete(target, {})
    assert v["customer_nb_tx_30d"] == 1.0 and v["customer_avg_amount_30d"] == 50.0
    assert v["terminal_nb_tx_30d"] == 0.0 and v["card_nb_tx_1d"] == 1.0
    assert list(v) == list(FEATURE_NAMES)


def test_pending_fills_a_lagging_state() -> None:
    earlier = [tx("a", T - 2 * HOUR, 1_000), tx("b", T - HOUR, 2_000)]
    later = tx("z", T + HOUR)
    target = tx("c", T, 3_000)
    lagging = OnlineReplay()
    lagging.apply(earlier[0])
    exact = both([*earlier, target], target)
    # The state lacks "b"; the caller passes it, plus things complete() must ignore.
    v = lagging.vector(target, pending=[earlier[0], earlier[1], earlier[1], target, later])
    assert v == exact
    assert v["customer_nb_tx_1d"] == 3.0 and v["card_nb_tx_1d"] == 3.0
