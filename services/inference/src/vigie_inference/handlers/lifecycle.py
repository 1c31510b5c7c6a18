"""Model lifecycle, pure: which version of which kind is champion, promotion, rollback, and
the automatic promotion rule on prequential metrics.

The learner learns every kind (champion and challengers) from every label and checkpoints them
together; a version is ``<kind>@<checkpoint>``. The registry says which kind is champion and
whether it is pinned to an older checkpoint (after a rollback); unpinned, the champion follows
the newest checkpoint.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any


class LifecycleError(ValueError):
    """A promote or rollback that cannot be done (unknown kind or version)."""


def version_of(kind: str, checkpoint: int) -> str:
    return f"{kind}@{checkpoint}"


def parse_version(version: str) -> tuple[str, int]:
    kind, sep, seq = version.rpartition("@")
    if not sep or not kind or not seq.isdigit():
        raise LifecycleError(f"not a model version (kind@checkpoint): {version!r}")
    return kind, int(seq)


@dataclass(frozen=True, slots=True)
class Change:
    at: datetime
    action: str
    champion: str
    pinned: int | None
    reason: str
    #: what it replaced (a rollback without a target reverts to it)
    before: str
    before_pinned: int | None

    def doc(self) -> dict[str, Any]:
        return {
            "at": self.at,
            "action": self.action,
            "champion": self.champion,
            "pinned": self.pinned,
            "reason": self.reason,
            "before": self.before,
            "before_pinned": self.before_pinned,
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Change:
        return cls(
            doc["at"],
            doc["action"],
            doc["champion"],
            doc.get("pinned"),
            doc["reason"],
            doc.get("before", doc["champion"]),
            doc.get("before_pinned"),
        )


@dataclass(frozen=True, slots=True)
class Registry:
    """``revision`` grows with every change: the scorer reloads when it moves."""

    champion: str
    pinned: int | None = None
    revision: int = 0
    history: tuple[Change, ...] = field(default=())

    def doc(self) -> dict[str, Any]:
        return {
            "champion": self.champion,
            "pinned": self.pinned,
            "revision": self.revision,
            "history": [c.doc() for c in self.history],
        }

    @classmethod
    def from_doc(cls, doc: Mapping[str, Any]) -> Registry:
        return cls(
            champion=doc["champion"],
            pinned=doc.get("pinned"),
            revision=int(doc.get("revision", 0)),
            history=tuple(Change.from_doc(c) for c in doc.get("history", [])),
        )


def promote(
    registry: Registry, kind: str, kinds: Sequence[str], *, at: datetime, reason: str
) -> Registry:
    if kind not in kinds:
        raise LifecycleError(f"unknown model kind {kind!r}; the learner learns {list(kinds)}")
    change = Change(at, "promote", kind, None, reason, registry.champion, registry.pinned)
    return replace(
        registry,
        champion=kind,
        pinned=None,
        revision=registry.revision + 1,
        history=(*registry.history, change),
    )


def rollback(
    registry: Registry,
    checkpoints: Sequence[int],
    *,
    at: datetime,
    reason: str,
    to_version: str | None = None,
) -> Registry:
    """To ``to_version`` (``kind@checkpoint``) when given; else back to what the last change
    replaced; with no change yet, the champion pinned to the checkpoint before the newest."""
    pinned: int | None
    if to_version is not None:
        kind, seq = parse_version(to_version)
        if seq not in checkpoints:
            raise LifecycleError(f"no checkpoint {seq} (kept: {sorted(checkpoints)})")
        champion, pinned = kind, seq
    elif registry.history:
        last = registry.history[-1]
        champion, pinned = last.before, last.before_pinned
    else:
        older = sorted(checkpoints)
        if len(older) < 2:
            raise LifecycleError("nothing to roll back to: fewer than two checkpoints")
        champion, pinned = registry.champion, older[-2]
    change = Change(
        at, "rollback", champion, pinned, reason, registry.champion, registry.pinned
    )
    return replace(
        registry,
        champion=champion,
        pinned=pinned,
        revision=registry.revision + 1,
        history=(*registry.history, change),
    )


def rule_winner(
    champion: str,
    ap_by_kind: Mapping[str, float],
    labels: int,
    *,
    margin: float,
    min_labels: int,
) -> str | None:
    """The challenger to promote by the rule, if any: the best average precision, ahead of the
    champion's by more than ``margin``, measured on at least ``min_labels`` labels."""
    if labels < min_labels or champion not in ap_by_kind:
        return None
    best = max(ap_by_kind, key=lambda k: (ap_by_kind[k], k == champion))
    if best != champion and ap_by_kind[best] > ap_by_kind[champion] + margin:
        return best
    return None
