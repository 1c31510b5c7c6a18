"""Pure logic of the features service: routing and decoding, state updates, lookups."""

from __future__ import annotations

from .lookup import LookupError_, Status, describe, parse_entity_type, registry_entry, select
from .routing import (
    Fact,
    Forward,
    Ignored,
    Kind,
    Routed,
    decode_forward,
    decode_internal,
    decode_source,
    encode_forward,
    encode_internal,
    event_id_of,
    event_time_of,
    route,
)
from .updates import (
    HeldLabels,
    Step,
    Touched,
    apply,
    hash_fields,
    on_customer_event,
    on_forward,
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
    "decode_forward",
    "decode_internal",
    "decode_source",
    "describe",
    "encode_forward",
    "encode_internal",
    "event_id_of",
    "event_time_of",
    "hash_fields",
    "on_customer_event",
    "on_forward",
    "parse_entity_type",
    "registry_entry",
    "route",
    "route_of",
    "select",
]
