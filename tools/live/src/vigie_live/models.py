"""From the inference service's answers to the models' quality over time (pure).

``GET /v1/models/metrics?day=D&days=N`` answers ``{"days": [{"day", "labels", "models": {kind:
{"transactions", "frauds", "auc_roc", "average_precision", "card_precision_at_100"}}}]}``, oldest
day first; a figure is null when the day cannot define it (one class only). Which model is the
champion comes from ``/v1/models/status``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

#: (key in the answer, column title), in the order shown
METRICS: tuple[tuple[str, str], ...] = (
    ("auc_roc", "AUC ROC"),
    ("average_precision", "avg precision"),
    ("card_precision_at_100", "card P@100"),
)
#: the service answers at most 62 days; a month of bars fits beside the numbers
DAYS = 30

NO_METRICS = "no prequential metrics yet (they come with the first labelled day)"
MALFORMED = "unexpected answer from /v1/models/metrics"


@dataclass(frozen=True)
class ModelQuality:
    model: str
    #: "champion", "challenger", or "" when it no longer serves (or the status is unknown)
    role: str
    #: per METRICS, one value per day of ``Quality.days`` (None: no figure that day)
    series: tuple[tuple[float | None, ...], ...]
    #: the labels (and frauds among them) the latest day's figures rest on
    labels: int | None = None
    frauds: int | None = None

    @property
    def latest(self) -> tuple[float | None, ...]:
        return tuple(s[-1] if s else None for s in self.series)


@dataclass(frozen=True)
class Quality:
    days: tuple[str, ...] = ()
    models: tuple[ModelQuality, ...] = ()
    #: why there is nothing to show (set when ``models`` is empty)
    note: str | None = None


class _Malformed(ValueError):
    pass


def metrics_request(status: Any, days: int = DAYS) -> tuple[str, int | None] | None:
    """The metrics path to ask, ending on the day of the newest checkpoint's figures, and that
    checkpoint's number (the figures change with checkpoints: no need to ask again before).

    The service's default end day is yesterday by the wall clock, which a replay of 2018 traffic
    never reaches: its latest complete day is in the checkpoint. None: no such day yet.
    """
    if not isinstance(status, Mapping):
        return None
    checkpoint = status.get("checkpoint")
    if not isinstance(checkpoint, Mapping):
        return None
    metrics = checkpoint.get("metrics")
    day = metrics.get("day") if isinstance(metrics, Mapping) else None
    if not isinstance(day, str) or not day:
        return None
    seq = checkpoint.get("checkpoint")
    query = urlencode({"day": day, "days": max(1, min(days, 62))})
    return f"/v1/models/metrics?{query}", seq if isinstance(seq, int) else None


def _roles(status: Any) -> dict[str, str]:
    """Model name -> champion/challenger, champion first (empty when the status is unknown)."""
    if not isinstance(status, Mapping):
        return {}
    out: dict[str, str] = {}
    champion = status.get("champion")
    if isinstance(champion, Mapping) and isinstance(champion.get("model_name"), str):
        out[champion["model_name"]] = "champion"
    challengers = status.get("challengers")
    for c in challengers if isinstance(challengers, list) else []:
        if isinstance(c, Mapping) and isinstance(c.get("model_name"), str):
            out.setdefault(c["model_name"], "challenger")
    return out


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _days(payload: Any) -> list[tuple[str, Mapping[str, Any], int | None]]:
    """(day, models, labels) oldest first; raises _Malformed when the shape is not the API's."""
    if not isinstance(payload, Mapping) or not isinstance(payload.get("days"), list):
        raise _Malformed
    out = []
    for entry in payload["days"]:
        if not isinstance(entry, Mapping) or not isinstance(entry.get("day"), str):
            raise _Malformed
        models = entry.get("models", {})
        if not isinstance(models, Mapping) or not all(
            isinstance(m, Mapping) for m in models.values()
        ):
            raise _Malformed
        out.append((entry["day"], models, _count(entry.get("labels"))))
    # ISO days sort as dates; the API sends them in order, this does not rely on it
    return sorted(out, key=lambda d: d[0])


def quality(payload: Any, status: Any = None, *, days: int = DAYS) -> Quality:
    """One line per model (champion, then challengers, then any other the days mention) with
    each metric's value per day over the last ``days`` days that have figures."""
    try:
        found = _days(payload)[-days:]
    except _Malformed:
        return Quality(note=MALFORMED)
    # days before the first figures are the service's history not yet learned: no gap for them
    while found and not found[0][1]:
        found.pop(0)
    if not found:
        return Quality(note=NO_METRICS)
    roles = _roles(status)
    names = [n for n in roles if any(n in models for _, models, _ in found)]
    for _, models, _ in found:
        names += [str(n) for n in models if n not in names]
    _, last_models, last_labels = found[-1]
    rows = []
    for name in names:
        docs = [models.get(name) for _, models, _ in found]
        series = tuple(
            tuple(_number(d.get(key)) if d is not None else None for d in docs)
            for key, _ in METRICS
        )
        latest = last_models.get(name)
        labels = frauds = None
        if latest is not None:
            # the model's own count; the day's (every label) when an older service omits it
            labels = _count(latest.get("transactions"))
            labels = last_labels if labels is None else labels
            frauds = _count(latest.get("frauds"))
        rows.append(
            ModelQuality(
                model=name, role=roles.get(name, ""), series=series, labels=labels, frauds=frauds
            )
        )
    return Quality(days=tuple(d for d, _, _ in found), models=tuple(rows))
