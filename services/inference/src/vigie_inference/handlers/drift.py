"""Drift detection with River's ADWIN: on the score distribution and key features (scorer), and
on the error rate (learner). A detector that fires gives one ``DriftSignal`` (at most one per
detector per cooldown, so a shifting stream does not flood alerting)."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from river import drift

from vigie_contracts.events.fraud import DriftSignal


def _adwin(delta: float) -> drift.ADWIN:
    return drift.ADWIN(delta=delta)  # type: ignore[no-untyped-call]  # river is untyped


@dataclass
class _Detector:
    name: str
    feature: str | None
    adwin: drift.ADWIN
    last_signal: float = field(default=-1e18)


class DriftMonitor:
    def __init__(
        self,
        *,
        delta: float,
        features: Sequence[str],
        cooldown_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.delta = delta
        self._cooldown = cooldown_s
        self._clock = clock
        self._score = _Detector("adwin:score", None, _adwin(delta))
        self._error = _Detector("adwin:error_rate", None, _adwin(delta))
        self._features = [
            _Detector("adwin:feature", name, _adwin(delta)) for name in features
        ]
        self.detections = 0

    def observe_score(
        self, score: float, vector: Mapping[str, float], *, model: str, version: str
    ) -> list[DriftSignal]:
        signals = self._update(self._score, score, model, version)
        for detector in self._features:
            value = vector.get(detector.feature or "")
            if value is not None:
                signals += self._update(detector, value, model, version)
        return signals

    def observe_error(self, error: float, *, model: str, version: str) -> list[DriftSignal]:
        """``error``: 1.0 when the decision disagreed with the label, else 0.0."""
        return self._update(self._error, error, model, version)

    def estimates(self) -> dict[str, float]:
        out = {"score": self._score.adwin.estimation, "error_rate": self._error.adwin.estimation}
        for d in self._features:
            out[f"feature:{d.feature}"] = d.adwin.estimation
        return out

    def _update(
        self, detector: _Detector, value: float, model: str, version: str
    ) -> list[DriftSignal]:
        detector.adwin.update(value)  # type: ignore[no-untyped-call]  # river is untyped
        if not detector.adwin.drift_detected:
            return []
        self.detections += 1
        now = self._clock()
        if now - detector.last_signal < self._cooldown:
            return []
        detector.last_signal = now
        return [
            DriftSignal(
                model_name=model,
                model_version=version,
                detector=detector.name,
                feature=detector.feature,
                statistic=float(detector.adwin.estimation),
                threshold=self.delta,
                drift_detected=True,
                detected_at=datetime.now(UTC),
            )
        ]
