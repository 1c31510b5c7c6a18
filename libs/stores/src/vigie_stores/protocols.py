"""The small interfaces services type against; each adapter module implements one of them.

Handlers and tests depend on these, not on a driver: a service can swap MongoDB for another
document store, or hand an in-memory fake to a unit test, without touching its wiring.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, Protocol

from .results import BatchOutcome, Outcome


class Store(Protocol):
    """What every adapter offers the runtime: a readiness probe and a clean shutdown."""

    async def ping(self) -> None:
        """Raise ``StoreUnavailable`` unless the server answers."""

    async def close(self) -> None:
        """Release connections; idempotent."""


class VersionedDocuments(Store, Protocol):
    """Entity mirrors where a change carries its source position: the newest always wins."""

    async def upsert_versioned(
        self, collection: str, id: Any, doc: Mapping[str, Any], version: int
    ) -> Outcome: ...

    async def delete_versioned(self, collection: str, id: Any, version: int) -> Outcome: ...

    async def get(
        self, collection: str, id: Any, *, include_deleted: bool = False
    ) -> dict[str, Any] | None: ...


class HashStore(Store, Protocol):
    """Small per-entity records (online features) written and read in batches, with a TTL."""

    async def write_hashes(
        self,
        hashes: Mapping[str, Mapping[str, str | int | float]],
        *,
        ttl: timedelta | None = None,
        replace: bool = False,
    ) -> None: ...

    async def read_hashes(self, keys: Sequence[str]) -> dict[str, dict[str, str]]: ...


class RecordSink(Protocol):
    """Where raw records go (the lake); durable only up to ``committable_offsets``."""

    async def write(self, records: Iterable[Any]) -> list[str]: ...

    async def flush(self) -> list[str]: ...

    async def close(self) -> list[str]: ...

    def committable_offsets(self) -> dict[tuple[str, int], int]: ...


__all__ = ["BatchOutcome", "HashStore", "Outcome", "RecordSink", "Store", "VersionedDocuments"]
