"""Pure functions of the clickstream: validation, rows, sessions. No I/O, no driver imports."""

from __future__ import annotations

from .events import Click, check_limits, click_from_record, click_row, day_of, enriched_record
from .sessions import OpenSession, SessionBatch, SessionEvent, sessionize, summary_fields

__all__ = [
    "Click",
    "OpenSession",
    "SessionBatch",
    "SessionEvent",
    "check_limits",
    "click_from_record",
    "click_row",
    "day_of",
    "enriched_record",
    "sessionize",
    "summary_fields",
]
