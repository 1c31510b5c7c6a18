"""Pure: a stored entity hash → each feature's value, age and status, for the REST API.

A value is *present* when the entity's last update (``_as_of``, event time) is within the
feature's freshness limit of now, *stale* past it, and *missing* when the store has no value
for it (no hash for the entity, or the view was never written).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from enum import StrEnum
from typing import Any

from vigie_contracts.events.features import EntityType
from vigie_featureset import (
    FEATURES,
    VIEW_REQUEST,
    FeatureDef,
    LayoutDecodeError,
    decode_fields,
)


class Status(StrEnum):
    PRESENT = "present"
    STALE = "stale"
    MISSING = "missing"


#: entity types with stored features, and each one's features in registry order
STORED: dict[EntityType, tuple[FeatureDef, ...]] = {}
for _f in FEATURES:
    if _f.view != VIEW_REQUEST:
        STORED.setdefault(_f.entity, ())
        STORED[_f.entity] += (_f,)


class LookupError_(ValueError):  # noqa: N801 - not the builtin LookupError
    """A request the API answers with 4xx: what was wrong, for the client."""


def parse_entity_type(value: str) -> EntityType:
    try:
        kind = EntityType(value)
    except ValueError:
        raise LookupError_(
            f"unknown entity type {value!r}; known: {sorted(k.value for k in STORED)}"
        ) from None
    if kind not in STORED:
        raise LookupError_(
            f"entity type {value!r} has no stored features; "
            f"known: {sorted(k.value for k in STORED)}"
        )
    return kind


def select(entity_type: EntityType, names: Sequence[str] | None) -> tuple[FeatureDef, ...]:
    """The entity's features, or the named ones (each must be one of the entity's)."""
    defs = STORED[entity_type]
    if not names:
        return defs
    by_name = {d.name: d for d in defs}
    unknown = [n for n in names if n not in by_name]
    if unknown:
        raise LookupError_(
            f"not stored features of {entity_type.value}: {unknown}; "
            f"known: {[d.name for d in defs]}"
        )
    return tuple(by_name[n] for n in dict.fromkeys(names))


def describe(
    entity_type: EntityType,
    entity_id: str,
    fields: Mapping[str, str] | None,
    defs: Sequence[FeatureDef],
    now: datetime,
) -> dict[str, Any]:
    """The answer for one entity. A hash that cannot be decoded reads as missing (and says so)."""
    found = bool(fields)
    error: str | None = None
    views: dict[str, dict[str, float]] = {}
    as_of: datetime | None = None
    version: int | None = None
    position: str | None = None
    if fields:
        try:
            stored = decode_fields(fields)
        except LayoutDecodeError as exc:
            error = str(exc)
        else:
            views, as_of, version = stored.views, stored.as_of, stored.version
            position = str(stored.position) if stored.position is not None else None
    age_s = (now - as_of).total_seconds() if as_of is not None else None
    features: dict[str, dict[str, Any]] = {}
    for d in defs:
        value = views.get(d.view, {}).get(d.name)
        if value is None or age_s is None:
            features[d.name] = {"value": None, "age_s": None, "status": Status.MISSING.value}
            continue
        fresh = age_s <= d.freshness.total_seconds()
        features[d.name] = {
            "value": value,
            "age_s": round(age_s, 3),
            "status": (Status.PRESENT if fresh else Status.STALE).value,
        }
    out: dict[str, Any] = {
        "entity_type": entity_type.value,
        "entity_id": entity_id,
        "found": found,
        "as_of": as_of.isoformat() if as_of is not None else None,
        "version": version,
        "position": position,
        "features": features,
    }
    if error is not None:
        out["error"] = error
    return out


def registry_entry(d: FeatureDef) -> dict[str, Any]:
    return {
        "name": d.name,
        "entity": d.entity.value,
        "view": d.view,
        "stored": d.view != VIEW_REQUEST,
        "window_s": d.window.total_seconds() if d.window is not None else None,
        "delay_s": d.delay.total_seconds() if d.delay is not None else None,
        "type": d.kind,
        "description": d.description,
        "freshness_s": d.freshness.total_seconds(),
    }
