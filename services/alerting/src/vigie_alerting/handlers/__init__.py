"""Pure alerting logic: rule conditions, incidents (dedup, reopen, resolve) and the engine.
No I/O and no drivers; the clock is an argument."""

from .conditions import GroupOffsets, LagPoint, judge_lag, quantile
from .engine import DeadLetterSeen, Engine, Observed
from .incidents import AlertChange, Change, Evidence, Incident, IncidentBook, fingerprint

__all__ = [
    "AlertChange",
    "Change",
    "DeadLetterSeen",
    "Engine",
    "Evidence",
    "GroupOffsets",
    "Incident",
    "IncidentBook",
    "LagPoint",
    "Observed",
    "fingerprint",
    "judge_lag",
    "quantile",
]
