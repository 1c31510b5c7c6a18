"""The one exception tree of vigie_stores.

Every adapter translates its driver's errors at the boundary (``raise StoreX(...) from exc``), so a
service never imports a driver to decide what a failure means:

- ``StoreUnavailable`` (``retryable = True``): timeouts, connection loss, a server starting up or
  failing over. The same write may succeed later; the runtime retries the batch.
- ``StoreConflict``: the data contradicts a constraint (a unique index). Retrying cannot help; the
  runtime dead-letters the message.
- ``StoreRejected``: the server refused the request itself (bad query, missing table, no
  permission). A bug or a deployment problem: the service stops rather than skip data.
- ``StoreClosed``: the adapter was used after ``close()``.

``retryable`` lets a runtime's classify callback stay one line:
``RETRY if exc.retryable else POISON if isinstance(exc, StoreConflict) else FATAL``.
"""

from __future__ import annotations

from collections.abc import Hashable
from typing import ClassVar


class StoreError(Exception):
    """Root of every error raised by vigie_stores; ``store`` names the backend ("mongo", ...)."""

    retryable: ClassVar[bool] = False

    def __init__(self, message: str, *, store: str) -> None:
        super().__init__(f"{store}: {message}")
        self.store = store


class StoreUnavailable(StoreError):
    """Transient: a timeout, a lost connection, a server not (yet) able to serve."""

    retryable: ClassVar[bool] = True


class StoreConflict(StoreError):
    """A write violates a constraint of the stored data (e.g. a unique index).

    ``keys`` holds the ids of the offending items when a batch was written; the other items of
    that batch were applied (and are idempotent, so retrying the batch is safe).
    """

    def __init__(self, message: str, *, store: str, keys: tuple[Hashable, ...] = ()) -> None:
        super().__init__(message, store=store)
        self.keys = keys


class StoreRejected(StoreError):
    """The server refused the request: invalid query or schema, unsupported feature, no rights."""


class StoreClosed(StoreError):
    """The adapter was used after it was closed."""
