"""Capped exponential backoff with "equal jitter" (AWS architecture blog, "Exponential Backoff And
Jitter"): many consumers failing on the same store at once must not retry in lock-step."""

from __future__ import annotations

import random
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Backoff:
    initial: float = 0.1
    cap: float = 30.0
    multiplier: float = 2.0
    #: attempts of one batch before its messages are retried one by one
    max_attempts: int = 5

    def __post_init__(self) -> None:
        if self.initial <= 0 or self.cap < self.initial or self.multiplier < 1:
            raise ValueError(f"invalid backoff {self!r}")
        if self.max_attempts < 1:
            raise ValueError("max_attempts must be >= 1")

    def ceiling(self, attempt: int) -> float:
        """The longest wait after the ``attempt``-th failure (1-based), before jitter."""
        exponent = max(attempt - 1, 0)
        # min() before the power would overflow for absurd attempt counts
        if exponent > 64:
            return self.cap
        return min(self.cap, self.initial * self.multiplier**exponent)

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        """A wait drawn uniformly in [ceiling/2, ceiling]: jitter, yet never a busy retry."""
        top = self.ceiling(attempt)
        draw = (rng or random).random()
        return top / 2 + draw * top / 2
