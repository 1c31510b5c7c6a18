"""The safe default before any model has learned: a fixed, monotone rule on the amount."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .base import Explanation, pack


class ColdStartModel:
    """``score = amount / (amount + pivot)``: 0.5 at ``pivot`` (major units), rising with amount.

    Large amounts are the one signal that needs no history (the handbook's first scenario), so the
    rule ranks by amount and lets the decision thresholds do the rest. It never learns: ``learn``
    only counts, so a cold-start status can say how many labels went by.
    """

    cold_start = True
    kind = "cold_start"

    def __init__(self, pivot: float = 220.0, *, name: str = "cold_start", n_learned: int = 0):
        if pivot <= 0:
            raise ValueError("the pivot amount must be positive")
        self.pivot = pivot
        self._name = name
        self._n_learned = n_learned

    @property
    def name(self) -> str:
        return self._name

    @property
    def n_learned(self) -> int:
        return self._n_learned

    def predict_proba(self, x: Mapping[str, float]) -> float:
        amount = max(float(x.get("amount", 0.0)), 0.0)
        return amount / (amount + self.pivot)

    def learn(self, x: Mapping[str, float], fraud: bool) -> None:
        self._n_learned += 1

    def explain(self, x: Mapping[str, float], top: int = 5) -> Explanation:
        if top < 1:
            return []
        return [("amount", float(x.get("amount", 0.0)), self.predict_proba(x))]

    def to_bytes(self) -> bytes:
        return pack(*self.state())

    def state(self) -> tuple[dict[str, Any], bytes]:
        header = {
            "type": "cold_start",
            "kind": self.kind,
            "name": self._name,
            "pivot": self.pivot,
            "n_learned": self._n_learned,
        }
        return header, b""

    @classmethod
    def from_state(cls, header: Mapping[str, Any]) -> ColdStartModel:
        return cls(
            float(header["pivot"]), name=str(header["name"]), n_learned=int(header["n_learned"])
        )
