"""The inference service's errors."""

from __future__ import annotations


class InferenceError(Exception):
    """Root of the service's own errors."""


class BadFeatures(InferenceError):
    """A feature hash in Redis that cannot be decoded (a features bug or a format change)."""


class NotReady(InferenceError):
    """Asked for something the service does not have yet (no checkpoint, no model)."""
