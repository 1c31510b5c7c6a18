"""The exception tree of ingest-cdc."""

from __future__ import annotations


class IngestCdcError(Exception):
    """Root of every error raised by ingest-cdc."""


class BadChange(IngestCdcError, ValueError):
    """A change event that can never become a domain event (it goes to the dead-letter topic).

    ``reason`` is a short machine-readable tag (``unparseable``, ``unknown_table``,
    ``bad_currency``, ``negative_amount``, ...) for metrics and the status API.
    """

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
