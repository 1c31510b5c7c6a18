"""The service's one exception root."""

from __future__ import annotations


class ClickstreamError(Exception):
    """Root of the errors raised by vigie_clickstream."""


class InvalidEvent(ClickstreamError, ValueError):
    """An event that violates its contract or our limits: rejected at the collector, dead-lettered
    in the pipeline (the runtime's decoders treat a ValueError as bad input)."""

    def __init__(self, reasons: list[str]) -> None:
        super().__init__("; ".join(reasons))
        self.reasons = reasons
