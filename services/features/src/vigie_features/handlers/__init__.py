"""Pure logic of the features service: routing and decoding, state updates, lookups."""

from __future__ import annotations

from .lookup import LookupError_, Status, describe, parse_entity_type, registry_entry, select
from .routing import (
    Fact,
    Ignored,
    Kind,
    Routed,
    decode_internal,
    decode_source,
    encode_internal,
    event_id_of,
    event_time_of,
    route,
)
from .updates import (
    Forward,
    HeldLabels,
    Step,
    Touched,
    apply,
    hash_fields,
    on_customer_event,
    on_entity_event,
    route_of,
)

__all__ = [
    "Fact",
    "Forward",
    "HeldLabels",
    "Ignored",
    "Kind",
    "LookupError_",
    "Routed",
    "Status",
    "Step",
    "Touched",
    "apply",
    "decode_internal",
    "decode_source",
    "describe",
    "encode_internal",
    "event_id_of",
    "event_time_of",
    "hash_fields",
    "on_customer_event",
    "on_entity_event",
    "parse_entity_type",
    "registry_entry",
    "route",
    "route_of",
    "select",
]
