"""A handbook-scale stream: the simulator's transactions, frauds labelled 7 days later, refunds and
sessions; every transaction scored on arrival online must equal compute_offline()."""

from __future__ import annotations

from datetime import datetime, timedelta

import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # no pandas-stubs in the workspace yet

from vigie_featureset import (
    FEATURE_NAMES,
    LabelFact,
    RefundFact,
    SessionFact,
    TxFact,
    compute_offline,
)
from vigie_featureset.testing import Fact, OnlineReplay, frames
from vigie_traffic.simulator import SimConfig, Simulator

DAYS = 20


def simulated_stream() -> list[tuple[int, int, Fact]]:
    config = SimConfig(n_customers=500, n_terminals=1000, nb_days=40)
    rng = np.random.default_rng(7)
    events: list[tuple[int, int, Fact]] = []  # (time µs, rank: not-a-transaction first, fact)
    for day in Simulator(config).days():
        if day.day >= DAYS:
            break
        occurred = pd.Timestamp(config.start) + pd.to_timedelta(day.time_s, unit="s")
        for i in range(len(day)):
            tid, customer = int(day.tx_id[i]), int(day.customer[i])
            at = occurred[i].to_pydatetime()
            fact = TxFact(
                transaction_id=f"t{tid:08d}",
                customer_id=f"c{customer}",
                card_token=None if tid % 7 == 0 else f"k{customer}-{tid % 2}",
                terminal_id=f"T{int(day.terminal[i])}",
                merchant_id=f"M{int(day.terminal[i]) // 10}",
                device_id=None,
                amount_minor=int(day.amount_cents[i]),
                occurred_at=at,
            )
            events.append((fact.ts_us, 1, fact))
            if day.fraud[i]:
                label = LabelFact(fact.transaction_id, True, at + timedelta(days=7))
                events.append((fact.ts_us + 7 * 86_400_000_000, 0, label))
            if rng.random() < 0.03:
                refund = RefundFact(f"r{tid}", fact.transaction_id, fact.customer_id,
                                    at + timedelta(hours=int(rng.integers(1, 72))), 100)
                events.append((int(pd.Timestamp(refund.created_at).value // 1000), 0, refund))
            if rng.random() < 0.05:
                session = SessionFact(f"s{tid}", fact.customer_id,
                                      at - timedelta(minutes=int(rng.integers(0, 90))),
                                      int(rng.integers(0, 3)))
                events.append((int(pd.Timestamp(session.ended_at).value // 1000), 0, session))
    events.sort(key=lambda e: (e[0], e[1], getattr(e[2], "transaction_id", "")))
    return events


def test_simulated_days_online_equals_offline() -> None:
    events = simulated_stream()
    facts = [f for _, _, f in events]
    expected = compute_offline(*frames(facts))

    replay = OnlineReplay()
    online: dict[str, list[float]] = {}
    next_evict = events[0][0] + 86_400_000_000
    for at, _, fact in events:
        if isinstance(fact, TxFact):
            online[fact.transaction_id] = list(replay.vector(fact).values())
        replay.apply(fact)
        if at >= next_evict:  # a daily eviction, as the worker's would be
            for state in replay.states.values():
                state.evict(fact_time(fact))
            next_evict += 86_400_000_000

    assert len(online) == len(expected) > 20_000
    got = pd.DataFrame.from_dict(online, orient="index", columns=list(FEATURE_NAMES))
    got = got.loc[expected.index].to_numpy()
    want = expected.to_numpy()
    close = np.isclose(got, want, rtol=1e-9, atol=1e-12)
    if not close.all():
        row, col = np.argwhere(~close)[0]
        raise AssertionError(
            f"{int((~close).sum())} values differ; first: {expected.index[row]} "
            f"{FEATURE_NAMES[col]} online {got[row, col]!r} offline {want[row, col]!r}"
        )
    # The stream exercised what it should: frauds known to terminals, refunds, sessions.
    assert (want[:, FEATURE_NAMES.index("terminal_risk_7d")] > 0).sum() > 50
    assert (want[:, FEATURE_NAMES.index("customer_refund_ratio_30d")] > 0).sum() > 100
    assert (want[:, FEATURE_NAMES.index("customer_sessions_1h")] > 0).sum() > 100


def fact_time(fact: Fact) -> datetime:
    if isinstance(fact, TxFact):
        return fact.occurred_at
    if isinstance(fact, LabelFact):
        return fact.labelled_at
    if isinstance(fact, RefundFact):
        return fact.created_at
    return fact.ended_at
