"""A token bucket per application, counted in events (a batch of 500 costs 500)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class TokenBucket:
    rate: float  # tokens per second
    burst: float
    tokens: float
    updated: float  # monotonic seconds

    @classmethod
    def full(cls, rate: float, burst: float, now: float) -> TokenBucket:
        return cls(rate=rate, burst=burst, tokens=burst, updated=now)

    def take(self, cost: float, now: float) -> float:
        """Take ``cost`` tokens and return 0, or take nothing and return the seconds to wait."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        if cost <= self.tokens:
            self.tokens -= cost
            return 0.0
        return (min(cost, self.burst) - self.tokens) / self.rate
