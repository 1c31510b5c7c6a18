"""Avro schemas derived from the pydantic models: the models are the source, ``.avsc`` the record.

Mapping (chosen for consumers in any language, and for safe evolution):
- ``str`` → string; ``int`` → long; ``float`` → double; ``bool`` → boolean
- ``datetime`` → long ``timestamp-micros`` (UTC); ``date`` → int ``date``
- a ``StrEnum`` → string, its symbols listed in ``doc``: adding a symbol stays compatible both
  ways, which an Avro enum without a default would not
- ``X | None`` → union ``["null", X]`` with default null
- ``list[X]`` → array; ``dict[str, X]`` → map; a nested model → a named record
A field with a default in the model has that default in the schema, which is what lets a newer
reader read older data (BACKWARD) and an older reader skip newer fields (FORWARD).
"""

from __future__ import annotations

import enum
import types
from datetime import date, datetime
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from .events.base import Envelope, Event

NAMESPACE = "io.vigie.events"

AvroSchema = dict[str, Any]


def _record_name(model: type[BaseModel]) -> str:
    return model.__name__


def _is_optional(annotation: Any) -> tuple[bool, Any]:
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [arg for arg in get_args(annotation) if arg is not type(None)]
        if len(args) == 1 and len(get_args(annotation)) == 2:
            return True, args[0]
        raise TypeError(f"unions other than X | None are not part of the contract: {annotation}")
    return False, annotation


def _type(annotation: Any, seen: set[str]) -> Any:
    optional, inner = _is_optional(annotation)
    if optional:
        return ["null", _type(inner, seen)]
    origin = get_origin(inner)
    if origin is list:
        (item,) = get_args(inner)
        return {"type": "array", "items": _type(item, seen)}
    if origin is dict:
        key, value = get_args(inner)
        if key is not str:
            raise TypeError("map keys are strings in Avro")
        return {"type": "map", "values": _type(value, seen)}
    if isinstance(inner, type):
        if issubclass(inner, enum.Enum):
            return "string"
        if issubclass(inner, bool):
            return "boolean"
        if issubclass(inner, int):
            return "long"
        if issubclass(inner, float):
            return "double"
        if issubclass(inner, str):
            return "string"
        if issubclass(inner, datetime):
            return {"type": "long", "logicalType": "timestamp-micros"}
        if issubclass(inner, date):
            return {"type": "int", "logicalType": "date"}
        if issubclass(inner, BaseModel):
            name = _record_name(inner)
            if name in seen:
                return name
            seen.add(name)
            return _record(inner, seen)
    raise TypeError(f"no Avro mapping for {inner!r}")


def _default(info: FieldInfo) -> tuple[bool, Any]:
    if info.default is not PydanticUndefined:
        value = info.default
        return True, value.value if isinstance(value, enum.Enum) else value
    if info.default_factory is not None:
        return True, info.default_factory()  # type: ignore[call-arg]  # no-arg factories only
    return False, None


def _enum_doc(annotation: Any) -> str | None:
    _, inner = _is_optional(annotation)
    if isinstance(inner, type) and issubclass(inner, enum.Enum):
        return "one of: " + ", ".join(str(member.value) for member in inner)
    return None


def _record(model: type[BaseModel], seen: set[str]) -> AvroSchema:
    fields = []
    for name, info in model.model_fields.items():
        field: AvroSchema = {"name": name, "type": _type(info.annotation, seen)}
        doc = info.description or _enum_doc(info.annotation)
        if doc:
            field["doc"] = doc
        has_default, value = _default(info)
        if has_default:
            field["default"] = value
        fields.append(field)
    record: AvroSchema = {"type": "record", "name": _record_name(model), "fields": fields}
    if model.__doc__ and model.__module__.startswith("vigie_contracts"):
        record["doc"] = " ".join(model.__doc__.split())
    return record


def event_schema(model: type[Event]) -> AvroSchema:
    """The full schema of one event type's messages: the envelope with this payload."""
    seen: set[str] = set()
    payload = _record(model, seen)
    payload["name"] = f"{model.__name__}Payload"
    envelope_fields = []
    for name, info in Envelope.model_fields.items():
        if name == "payload":
            envelope_fields.append({"name": "payload", "type": payload})
            continue
        field: AvroSchema = {"name": name, "type": _type(info.annotation, seen)}
        if name == "event_type":
            field["default"] = model.EVENT_TYPE
        elif name == "schema_version":
            field["default"] = model.SCHEMA_VERSION
        elif info.default is None:
            field["default"] = None
        envelope_fields.append(field)
    return {
        "type": "record",
        "name": model.__name__,
        "namespace": NAMESPACE,
        "doc": f"{model.EVENT_TYPE} v{model.SCHEMA_VERSION}",
        "fields": envelope_fields,
    }
