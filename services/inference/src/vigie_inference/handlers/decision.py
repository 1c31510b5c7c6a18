"""Score → decision (approve / review / block) with the reason the OLTP side records."""

from __future__ import annotations

from vigie_contracts.events.fraud import Decision

from ..settings import Thresholds


def decide(score: float, thresholds: Thresholds) -> tuple[Decision, str]:
    if score >= thresholds.block:
        return Decision.BLOCK, f"score {score:.4f} >= block threshold {thresholds.block:g}"
    if score >= thresholds.review:
        return Decision.REVIEW, f"score {score:.4f} >= review threshold {thresholds.review:g}"
    return Decision.APPROVE, f"score {score:.4f} < review threshold {thresholds.review:g}"
