"""Speed of the two halves of vigie_featureset on the handbook's simulated data.

- ``compute_offline`` on the full default data set (5,000 customers, 10,000 terminals, 183 days),
  against a baseline measured in the same run: the handbook's own three customer windows
  (groupby + rolling) alone.
- ``complete()`` µs per call (p50 / p99) on states built from a smaller world, with and without
  ``EntityState.from_bytes`` of the four states (what inference pays per transaction when it reads
  them from Redis).

Run: ``.venv/bin/python libs/featureset/bench/featureset_speed.py [--days 183] [--skip-offline]``
"""

from __future__ import annotations

import argparse
import time
from datetime import timedelta

import numpy as np
import pandas as pd  # type: ignore[import-untyped]  # no pandas-stubs in the workspace yet

from vigie_contracts.events.features import EntityType
from vigie_featureset import (
    EntityState,
    LabelFact,
    TxFact,
    complete,
    compute_offline,
    vector_keys,
)
from vigie_featureset.testing import OnlineReplay
from vigie_traffic.simulator import SimConfig, Simulator


def tables(config: SimConfig, days: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    parts = []
    for day in Simulator(config).days():
        if day.day >= days:
            break
        parts.append(day)
    tx_id = np.concatenate([d.tx_id for d in parts])
    time_s = np.concatenate([d.time_s for d in parts])
    customer = np.concatenate([d.customer for d in parts])
    terminal = np.concatenate([d.terminal for d in parts])
    occurred = pd.Timestamp(config.start) + pd.to_timedelta(time_s, unit="s")
    tx = pd.DataFrame({
        "transaction_id": [f"t{i:09d}" for i in tx_id],
        "customer_id": [f"c{c}" for c in customer],
        "card_token": [
            None if i % 7 == 0 else f"k{c}-{i % 2}" for i, c in zip(tx_id, customer, strict=True)
        ],
        "terminal_id": [f"T{t}" for t in terminal],
        "merchant_id": [f"M{t // 10}" for t in terminal],
        "amount_minor": np.concatenate([d.amount_cents for d in parts]),
        "occurred_at": occurred,
    })
    fraud = np.concatenate([d.fraud for d in parts])
    labels = pd.DataFrame({
        "transaction_id": tx["transaction_id"][fraud].to_numpy(),
        "fraud": True,
        "labelled_at": occurred[fraud] + pd.Timedelta(days=7),
    })
    return tx, labels


def baseline_handbook(tx: pd.DataFrame) -> None:
    df = tx.assign(when=tx["occurred_at"].dt.tz_convert(None)).sort_values("when")
    for days in (1, 7, 30):
        rolled = df.groupby("customer_id").rolling(timedelta(days=days), on="when")["amount_minor"]
        rolled.count()
        rolled.sum()


def bench_offline(days: int) -> None:
    t0 = time.perf_counter()
    tx, labels = tables(SimConfig(), days)
    t1 = time.perf_counter()
    baseline_handbook(tx)
    t2 = time.perf_counter()
    out = compute_offline(tx, labels)
    t3 = time.perf_counter()
    print(f"simulated {len(tx):,} transactions over {days} days in {t1 - t0:.1f} s")
    print(f"baseline: handbook customer windows only   {t2 - t1:7.1f} s")
    print(f"compute_offline: all {out.shape[1]} features          {t3 - t2:7.1f} s")


def bench_complete() -> None:
    tx, labels = tables(SimConfig(n_customers=500, n_terminals=1000, nb_days=40), 40)
    facts = [
        TxFact(r.transaction_id, r.customer_id,
               r.card_token if isinstance(r.card_token, str) else None,  # pandas: NaN
               r.terminal_id, r.merchant_id, None, int(r.amount_minor),
               r.occurred_at.to_pydatetime())
        for r in tx.itertuples()
    ]
    label_times = dict(zip(labels["transaction_id"], labels["labelled_at"], strict=True))
    replay = OnlineReplay()
    day = 86_400_000_000
    next_evict = facts[0].ts_us + day
    for f in facts:
        replay.apply(f)
        if f.transaction_id in label_times:  # known at once: the heaviest terminal states
            replay.apply(LabelFact(f.transaction_id, True, label_times[f.transaction_id]))
        if f.ts_us >= next_evict:  # the worker evicts; so does this
            for state in replay.states.values():
                state.evict(f.occurred_at)
            next_evict += day
    probe = facts[-2000:]
    keyed = [(f, {k: replay.states.get(k) for k in vector_keys(f)}) for f in probe]
    raw = [
        (f, {k: s.to_bytes() for k, s in states.items() if s is not None}) for f, states in keyed
    ]
    sizes = [len(b) for _, blobs in raw for b in blobs.values()]

    base, plain, decoded = [], [], []
    for (f, states), (_, blobs) in zip(keyed, raw, strict=True):
        t0 = time.perf_counter()
        TxFact(f.transaction_id, f.customer_id, f.card_token, f.terminal_id, f.merchant_id, None,
               f.amount_minor, f.occurred_at)  # baseline: building the fact alone
        t1 = time.perf_counter()
        complete(f, states)
        t2 = time.perf_counter()
        complete(f, {k: EntityState.from_bytes(b) for k, b in blobs.items()})
        t3 = time.perf_counter()
        base.append((t1 - t0) * 1e6)
        plain.append((t2 - t1) * 1e6)
        decoded.append((t3 - t2) * 1e6)
    for name, xs in (("baseline TxFact()", base), ("complete()", plain),
                     ("from_bytes x4 + complete()", decoded)):
        p50, p99 = np.percentile(xs, 50), np.percentile(xs, 99)
        print(f"{name:28s} p50 {p50:8.1f} µs   p99 {p99:8.1f} µs")
    kinds = (EntityType.CUSTOMER, EntityType.CARD, EntityType.TERMINAL, EntityType.MERCHANT)
    per = {e: np.mean([len(s.to_bytes()) for k, s in replay.states.items() if k[0] == e])
           for e in kinds}
    print("mean state bytes: " + ", ".join(f"{e.value} {v:,.0f}" for e, v in per.items()),
          f"(largest read {max(sizes):,})")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--days", type=int, default=183)
    parser.add_argument("--skip-offline", action="store_true")
    args = parser.parse_args()
    bench_complete()
    if not args.skip_offline:
        bench_offline(args.days)


if __name__ == "__main__":
    main()
