"""Feature definitions shared by services/features and services/inference.

The registry, entity window state, point-in-time vector completion, the Redis layout, and the
offline reference recomputation.
"""

from .compute import complete, entity_values, entity_view_values, vector_keys
from .errors import FeaturesetError, LateEventError, StateDecodeError, UnknownFeature
from .facts import LabelFact, RefundFact, SessionFact, TxFact, from_us, to_us
from .offline import compute_offline
from .redis_layout import (
    FIELD_AS_OF,
    FIELD_POSITION,
    FIELD_STATE,
    FIELD_VERSION,
    KEY_PREFIX,
    LayoutDecodeError,
    StoredEntity,
    StreamPosition,
    decode_fields,
    decode_state,
    decode_view,
    default_ttl,
    encode_fields,
    encode_view,
    entity_key,
    parse_entity_key,
)
from .registry import (
    FEATURE_NAMES,
    FEATURES,
    HANDBOOK_FEATURES,
    LABEL_DELAY,
    VIEW_CARD,
    VIEW_CUSTOMER,
    VIEW_CUSTOMER_CLICKSTREAM,
    VIEW_MERCHANT,
    VIEW_REQUEST,
    VIEW_TERMINAL,
    FeatureDef,
    feature,
    views,
)
from .state import DEFAULT_LATENESS, HORIZONS, EntityState

__all__ = [
    "DEFAULT_LATENESS",
    "FEATURES",
    "FEATURE_NAMES",
    "FIELD_AS_OF",
    "FIELD_POSITION",
    "FIELD_STATE",
    "FIELD_VERSION",
    "HANDBOOK_FEATURES",
    "HORIZONS",
    "KEY_PREFIX",
    "LABEL_DELAY",
    "VIEW_CARD",
    "VIEW_CUSTOMER",
    "VIEW_CUSTOMER_CLICKSTREAM",
    "VIEW_MERCHANT",
    "VIEW_REQUEST",
    "VIEW_TERMINAL",
    "EntityState",
    "FeatureDef",
    "FeaturesetError",
    "LabelFact",
    "LateEventError",
    "LayoutDecodeError",
    "RefundFact",
    "SessionFact",
    "StateDecodeError",
    "StoredEntity",
    "StreamPosition",
    "TxFact",
    "UnknownFeature",
    "complete",
    "compute_offline",
    "decode_fields",
    "decode_state",
    "decode_view",
    "default_ttl",
    "encode_fields",
    "encode_view",
    "entity_key",
    "entity_values",
    "entity_view_values",
    "feature",
    "from_us",
    "parse_entity_key",
    "to_us",
    "vector_keys",
    "views",
]
