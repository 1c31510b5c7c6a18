"""Domain events of payments, published by ingest-cdc from the OLTP database's changes.

Money is in minor units (an integer number of cents for EUR, yen for JPY) with its ISO 4217
currency, so no consumer ever rounds a float. Card numbers never appear: a keyed token, the BIN
and the last four digits stand for them. ``source_lsn`` is the PostgreSQL log position of the
change: a consumer that keeps state orders updates of one entity by it.
"""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from .base import COUNTRY_PATTERN, CURRENCY_PATTERN, Event


class TransactionStatus(StrEnum):
    PENDING = "pending"
    AUTHORIZED = "authorized"
    CAPTURED = "captured"
    DECLINED = "declined"
    REVERSED = "reversed"
    REFUNDED = "refunded"
    FAILED = "failed"


class Channel(StrEnum):
    POS = "pos"
    ECOMMERCE = "ecommerce"
    ATM = "atm"
    MOTO = "moto"


class EntityStatus(StrEnum):
    ACTIVE = "active"
    SUSPENDED = "suspended"
    CLOSED = "closed"
    INACTIVE = "inactive"
    BLOCKED = "blocked"
    EXPIRED = "expired"
    LOST = "lost"
    STOLEN = "stolen"
    DECOMMISSIONED = "decommissioned"


class DisputeCategory(StrEnum):
    FRAUD = "fraud"
    AUTHORIZATION = "authorization"
    PROCESSING_ERROR = "processing_error"
    CONSUMER = "consumer"


class DisputeOutcome(StrEnum):
    WON = "won"
    LOST = "lost"
    ACCEPTED = "accepted"


class TransactionCreated(Event):
    """A payment was attempted (any initial status). Keyed by ``customer_id``."""

    EVENT_TYPE: ClassVar[str] = "transaction_created"

    transaction_id: str
    customer_id: str
    card_token: str | None = None
    card_bin: str | None = Field(default=None, pattern=r"^[0-9]{6,8}$")
    card_last4: str | None = Field(default=None, pattern=r"^[0-9]{4}$")
    terminal_id: str
    merchant_id: str
    amount_minor: int = Field(ge=0)
    currency: str = Field(pattern=CURRENCY_PATTERN)
    status: TransactionStatus
    channel: Channel
    entry_mode: str | None = None
    device_id: str | None = None
    ip_pseudonym: str | None = None
    occurred_at: datetime
    source_lsn: int | None = None


class TransactionStatusChanged(Event):
    """A payment moved to another status (authorized, captured, declined, ...)."""

    EVENT_TYPE: ClassVar[str] = "transaction_status_changed"

    transaction_id: str
    customer_id: str
    previous_status: TransactionStatus | None = None
    status: TransactionStatus
    amount_minor: int = Field(ge=0)
    currency: str = Field(pattern=CURRENCY_PATTERN)
    decline_reason: str | None = None
    changed_at: datetime
    source_lsn: int | None = None


class RefundCreated(Event):
    EVENT_TYPE: ClassVar[str] = "refund_created"

    refund_id: str
    transaction_id: str
    customer_id: str | None = None
    amount_minor: int = Field(gt=0)
    currency: str = Field(pattern=CURRENCY_PATTERN)
    reason: str | None = None
    status: str
    created_at: datetime
    source_lsn: int | None = None


class DisputeOpened(Event):
    """A cardholder disputed a payment; ``category == fraud`` is a fraud label for inference."""

    EVENT_TYPE: ClassVar[str] = "dispute_opened"

    dispute_id: str
    transaction_id: str
    customer_id: str | None = None
    reason_code: str
    category: DisputeCategory
    amount_minor: int = Field(gt=0)
    currency: str = Field(pattern=CURRENCY_PATTERN)
    opened_at: datetime
    source_lsn: int | None = None


class DisputeResolved(Event):
    EVENT_TYPE: ClassVar[str] = "dispute_resolved"

    dispute_id: str
    transaction_id: str
    category: DisputeCategory
    outcome: DisputeOutcome
    resolved_at: datetime
    source_lsn: int | None = None


class CustomerUpserted(Event):
    """The current state of a customer (``deleted`` when removed). Compacted by ``customer_id``."""

    EVENT_TYPE: ClassVar[str] = "customer_upserted"

    customer_id: str
    email_pseudonym: str | None = None
    phone_pseudonym: str | None = None
    country_code: str = Field(pattern=COUNTRY_PATTERN)
    risk_segment: str
    status: EntityStatus
    location_x: float | None = None
    location_y: float | None = None
    created_at: datetime
    updated_at: datetime
    deleted: bool = False
    source_lsn: int | None = None


class MerchantUpserted(Event):
    EVENT_TYPE: ClassVar[str] = "merchant_upserted"

    merchant_id: str
    name: str
    mcc: str = Field(pattern=r"^[0-9]{4}$")
    country_code: str = Field(pattern=COUNTRY_PATTERN)
    city: str | None = None
    status: EntityStatus
    updated_at: datetime
    deleted: bool = False
    source_lsn: int | None = None


class TerminalUpserted(Event):
    EVENT_TYPE: ClassVar[str] = "terminal_upserted"

    terminal_id: str
    merchant_id: str
    terminal_type: str
    location_x: float | None = None
    location_y: float | None = None
    country_code: str = Field(pattern=COUNTRY_PATTERN)
    status: EntityStatus
    updated_at: datetime
    deleted: bool = False
    source_lsn: int | None = None


class CardUpserted(Event):
    EVENT_TYPE: ClassVar[str] = "card_upserted"

    card_id: str
    customer_id: str
    card_token: str
    card_bin: str = Field(pattern=r"^[0-9]{6,8}$")
    card_last4: str = Field(pattern=r"^[0-9]{4}$")
    brand: str
    card_type: str
    expiry_month: int = Field(ge=1, le=12)
    expiry_year: int
    status: EntityStatus
    updated_at: datetime
    deleted: bool = False
    source_lsn: int | None = None
