"""The conditions of each rule kind, judged from plain values (pure: no I/O, clock passed in)."""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from .. import rules as r

#: latency samples kept per topic (the newest): bounds memory and the cost of a quantile
MAX_LATENCY_SAMPLES = 20_000

TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class GroupOffsets:
    """One reading of a consumer group: committed and end offsets of its partitions."""

    group: str
    committed: Mapping[TopicPartition, int]
    ends: Mapping[TopicPartition, int]

    @property
    def lag(self) -> int:
        return sum(max(self.ends.get(tp, c) - c, 0) for tp, c in self.committed.items())


@dataclass(frozen=True, slots=True)
class LagPoint:
    at: float
    lag: int
    committed: Mapping[TopicPartition, int]


@dataclass(frozen=True, slots=True)
class LagVerdict:
    active: bool
    lag: int
    why: str


def judge_lag(points: Sequence[LagPoint], rule: r.ConsumerLagRule, now: float) -> LagVerdict | None:
    """Burrow's way: the last ``min_samples`` readings of the window, all above the threshold,
    with committed offsets that did not move (stalled) or a lag that kept growing. None: not
    enough readings to judge (keep the current state)."""
    recent = [p for p in points if p.at >= now - rule.window][-rule.min_samples :]
    if len(recent) < rule.min_samples:
        return None
    lag = recent[-1].lag
    if not all(p.lag > rule.threshold for p in recent):
        return LagVerdict(False, lag, "below threshold")
    if recent[0].committed == recent[-1].committed:
        return LagVerdict(True, lag, "stalled: committed offsets did not move")
    if all(b.lag >= a.lag for a, b in pairwise(recent)) and lag > recent[0].lag:
        return LagVerdict(True, lag, "falling behind: lag grew at every reading")
    return LagVerdict(False, lag, "consuming")


def quantile(values: Iterable[float], q: float) -> float:
    """The nearest-rank quantile (what a p99 means to an SRE: 99 % of samples at or below)."""
    ordered = sorted(values)
    if not ordered:
        raise ValueError("quantile of no values")
    return ordered[max(math.ceil(q * len(ordered)) - 1, 0)]


@dataclass(slots=True)
class LatencyWindow:
    """(arrival time, latency s) of one pipeline's output records, newest kept."""

    samples: deque[tuple[float, float]] = field(
        default_factory=lambda: deque(maxlen=MAX_LATENCY_SAMPLES)
    )

    def add(self, at: float, latency: float) -> None:
        self.samples.append((at, max(latency, 0.0)))

    def within(self, now: float, window: float) -> list[float]:
        cutoff = now - window
        while self.samples and self.samples[0][0] < cutoff - 3600:
            self.samples.popleft()  # far older than any window: forget
        return [lat for at, lat in self.samples if at >= cutoff]


@dataclass(slots=True)
class EventWindow:
    """Event times of matching events of one group, and when the last one was seen."""

    times: deque[float] = field(default_factory=deque)
    last_match: float = 0.0

    def add(self, event_time: float, window: float) -> int:
        self.times.append(event_time)
        newest = max(self.times)
        while self.times and self.times[0] <= newest - window:
            self.times.popleft()
        return sum(1 for t in self.times if t > newest - window)


@dataclass(slots=True)
class DeadLetters:
    """(record time, error type) of one service's dead letters."""

    seen: deque[tuple[float, str]] = field(default_factory=deque)

    def add(self, at: float, error_type: str) -> None:
        self.seen.append((at, error_type))

    def count(self, now: float, window: float) -> tuple[int, str]:
        """Dead letters in the window and their most frequent error type."""
        while self.seen and self.seen[0][0] < now - 86_400:
            self.seen.popleft()
        recent = [e for at, e in self.seen if at >= now - window]
        if not recent:
            return 0, ""
        top = max(set(recent), key=recent.count)
        return len(recent), top


@dataclass(slots=True)
class Instance:
    last_at: float
    stopping: bool


def heartbeat_missed(
    instances: Mapping[str, Instance] | None,
    rule: r.HeartbeatRule,
    service: str,
    now: float,
    started_at: float,
) -> str | None:
    """Why ``service`` is missed, or None if it is alive (or stopped on purpose)."""
    expected = service in rule.expected
    if not instances:
        if expected and now - started_at >= rule.timeout:
            return f"no heartbeat from {service} since alerting started"
        return None
    if any(not i.stopping and now - i.last_at < rule.timeout for i in instances.values()):
        return None
    if all(i.stopping for i in instances.values()) and not expected:
        return None  # every instance said it was stopping: a planned stop
    last = max(i.last_at for i in instances.values())
    return f"no heartbeat from {service} for {now - last:.0f}s"
