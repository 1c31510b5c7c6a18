"""What a versioned write did: applied, or ignored because the store already holds newer data."""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from enum import StrEnum


class Outcome(StrEnum):
    APPLIED = "applied"
    """The write is now the stored state (inserted, or replaced an older version)."""
    STALE = "stale"
    """The store holds the same or a newer version: nothing changed (a replay or a late event)."""


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """The result of a versioned batch: how many items were applied, and which ids were stale.

    An id written several times in one batch counts once as applied (its newest version); the
    older copies are reported stale.
    """

    applied: int
    stale: tuple[Hashable, ...] = ()

    @property
    def total(self) -> int:
        return self.applied + len(self.stale)
