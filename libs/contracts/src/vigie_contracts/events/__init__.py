"""Every event type of vigie, by the name other teams subscribe to."""

from __future__ import annotations

from ..errors import UnknownEventType
from .alerts import Alert
from .base import Envelope, Event
from .clickstream import ClickstreamEvent, SessionSummary
from .features import FeatureVectorUpdated
from .fraud import DriftSignal, FraudDecision, FraudLabel, FraudScore
from .logs import SecurityEvent
from .ops import ServiceHeartbeat
from .payments import (
    CardUpserted,
    CustomerUpserted,
    DisputeOpened,
    DisputeResolved,
    MerchantUpserted,
    RefundCreated,
    TerminalUpserted,
    TransactionCreated,
    TransactionStatusChanged,
)

EVENT_MODELS: dict[str, type[Event]] = {
    model.EVENT_TYPE: model
    for model in (
        TransactionCreated,
        TransactionStatusChanged,
        RefundCreated,
        DisputeOpened,
        DisputeResolved,
        CustomerUpserted,
        MerchantUpserted,
        TerminalUpserted,
        CardUpserted,
        ClickstreamEvent,
        SessionSummary,
        SecurityEvent,
        FeatureVectorUpdated,
        FraudScore,
        FraudDecision,
        FraudLabel,
        DriftSignal,
        Alert,
        ServiceHeartbeat,
    )
}


def model_for(event_type: str) -> type[Event]:
    try:
        return EVENT_MODELS[event_type]
    except KeyError:
        raise UnknownEventType(f"no event type {event_type!r}") from None


__all__ = [
    "EVENT_MODELS",
    "Alert",
    "CardUpserted",
    "ClickstreamEvent",
    "CustomerUpserted",
    "DisputeOpened",
    "DisputeResolved",
    "DriftSignal",
    "Envelope",
    "Event",
    "FeatureVectorUpdated",
    "FraudDecision",
    "FraudLabel",
    "FraudScore",
    "MerchantUpserted",
    "RefundCreated",
    "SecurityEvent",
    "ServiceHeartbeat",
    "SessionSummary",
    "TerminalUpserted",
    "TransactionCreated",
    "TransactionStatusChanged",
    "model_for",
]
