"""The one exception tree of the contracts library."""

from __future__ import annotations


class ContractError(Exception):
    """Root of every error raised by vigie_contracts."""


class UnknownEventType(ContractError):
    """No model / schema is registered for this event type (or version)."""


class DecodeError(ContractError):
    """Bytes that are not a vigie event: bad framing, unknown schema fingerprint, corrupt body.

    A consumer dead-letters the message; it is never retried.
    """


class ValidationError(ContractError):
    """A well-formed message whose content violates its contract (a field out of its domain)."""


class IncompatibleSchema(ContractError):
    """A schema change that breaks the topic's compatibility mode; the message names the field."""
