"""From two scrapes of a service's Prometheus metrics to the figures a person watches (pure).

Rates and latency quantiles come from the difference of two scrapes, so they describe the last
interval, not the process's whole life: a p99 of "since start" would hide a slowdown for hours.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

Labels = frozenset[tuple[str, str]]
#: metric sample name -> labels -> value
Scrape = dict[str, dict[Labels, float]]

PROCESSED = "vigie_messages_processed_total"
DEAD_LETTERED = "vigie_messages_dead_lettered_total"
FAILED = "vigie_messages_failed_total"
LAG = "vigie_consumer_lag"
#: per step, from the Kafka append time of the input (a replay's old event times do not skew it)
LATENCY_BUCKET = "vigie_record_latency_seconds_bucket"


def parse(text: str) -> Scrape:
    out: Scrape = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            out.setdefault(sample.name, {})[frozenset(sample.labels.items())] = sample.value
    return out


def total(scrape: Scrape, name: str, without: Iterable[str] = ()) -> float:
    """The sum of a metric over its label sets (0 when absent)."""
    skip = set(without)
    return sum(
        v
        for labels, v in scrape.get(name, {}).items()
        if not any(k in skip for k, _ in labels)
    )


def _buckets(scrape: Scrape) -> dict[float, float]:
    """Cumulative latency buckets summed over topics: upper bound -> count."""
    out: dict[float, float] = {}
    for labels, value in scrape.get(LATENCY_BUCKET, {}).items():
        le = dict(labels).get("le")
        if le is None:
            continue
        bound = math.inf if le == "+Inf" else float(le)
        out[bound] = out.get(bound, 0.0) + value
    return out


def histogram_quantile(q: float, cumulative: Mapping[float, float]) -> float | None:
    """Prometheus' estimate: linear interpolation inside the bucket the quantile falls in.

    None when there were no observations. A quantile in the +Inf bucket returns the highest finite
    bound (the estimate cannot say more than "at least that").
    """
    if not 0 <= q <= 1:
        raise ValueError("q must be within [0, 1]")
    bounds = sorted(cumulative)
    if not bounds or cumulative[bounds[-1]] <= 0:
        return None
    rank = q * cumulative[bounds[-1]]
    lower, below = 0.0, 0.0
    for bound in bounds:
        count = cumulative[bound]
        if count >= rank:
            if math.isinf(bound):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


@dataclass(frozen=True)
class PipelineFigures:
    service: str
    up: bool
    events_per_s: float = 0.0
    p99_latency_s: float | None = None
    lag: float = 0.0
    dead_letters: float = 0.0
    failures_per_s: float = 0.0


def figures(service: str, before: Scrape | None, now: Scrape | None, dt: float) -> PipelineFigures:
    """What one service did between two scrapes ``dt`` seconds apart (None: unreachable)."""
    if now is None:
        return PipelineFigures(service=service, up=False)
    if before is None or dt <= 0:
        return PipelineFigures(
            service=service, up=True, lag=total(now, LAG), dead_letters=total(now, DEAD_LETTERED)
        )
    delta_buckets = {
        bound: count - _buckets(before).get(bound, 0.0) for bound, count in _buckets(now).items()
    }
    return PipelineFigures(
        service=service,
        up=True,
        events_per_s=max(total(now, PROCESSED) - total(before, PROCESSED), 0.0) / dt,
        p99_latency_s=histogram_quantile(0.99, delta_buckets),
        lag=total(now, LAG),
        dead_letters=total(now, DEAD_LETTERED),
        failures_per_s=max(total(now, FAILED) - total(before, FAILED), 0.0) / dt,
    )


_BARS = "▁▂▃▄▅▆▇█"


def sparkline(
    values: Iterable[float | None],
    width: int = 30,
    *,
    low: float = 0.0,
    high: float | None = None,
) -> str:
    """A bar per value scaled from ``low`` to ``high`` (default: the largest); a gap where there
    was no value.

    A range other than from 0 shows a score's day-to-day moves (AUCs between 0.90 and 0.95 would
    all be full bars from 0); a shared ``high`` makes several lines comparable.
    """
    recent = list(values)[-width:]
    finite = [v for v in recent if v is not None]
    top = max(finite, default=0.0) if high is None else high
    span = top - low
    chars = []
    for v in recent:
        if v is None:
            chars.append(" ")
        elif span <= 0:
            chars.append(_BARS[0])
        else:
            at = int((v - low) / span * (len(_BARS) - 1) + 0.5)
            chars.append(_BARS[min(max(at, 0), len(_BARS) - 1)])
    return "".join(chars)


@dataclass
class History:
    """The last ``size`` figures of each service, for the plots."""

    size: int = 60
    rates: dict[str, deque[float | None]] = field(default_factory=dict)
    p99s: dict[str, deque[float | None]] = field(default_factory=dict)

    def add(self, fig: PipelineFigures) -> None:
        rate = self.rates.setdefault(fig.service, deque(maxlen=self.size))
        p99 = self.p99s.setdefault(fig.service, deque(maxlen=self.size))
        rate.append(fig.events_per_s if fig.up else None)
        p99.append(fig.p99_latency_s if fig.up else None)
