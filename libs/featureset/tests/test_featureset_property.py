"""Online (EntityState + complete) == offline (pandas) on random streams, whatever the timing."""

from __future__ import annotations

import math
import random
from datetime import UTC, datetime, timedelta

import pandas as pd  # type: ignore[import-untyped]  # no pandas-stubs in the workspace yet
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vigie_featureset import (
    FEATURE_NAMES,
    LabelFact,
    RefundFact,
    SessionFact,
    TxFact,
    compute_offline,
)
from vigie_featureset.testing import Fact, OnlineReplay, frames

BASE = datetime(2026, 3, 6, tzinfo=UTC)  # a Friday: weekends and nights inside the range

# An hour grid hits the window edges exactly (t - 1h, t - 1d, t - 7d, t - d - n); a few odd
# seconds / microseconds keep it honest off the grid.
offsets = st.tuples(st.integers(0, 40 * 24), st.sampled_from([0, 0, 0, 1, 1_800, 59])).map(
    lambda hs: timedelta(hours=hs[0], seconds=hs[1])
)


@st.composite
def streams(draw: st.DrawFn) -> list[Fact]:
    n = draw(st.integers(1, 28))
    facts: list[Fact] = []
    txs: list[TxFact] = []
    for i in range(n):
        customer = draw(st.sampled_from(["c1", "c2"]))
        card = draw(st.sampled_from([None, "k1", "k2", "0"]))
        tx = TxFact(
            transaction_id=f"tx{draw(st.integers(0, 999)):03d}-{i}",
            customer_id=customer,
            # A card belongs to one customer (pending transactions are the customer's).
            card_token=f"{customer}-{card}" if card in ("k1", "k2") else card,
            terminal_id=draw(st.sampled_from(["T1", "T2", "T3"])),
            merchant_id=draw(st.sampled_from(["M1", "M2"])),
            device_id=None,
            amount_minor=draw(st.integers(0, 50_000)),
            occurred_at=BASE + draw(offsets),
        )
        txs.append(tx)
        facts.append(tx)
        if draw(st.booleans()):
            facts.append(tx)  # a duplicate delivery
    for tx in draw(st.lists(st.sampled_from(txs), max_size=12)):
        hours, seconds = draw(st.integers(0, 12 * 24)), draw(st.sampled_from([0, 1]))
        delay = timedelta(hours=hours, seconds=seconds)
        facts.append(LabelFact(tx.transaction_id, draw(st.booleans()), tx.occurred_at + delay))
    for j in range(draw(st.integers(0, 5))):
        customer = draw(st.sampled_from(["c1", "c2"]))
        at = BASE + draw(offsets)
        facts.append(RefundFact(f"r{j}", txs[0].transaction_id, customer, at, 100))
    for j in range(draw(st.integers(0, 5))):
        customer = draw(st.sampled_from(["c1", "c2"]))
        facts.append(SessionFact(f"s{j}", customer, BASE + draw(offsets), draw(st.integers(0, 3))))
    seed = draw(st.integers(0, 2**32))
    random.Random(seed).shuffle(facts)
    return facts


def _time(f: Fact) -> datetime:
    if isinstance(f, TxFact):
        return f.occurred_at
    if isinstance(f, LabelFact):
        return f.labelled_at
    if isinstance(f, RefundFact):
        return f.created_at
    return f.ended_at


def _in_time_order(facts: list[Fact]) -> list[Fact]:
    # The stream order: ties broken by what is not a transaction first (it counts at t), then
    # transactions by id. Scoring on arrival can only see what arrived before.
    def key(f: Fact) -> tuple[datetime, bool, str]:
        return _time(f), isinstance(f, TxFact), f.transaction_id if isinstance(f, TxFact) else ""

    return sorted(facts, key=key)


def _check(expected: pd.DataFrame, tx: TxFact, got: dict[str, float], how: str) -> None:
    assert list(got) == list(FEATURE_NAMES)
    row = expected.loc[tx.transaction_id]
    for name in FEATURE_NAMES:
        want = float(row[name])
        assert math.isclose(got[name], want, rel_tol=1e-9, abs_tol=1e-12), (
            f"{how}: {tx.transaction_id} {name}: online {got[name]!r} != offline {want!r}"
        )


def _unique_txs(facts: list[Fact]) -> list[TxFact]:
    seen: dict[str, TxFact] = {}
    for f in facts:
        if isinstance(f, TxFact):
            seen.setdefault(f.transaction_id, f)
    return list(seen.values())


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(streams(), st.integers(1, 3))
def test_online_equals_offline(facts: list[Fact], lag: int) -> None:
    expected = compute_offline(*frames(facts))
    assert len(expected) == len(_unique_txs(facts))
    ordered = _in_time_order(facts)

    # 1. scored on arrival, with the state as it was just before (the inference view).
    live = OnlineReplay()
    scored: set[str] = set()
    for f in ordered:
        if isinstance(f, TxFact) and f.transaction_id not in scored:
            scored.add(f.transaction_id)
            _check(expected, f, live.vector(f), "on arrival")
        live.apply(f)

    # 2. scored after everything was applied: later transactions are in the state.
    for tx in _unique_txs(facts):
        _check(expected, tx, live.vector(tx), "after all")

    # 3. customer/card states lag by `lag` transactions; inference passes them as pending.
    lagging = OnlineReplay(lag_customer=lag)
    for f in ordered:
        lagging.apply(f)
        if isinstance(f, TxFact):
            _check(expected, f, lagging.vector(f, lagging.pending(f.customer_id)), "lagging")

    # 4. applied in any order (within a generous lateness), then scored.
    shuffled = OnlineReplay(lateness=timedelta(days=400))
    for f in facts:
        shuffled.apply(f)
    for tx in _unique_txs(facts):
        _check(expected, tx, shuffled.vector(tx), "shuffled")
