"""Feature updates of services/features, for consumers that want the online features as a stream."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from .base import Event


class EntityType(StrEnum):
    CUSTOMER = "customer"
    CARD = "card"
    MERCHANT = "merchant"
    TERMINAL = "terminal"
    DEVICE = "device"


class FeatureVectorUpdated(Event):
    """The new values of one feature view of one entity. Compacted by ``entity_type:entity_id``."""

    EVENT_TYPE: ClassVar[str] = "feature_vector_updated"

    entity_type: EntityType
    entity_id: str
    view: str
    values: dict[str, float] = Field(default_factory=dict)
    as_of: datetime
    version: int = Field(ge=0)
