"""The online store's layout in Redis, shared by services/features (writer) and inference (reader).

One hash per entity, key ``feat:{entity_type}:{entity_id}`` (the store may add its own prefix):

- ``state``: the EntityState as JSON text (``EntityState.to_bytes()``, which is UTF-8);
- one field per view (``customer_windows``, ``card_windows``, ``terminal_risk`` ...): that view's
  values as a JSON object;
- ``_as_of``: event time of the last update, epoch microseconds;
- ``_v``: the version, ``EntityState.version`` (a counter bumped on each change: monotonic, and
  not stuck when a late event changes the state without moving its latest time). vigie_stores'
  ``RedisStore.write_versioned`` writes ``_v`` itself, so ``encode_fields`` leaves it out;
- ``_pos``: the stream position of the last applied event, ``topic:partition:offset``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

import orjson

from vigie_contracts.events.features import EntityType

from .errors import FeaturesetError, StateDecodeError
from .facts import from_us, to_us
from .registry import feature
from .state import DEFAULT_LATENESS, HORIZONS, EntityState

KEY_PREFIX = "feat"
FIELD_STATE = "state"
FIELD_AS_OF = "_as_of"
FIELD_VERSION = "_v"
FIELD_POSITION = "_pos"
RESERVED_FIELDS = frozenset({FIELD_STATE, FIELD_AS_OF, FIELD_VERSION, FIELD_POSITION})

_TTL_MARGIN = timedelta(days=1)


def entity_key(entity_type: EntityType | str, entity_id: str, prefix: str = KEY_PREFIX) -> str:
    """``feat:customer:C42``."""
    return f"{prefix}:{EntityType(entity_type).value}:{entity_id}"


def parse_entity_key(key: str, prefix: str = KEY_PREFIX) -> tuple[EntityType, str]:
    head, sep, rest = key.partition(":")
    kind, sep2, entity_id = rest.partition(":")
    if head != prefix or not sep or not sep2 or not entity_id:
        raise ValueError(f"not a feature key: {key!r}")
    return EntityType(kind), entity_id


def default_ttl(entity_type: EntityType | str, lateness: timedelta = DEFAULT_LATENESS) -> timedelta:
    """How long an untouched hash lives: the longest horizon + lateness + a day's margin
    (32 days for customers and devices, 39 for terminals and merchants, 3 for cards)."""
    return HORIZONS[EntityType(entity_type)] + lateness + _TTL_MARGIN


@dataclass(frozen=True, slots=True)
class StreamPosition:
    """Where an event was read: the "known event" a stored state is up to."""

    topic: str
    partition: int
    offset: int

    def __str__(self) -> str:
        return f"{self.topic}:{self.partition}:{self.offset}"

    @classmethod
    def parse(cls, text: str) -> StreamPosition:
        topic, _, rest = text.rpartition(":")
        topic, _, partition = topic.rpartition(":")
        try:
            return cls(topic, int(partition), int(rest))
        except ValueError:
            raise ValueError(f"not a stream position (topic:partition:offset): {text!r}") from None


def encode_view(values: Mapping[str, float]) -> str:
    return orjson.dumps(dict(values)).decode()


def decode_view(text: str | bytes) -> dict[str, float]:
    raw = orjson.loads(text)
    if not isinstance(raw, dict):
        raise ValueError("a view is a JSON object")
    return {str(k): float(v) for k, v in raw.items()}


def encode_fields(
    state: EntityState,
    values: Mapping[str, float] | Mapping[str, Mapping[str, float]],
    *,
    as_of: datetime | None = None,
    position: StreamPosition | str | None = None,
) -> dict[str, str]:
    """The hash fields for one entity, without ``_v`` (pass ``state.version`` as the version).

    ``values``: flat feature values (``entity_values()``; grouped here into their registry views)
    or values already grouped by view (``entity_view_values()``).
    """
    fields = {FIELD_STATE: state.to_bytes().decode()}
    for view, view_values in _by_view(values).items():
        if view in RESERVED_FIELDS:
            raise ValueError(f"view name {view!r} is a reserved field")
        fields[view] = encode_view(view_values)
    when = to_us(as_of) if as_of is not None else state.last_event_us
    if when is not None:
        fields[FIELD_AS_OF] = str(when)
    if position is not None:
        fields[FIELD_POSITION] = str(position)
    return fields


def _by_view(
    values: Mapping[str, float] | Mapping[str, Mapping[str, float]],
) -> dict[str, Mapping[str, float]]:
    grouped: dict[str, dict[str, float]] = {}
    nested: dict[str, Mapping[str, float]] = {}
    for name, value in values.items():
        if isinstance(value, Mapping):
            nested[name] = value
        else:
            grouped.setdefault(feature(name).view, {})[name] = float(value)
    if nested and grouped:
        raise ValueError("mixed flat feature values and views")
    return nested or dict(grouped)


@dataclass(frozen=True, slots=True)
class StoredEntity:
    """One entity's hash, decoded."""

    state: EntityState | None
    views: dict[str, dict[str, float]]
    as_of: datetime | None
    version: int | None
    position: StreamPosition | None


class LayoutDecodeError(FeaturesetError):
    """A feature hash whose fields cannot be decoded."""


def _text(value: str | bytes) -> str:
    return value.decode() if isinstance(value, bytes) else value


def decode_fields(fields: Mapping[str, str] | Mapping[bytes, bytes]) -> StoredEntity:
    """The inverse of ``encode_fields`` (plus ``_v``); raises LayoutDecodeError."""
    flat = {_text(k): v for k, v in fields.items()}
    try:
        raw_state = flat.get(FIELD_STATE)
        state = EntityState.from_bytes(raw_state) if raw_state is not None else None
        views = {name: decode_view(v) for name, v in flat.items() if name not in RESERVED_FIELDS}
        as_of_raw = flat.get(FIELD_AS_OF)
        version_raw = flat.get(FIELD_VERSION)
        pos_raw = flat.get(FIELD_POSITION)
        return StoredEntity(
            state=state,
            views=views,
            as_of=from_us(int(as_of_raw)) if as_of_raw is not None else None,
            version=int(version_raw) if version_raw is not None else None,
            position=StreamPosition.parse(_text(pos_raw)) if pos_raw is not None else None,
        )
    except (StateDecodeError, ValueError, orjson.JSONDecodeError) as exc:
        raise LayoutDecodeError(f"bad feature hash: {exc}") from exc


def decode_state(fields: Mapping[str, str] | None) -> EntityState | None:
    """Just the state of a hash read with ``RedisStore.read_hash`` (None: no hash, no state)."""
    if not fields or FIELD_STATE not in fields:
        return None
    return EntityState.from_bytes(fields[FIELD_STATE])
