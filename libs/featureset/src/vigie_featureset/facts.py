"""The facts the window state keeps, built from contract events: small, frozen, and hashable."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from vigie_contracts.events.clickstream import SessionSummary
from vigie_contracts.events.fraud import FraudLabel, LabelValue
from vigie_contracts.events.payments import RefundCreated, TransactionCreated

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def to_us(value: datetime) -> int:
    """Epoch microseconds of an event time; a naive datetime is taken as UTC."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_us(value: int) -> datetime:
    """The UTC datetime of epoch microseconds."""
    return datetime.fromtimestamp(value // 1_000_000, tz=UTC).replace(microsecond=value % 1_000_000)


@dataclass(frozen=True, slots=True)
class TxFact:
    """A transaction as the windows see it. ``ts_us`` is ``occurred_at`` in epoch microseconds."""

    transaction_id: str
    customer_id: str
    card_token: str | None
    terminal_id: str
    merchant_id: str
    device_id: str | None
    amount_minor: int
    occurred_at: datetime
    ts_us: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "ts_us", to_us(self.occurred_at))

    @classmethod
    def from_event(cls, event: TransactionCreated) -> TxFact:
        return cls(
            transaction_id=event.transaction_id,
            customer_id=event.customer_id,
            card_token=event.card_token,
            terminal_id=event.terminal_id,
            merchant_id=event.merchant_id,
            device_id=event.device_id,
            amount_minor=event.amount_minor,
            occurred_at=event.occurred_at,
        )

    @property
    def amount(self) -> float:
        """Major units, the handbook's TX_AMOUNT."""
        return self.amount_minor / 100.0

    @property
    def has_card(self) -> bool:
        # None, "" and "0" mean no card (NaN too, from a pandas column)
        return isinstance(self.card_token, str) and self.card_token not in ("", "0")


@dataclass(frozen=True, slots=True)
class LabelFact:
    """The truth about one transaction, known at ``labelled_at``."""

    transaction_id: str
    fraud: bool
    labelled_at: datetime

    @classmethod
    def from_event(cls, event: FraudLabel) -> LabelFact:
        return cls(event.transaction_id, event.label == LabelValue.FRAUD, event.labelled_at)


@dataclass(frozen=True, slots=True)
class RefundFact:
    """A refund of one of the customer's transactions, counted at ``created_at``."""

    refund_id: str
    transaction_id: str
    customer_id: str
    created_at: datetime
    amount_minor: int

    @classmethod
    def from_event(cls, event: RefundCreated, customer_id: str | None = None) -> RefundFact:
        """``customer_id`` is required when the event does not carry it (the caller looks it up)."""
        owner = event.customer_id or customer_id
        if not owner:
            raise ValueError(f"refund {event.refund_id!r} has no customer_id")
        return cls(
            event.refund_id, event.transaction_id, owner, event.created_at, event.amount_minor
        )


@dataclass(frozen=True, slots=True)
class SessionFact:
    """A closed clickstream session; its user id is the customer id."""

    session_id: str
    customer_id: str
    ended_at: datetime
    failed_logins: int

    @classmethod
    def from_event(cls, event: SessionSummary) -> SessionFact:
        return cls(event.session_id, event.user_id, event.ended_at, event.failed_logins)
