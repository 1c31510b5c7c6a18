"""Pure functions: raw bytes → redacted, classified log records. No I/O, no drivers."""

from .pipeline import (
    BadRecord,
    Outcome,
    Source,
    check_raw,
    process,
    record_id,
    security_envelope,
    security_key,
)
from .record import Http, LogRecord, Parsed
from .redact import Redactor

__all__ = [
    "BadRecord",
    "Http",
    "LogRecord",
    "Outcome",
    "Parsed",
    "Redactor",
    "Source",
    "check_raw",
    "process",
    "record_id",
    "security_envelope",
    "security_key",
]
