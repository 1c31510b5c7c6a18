"""Test helpers shipped with the contracts: hypothesis strategies for every event model.

``envelopes(model)`` draws valid envelopes whose payload respects the model's constraints
(patterns, bounds), so consumers can property-test their handlers against the contract.
"""

from __future__ import annotations

import enum
import types
from datetime import UTC, date, datetime
from typing import Any, Union, get_args, get_origin

from hypothesis import strategies as st
from pydantic import BaseModel
from pydantic.fields import FieldInfo

from .events import Envelope, Event

# Avro timestamp-micros: microsecond precision, UTC, within what every language handles.
_DATETIMES = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC)
)
_TEXT = st.text(max_size=40)


def _constraints(info: FieldInfo) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for meta in info.metadata:
        for attr in ("pattern", "ge", "gt", "le", "lt", "min_length", "max_length"):
            value = getattr(meta, attr, None)
            if value is not None:
                found[attr] = value
    return found


def _for(annotation: Any, info: FieldInfo | None) -> st.SearchStrategy[Any]:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        inner = next(a for a in get_args(annotation) if a is not type(None))
        return st.none() | _for(inner, info)
    if origin is list:
        (item,) = get_args(annotation)
        return st.lists(_for(item, None), max_size=3)
    if origin is dict:
        _, value = get_args(annotation)
        return st.dictionaries(_TEXT, _for(value, None), max_size=3)
    c = _constraints(info) if info is not None else {}
    if isinstance(annotation, type):
        if issubclass(annotation, enum.Enum):
            return st.sampled_from(list(annotation))
        if issubclass(annotation, bool):
            return st.booleans()
        if issubclass(annotation, int):
            low = c.get("ge", c["gt"] + 1 if "gt" in c else -(2**63))
            high = c.get("le", c["lt"] - 1 if "lt" in c else 2**63 - 1)
            return st.integers(min_value=low, max_value=high)
        if issubclass(annotation, float):
            return st.floats(
                min_value=c.get("ge", c.get("gt")),
                max_value=c.get("le", c.get("lt")),
                exclude_min="gt" in c,
                exclude_max="lt" in c,
                allow_nan=False,
            )
        if issubclass(annotation, str):
            if "pattern" in c:
                return st.from_regex(c["pattern"], fullmatch=True)
            longest = min(c.get("max_length", 40), 40)
            return st.text(min_size=c.get("min_length", 0), max_size=longest)
        if issubclass(annotation, datetime):
            return _DATETIMES
        if issubclass(annotation, date):
            return st.dates()
        if issubclass(annotation, BaseModel):
            return models(annotation)
    raise TypeError(f"no strategy for {annotation!r}")


def models(model: type[BaseModel]) -> st.SearchStrategy[Any]:
    fields = {name: _for(info.annotation, info) for name, info in model.model_fields.items()}
    return st.fixed_dictionaries(fields).map(lambda values: model(**values))


def envelopes(model: type[Event]) -> st.SearchStrategy[Envelope[Event]]:
    return st.builds(
        lambda payload, event_time, producer, traceparent: Envelope.wrap(
            payload, producer=producer, event_time=event_time, traceparent=traceparent
        ),
        models(model),
        _DATETIMES,
        st.text(min_size=1, max_size=20),
        st.none() | st.from_regex(r"00-[0-9a-f]{32}-[0-9a-f]{16}-0[01]", fullmatch=True),
    )
