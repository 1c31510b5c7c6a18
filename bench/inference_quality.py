"""services/inference: model quality on the handbook's test weeks (issue 9), and model speed.

    .venv/bin/python bench/inference_quality.py                       # full default stream
    .venv/bin/python bench/inference_quality.py --days 70 --customers 1000 --terminals 2000
    .venv/bin/python bench/inference_quality.py --models logreg,arf --pvs logreg --per-day

1. simulates the traffic generator's stream (``vigie_traffic.simulator``, default: the handbook's
   5,000 customers, 10,000 terminals, 183 days from 2018-04-01, seed 0), or with ``--handbook``
   the handbook's own data set (``vigie_traffic.handbook``: the draw its published results, and so
   the bar, were measured on), with the traffic tool's merchants and one card per customer; every
   label arrives 7 days after its transaction;
2. computes every registry feature with ``vigie_featureset.compute_offline`` (the definitions the
   features and inference services share), optionally cached (``--cache``);
3. for each model kind, the service's loop: transactions in (time, id) order, each scored before
   its own label exists, and before each transaction every label whose time has come is learned
   (fraud or genuine, in label-time order). Only the evaluated days are scored unless
   ``--score-all`` (scoring does not change a model's state; the service scores everything);
4. ``--pvs KINDS``: the same kinds, fresh, through ``river.evaluate.iter_progressive_val_score``
   (``moment`` = event time, ``delay`` = 7 days) on the same events; prints the largest score
   difference against step 3 (0.0 = the service loop loses nothing) and its metrics;
5. prints per test week and mean AUC ROC, average precision and card precision@100 computed as the
   handbook does (``vigie_evaluation``), the bar of issue 9, µs per learn / predict
   call through the ``FraudModel`` interface (wall clock; dict building excluded) and the size
   of the model's checkpoint at the end.
"""

from __future__ import annotations

import argparse
import math
import time
from collections import deque
from collections.abc import Hashable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd  # type: ignore[import-untyped]  # no pandas-stubs in the workspace yet
from river import evaluate, metrics

from vigie_evaluation import (
    HANDBOOK_TEST_WEEKS,
    SECONDS_PER_DAY,
    ScoredTransactions,
    Summary,
    day_number,
    evaluate_weeks,
)
from vigie_featureset import compute_offline
from vigie_inference.model import KINDS, RiverModel, build_model
from vigie_traffic.handbook import handbook_days
from vigie_traffic.plan import simulator_world
from vigie_traffic.simulator import SimConfig, Simulator

DELAY_S = 7 * SECONDS_PER_DAY
BAR = (0.875, 0.694, 0.304)
BASELINE = "logreg"


@dataclass(frozen=True, slots=True)
class Stream:
    """The simulated transactions in processing order, with their feature matrix."""

    time: npt.NDArray[np.int64]  # epoch seconds
    customer: npt.NDArray[np.int64]
    fraud: npt.NDArray[np.bool_]
    features: pd.DataFrame  # one row per transaction, in the same order

    @property
    def day(self) -> npt.NDArray[np.int64]:
        return self.time // SECONDS_PER_DAY


def simulate(config: SimConfig, cache: Path | None, *, handbook: bool = False) -> Stream:
    if cache is not None and cache.exists():
        frame = pd.read_parquet(cache)
        print(f"features: read {len(frame):,} rows from {cache}")
    else:
        t0 = time.perf_counter()
        sim = Simulator(config)
        days = list(handbook_days(config) if handbook else sim.days())
        merchant_of = np.array([t.merchant for t in simulator_world(sim, "bench").terminals])
        tx_id = np.concatenate([d.tx_id for d in days])
        seconds = np.concatenate([d.time_s for d in days]).astype(np.int64)
        customer = np.concatenate([d.customer for d in days])
        terminal = np.concatenate([d.terminal for d in days])
        fraud = np.concatenate([d.fraud for d in days])
        print(f"simulated {tx_id.size:,} transactions in {time.perf_counter() - t0:.1f} s")
        occurred = pd.Timestamp(config.start) + pd.to_timedelta(seconds, unit="s")
        # zero-padded ids: the (time, id) order of the features is the simulator's order
        ids = np.char.zfill(tx_id.astype(str), 10)
        transactions = pd.DataFrame(
            {
                "transaction_id": ids,
                "customer_id": customer.astype(str),
                "card_token": np.char.add("card-", customer.astype(str)),
                "terminal_id": terminal.astype(str),
                "merchant_id": merchant_of[terminal].astype(str),
                "amount_minor": np.concatenate([d.amount_cents for d in days]),
                "occurred_at": occurred,
            }
        )
        labels = pd.DataFrame(
            {"transaction_id": ids, "fraud": fraud, "labelled_at": occurred + timedelta(days=7)}
        )
        t0 = time.perf_counter()
        frame = compute_offline(transactions, labels)
        print(f"compute_offline: {len(frame):,} rows in {time.perf_counter() - t0:.1f} s")
        frame = frame.loc[ids]
        start_s = int(config.start.timestamp())
        frame["_time"] = seconds + start_s
        frame["_customer"] = customer
        frame["_fraud"] = fraud
        if cache is not None:
            frame.to_parquet(cache)
    return Stream(
        time=frame["_time"].to_numpy(np.int64),
        customer=frame["_customer"].to_numpy(np.int64),
        fraud=frame["_fraud"].to_numpy(np.bool_),
        features=frame.drop(columns=["_time", "_customer", "_fraud"]),
    )


def pick_weeks(stream: Stream, asked: Sequence[date] | None) -> list[date]:
    """The handbook's weeks when the stream covers them, else its last full weeks (at most 4)
    that leave two weeks of history before them."""
    first, last = int(stream.day.min()), int(stream.day.max())
    weeks = list(asked or HANDBOOK_TEST_WEEKS)
    if all(day_number(w) - 14 >= first and day_number(w) + 6 <= last for w in weeks):
        return weeks
    n = min(4, (last - first + 1 - 21) // 7)
    if n < 1:
        raise SystemExit("the stream is too short for a test week: use --days 28 or more")
    origin = date(1970, 1, 1)
    return [origin + timedelta(days=last - 7 * (n - i) + 1) for i in range(n)]


@dataclass(slots=True)
class Run:
    kind: str
    scores: npt.NDArray[np.float64]  # NaN where not scored
    learn_s: float = 0.0
    n_learn: int = 0
    predict_s: float = 0.0
    n_predict: int = 0
    wall_s: float = 0.0
    state_bytes: int = 0


def vectors(matrix: npt.NDArray[np.float64], names: Sequence[str], i: int) -> dict[str, float]:
    return dict(zip(names, matrix[i].tolist(), strict=True))


def service_loop(model: RiverModel, stream: Stream, score: npt.NDArray[np.bool_]) -> Run:
    """Score each transaction (where ``score``) before learning any label not yet due; learn each
    label at its transaction's time + 7 days, in that order, before the transactions of then."""
    names = list(model.features)
    matrix = stream.features[names].to_numpy(np.float64)
    t, y = stream.time, stream.fraud
    last = int(np.flatnonzero(score).max()) if score.any() else -1
    run = Run(model.kind, np.full(len(t), np.nan))
    pending: deque[int] = deque()
    clock = time.perf_counter
    started = clock()
    for i in range(last + 1):
        while pending and t[pending[0]] + DELAY_S <= t[i]:
            j = pending.popleft()
            x = vectors(matrix, names, j)
            s = clock()
            model.learn(x, bool(y[j]))
            run.learn_s += clock() - s
            run.n_learn += 1
        if score[i]:
            x = vectors(matrix, names, i)
            s = clock()
            run.scores[i] = model.predict_proba(x)
            run.predict_s += clock() - s
            run.n_predict += 1
        pending.append(i)
    run.wall_s = clock() - started
    run.state_bytes = len(model.to_bytes())
    return run


class _Timed(dict[Hashable, Any]):
    """A feature dict that carries its event time outside the features."""

    __slots__ = ("t",)
    t: float


def pvs_scores(kind: str, stream: Stream, seed: int) -> npt.NDArray[np.float64]:
    """River's own prequential evaluation, delay 7 days, of a fresh model of ``kind``: the
    prediction it made for each transaction, in transaction order."""
    model = build_model(kind, seed=seed)
    names = list(model.features)
    matrix = stream.features[names].to_numpy(np.float64)

    def dataset() -> Iterator[tuple[_Timed, bool]]:
        for i in range(len(stream.time)):
            x = _Timed(zip(names, matrix[i].tolist(), strict=True))
            x.t = float(stream.time[i])
            yield x, bool(stream.fraud[i])

    steps = evaluate.iter_progressive_val_score(
        dataset=dataset(),
        model=model.estimator,
        metric=metrics.ROCAUC(),  # type: ignore[no-untyped-call]  # river leaves it untyped
        moment=lambda x: x.t,
        delay=DELAY_S,
        yield_predictions=True,
    )
    # A constant delay releases the labels first in, first out: the i-th answer is transaction i.
    out = np.array([float(step["Prediction"].get(True, 0.0)) for step in steps])
    return out


def rows_of(
    stream: Stream, scores: npt.NDArray[np.float64], weeks: Sequence[date]
) -> ScoredTransactions:
    """Every transaction from two weeks before the first test week (the known frauds come from
    them, scored or not) to the end of the last."""
    lo, hi = day_number(weeks[0]) - 14, day_number(weeks[-1]) + 7
    m = (stream.day >= lo) & (stream.day < hi)
    return ScoredTransactions(
        transaction_id=np.flatnonzero(m).astype(np.int64),
        time=stream.time[m].astype(np.float64),
        customer=stream.customer[m],
        score=scores[m],
        fraud=stream.fraud[m],
        label_time=(stream.time[m] + DELAY_S).astype(np.float64),
    )


def fmt(v: float) -> str:
    return "  nan" if math.isnan(v) else f"{v:.3f}"


def print_summary(label: str, s: Summary, run: Run | None) -> None:
    weeks = "  ".join(
        f"{w.start:%m-%d} {fmt(w.auc_roc)}/{fmt(w.average_precision)}/{fmt(w.card_precision)}"
        for w in s.weeks
    )
    bar = all(
        v >= b for v, b in zip((s.auc_roc, s.average_precision, s.card_precision), BAR, strict=True)
    )
    speed = ""
    if run is not None:
        speed = (
            f"  learn {run.learn_s / max(run.n_learn, 1) * 1e6:6.1f} µs x{run.n_learn:,}"
            f"  predict {run.predict_s / max(run.n_predict, 1) * 1e6:6.1f} µs x{run.n_predict:,}"
            f"  state {run.state_bytes / 1e6:.1f} MB  ({run.wall_s:.0f} s)"
        )
    print(
        f"{label:<16} mean AUC {fmt(s.auc_roc)} AP {fmt(s.average_precision)} "
        f"CP@100 {fmt(s.card_precision)} {'MEETS BAR' if bar else '         '}{speed}"
    )
    print(f"{'':<16} weeks (AUC/AP/CP): {weeks}")


def print_days(s: Summary) -> None:
    for w in s.weeks:
        for d in w.days:
            print(
                f"    {d.day}  tx {d.n_tx:6d}  frauds {d.n_fraud:4d}  AUC {fmt(d.auc_roc)}  "
                f"AP {fmt(d.average_precision)}  CP@100 {fmt(d.card_precision)}  "
                f"compromised cards {d.n_compromised_cards}"
            )


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--days", type=int, default=183)
    p.add_argument("--customers", type=int, default=5_000)
    p.add_argument("--terminals", type=int, default=10_000)
    p.add_argument("--seed", type=int, default=0, help="simulator seed (models use --model-seed)")
    p.add_argument("--model-seed", type=int, default=0)
    p.add_argument("--models", default=",".join(KINDS), help=f"kinds, from {sorted(KINDS)}")
    p.add_argument("--pvs", default="", help="kinds to run through river progressive_val_score")
    p.add_argument("--weeks", default="", help="test week starts, e.g. 2018-08-08,2018-08-15")
    p.add_argument("--score-all", action="store_true", help="score every transaction")
    p.add_argument("--per-day", action="store_true", help="print the per-day figures")
    p.add_argument("--cache", type=Path, help="parquet file to keep the features in")
    p.add_argument(
        "--handbook",
        action="store_true",
        help="the handbook's own data set (vigie_traffic.handbook), the one its bar was measured "
        "on, instead of the traffic generator's draw (merchants from the generator's world)",
    )
    args = p.parse_args(argv)

    config = SimConfig(n_customers=args.customers, n_terminals=args.terminals, nb_days=args.days,
                       seed=args.seed)
    stream = simulate(config, args.cache, handbook=args.handbook)
    asked = [date.fromisoformat(w) for w in args.weeks.split(",") if w]
    weeks = pick_weeks(stream, asked or None)
    lo, hi = day_number(weeks[0]), day_number(weeks[-1]) + 7
    score = np.ones(len(stream.time), np.bool_) if args.score_all else (
        (stream.day >= lo) & (stream.day < hi)
    )
    print(f"{len(stream.time):,} transactions, {int(stream.fraud.sum()):,} frauds; test weeks "
          f"{', '.join(str(w) for w in weeks)}; bar AUC {BAR[0]} AP {BAR[1]} CP@100 {BAR[2]}; "
          f"started {datetime.now(UTC):%H:%M:%S}")

    runs: dict[str, Run] = {}
    for kind in [k for k in args.models.split(",") if k]:
        run = service_loop(build_model(kind, seed=args.model_seed), stream, score)
        runs[kind] = run
        summary = evaluate_weeks(rows_of(stream, run.scores, weeks), weeks)
        print_summary(kind, summary, run)
        if args.per_day:
            print_days(summary)
    for kind in [k for k in args.pvs.split(",") if k]:
        t0 = time.perf_counter()
        river_scores = pvs_scores(kind, stream, args.model_seed)
        elapsed = time.perf_counter() - t0
        in_weeks = np.where(score, river_scores, np.nan)
        river_summary = evaluate_weeks(rows_of(stream, in_weeks, weeks), weeks)
        print_summary(f"{kind} (river pvs)", river_summary, None)
        line = f"{'':<16} progressive_val_score: {elapsed:.0f} s"
        if kind in runs:
            ours = runs[kind].scores
            both = ~np.isnan(ours)
            diff = float(np.abs(ours[both] - river_scores[both]).max()) if both.any() else math.nan
            line += f"; largest |service - river| score difference: {diff:.3g}"
        print(line)


if __name__ == "__main__":
    main()
