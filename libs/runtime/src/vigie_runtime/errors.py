"""The one exception tree of the runtime, and how the loop classifies what a handler raised.

A handler (or a store adapter) says what a failure means by the class it raises:

- ``Retryable``: transient (a store timed out, a broker is electing a leader). The loop retries
  the batch with capped exponential backoff, then isolates message by message.
- ``Poison``: this message can never succeed (violates an invariant the contract cannot express).
  It goes to the dead-letter topic at once and is never retried.
- ``Fatal``: the service cannot go on (bad credentials, a missing table). The loop stops without
  committing, so the batch is processed again after a fix.

Driver exceptions are translated at the boundary (``raise Retryable(...) from exc``) or mapped by
the loop's ``classify`` callback; anything unclassified is fatal, because retrying or
dead-lettering a bug would hide it.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import Enum


class VigieRuntimeError(Exception):
    """Root of every error raised by vigie_runtime."""


class Retryable(VigieRuntimeError):
    """A transient failure: the same work may succeed if tried again later."""


class Poison(VigieRuntimeError):
    """A message that can never be processed: dead-letter it, never retry."""


class Fatal(VigieRuntimeError):
    """The service must stop; offsets of the failing batch are not committed."""


class ErrorKind(Enum):
    RETRY = "retry"
    POISON = "poison"
    FATAL = "fatal"


Classifier = Callable[[BaseException], ErrorKind]


def classify(exc: BaseException) -> ErrorKind:
    """The default policy: our classes say what they mean; anything else is a bug, so fatal."""
    if isinstance(exc, Retryable):
        return ErrorKind.RETRY
    if isinstance(exc, Poison):
        return ErrorKind.POISON
    return ErrorKind.FATAL


class Backpressure(VigieRuntimeError):
    """Raised by a handler that cannot take more now (a store sheds load, a buffer is full).

    The loop pauses its partitions for ``retry_after`` seconds (still polling, so it keeps its
    group membership), then retries the same batch; this does not count as a failed attempt.
    """

    def __init__(self, retry_after: float, reason: str = "") -> None:
        super().__init__(reason or f"backpressure for {retry_after:.3f}s")
        self.retry_after = retry_after
