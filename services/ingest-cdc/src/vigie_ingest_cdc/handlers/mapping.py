"""One redacted change → the domain events, the mirror write and nothing else (pure).

What each table's changes become (anything not listed only updates the mirror):

- transactions: create / read → ``transaction_created``; an update that moves the status →
  ``transaction_status_changed`` (previous status from the before image); delete → mirror only.
- refunds: create / read → ``refund_created``.
- disputes: create / read → ``dispute_opened`` (and ``dispute_resolved`` if born resolved); an
  update reaching won / lost / accepted → ``dispute_resolved``.
- customers, merchants, terminals, cards: every change → ``<entity>_upserted`` (``deleted`` on a
  delete, built from the before image).

Snapshot reads (``op = r``) publish like creates, so a new deployment bootstraps its consumers
from Debezium's initial snapshot. The event id is a UUIDv5 of (table, primary key, LSN, op, event
type): a replay, a retry or a restart publishes the very same id, and consumers deduplicate on it.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from vigie_contracts import Envelope, Event, Topic
from vigie_contracts.events import (
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
from vigie_contracts.events.payments import (
    DisputeCategory,
    DisputeOutcome,
    EntityStatus,
    TransactionStatus,
)
from vigie_contracts.topics import (
    CARDS,
    CUSTOMERS,
    DISPUTES,
    MERCHANTS,
    REFUNDS,
    TERMINALS,
    TRANSACTIONS,
)

from ..errors import BadChange
from . import normalize as n
from .changes import Change, Op, Row

PRODUCER = "ingest-cdc"
#: namespace of the deterministic event ids (uuid5(NAMESPACE_URL, "urn:vigie:ingest-cdc"))
EVENT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "urn:vigie:ingest-cdc")
RESOLVED = frozenset(o.value for o in DisputeOutcome)
#: the meta-data a mirror document carries about the change that wrote it
SOURCE_FIELD = "_source"


@dataclass(frozen=True, slots=True)
class CardRef:
    token: str | None
    bin: str | None
    last4: str | None


@dataclass(frozen=True, slots=True)
class Lookups:
    """What a change needs from other tables (this batch first, then the mirrors)."""

    customer_of_transaction: Mapping[str, str] = field(default_factory=dict)
    card: Mapping[str, CardRef] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Publication:
    topic: Topic
    key: str
    envelope: Envelope[Event]


@dataclass(frozen=True, slots=True)
class MirrorWrite:
    """A versioned write of one mirror document (``doc=None``: a tombstone)."""

    collection: str
    id: int | str
    version: int
    doc: dict[str, Any] | None


@dataclass(frozen=True, slots=True)
class Outputs:
    events: tuple[Publication, ...] = ()
    mirror: MirrorWrite | None = None
    #: a truncate: every document of this collection older than ``truncate_version`` goes
    truncate: str | None = None
    truncate_version: int = 0


def event_id(change: Change, event_type: str) -> str:
    name = f"{change.table}:{change.key}:{change.lsn}:{change.op.value}:{event_type}"
    return str(uuid.uuid5(EVENT_ID_NAMESPACE, name))


def _str(row: Row, column: str) -> str | None:
    value = row.get(column)
    return None if value is None else str(value).strip()


def _req(row: Row, column: str, table: str) -> Any:
    value = row.get(column)
    if value is None:
        raise BadChange("missing_column", f"{table}.{column} is null or absent")
    return value


def _float(row: Row, column: str) -> float | None:
    value = row.get(column)
    return None if value is None else float(value)


def mirror_doc(change: Change) -> dict[str, Any]:
    """The (redacted) row as stored in MongoDB: timestamps as dates, money also in minor units,
    unknown columns kept as they came."""
    row = change.row or {}
    doc: dict[str, Any] = {}
    for column, value in row.items():
        if column.endswith("_at") and isinstance(value, str | int) and value is not None:
            doc[column] = n.timestamp(value, f"{change.table}.{column}")
        elif column == "country_code" and value is not None:
            doc[column] = n.country(value)
        else:
            doc[column] = value
    if "amount" in row and "currency" in row:
        code = n.currency(row["currency"])
        doc["currency"] = code
        doc["amount_minor"] = n.minor_units(row["amount"], code)
    doc[SOURCE_FIELD] = {
        "lsn": change.lsn,
        "tx_id": change.tx_id,
        "op": change.op.value,
        "snapshot": change.snapshot,
        "committed_at": n.from_epoch_ms(change.source_ts_ms),
    }
    return doc


def _wrap(change: Change, payload: Event, topic: Topic, key: str, when: datetime) -> Publication:
    envelope = Envelope.wrap(
        payload,
        producer=PRODUCER,
        event_time=when,
        event_id=event_id(change, payload.EVENT_TYPE),
    )
    return Publication(topic, key, envelope)


def _status(value: Any) -> TransactionStatus:
    try:
        return TransactionStatus(str(value).strip().lower())
    except ValueError:
        raise BadChange("bad_status", f"transaction status {value!r} not in the contract") from None


def _transactions(change: Change, lookups: Lookups) -> list[Publication]:
    row = change.after
    if row is None or change.op is Op.DELETE:
        return []
    t = "transactions"
    code = n.currency(_req(row, "currency", t))
    amount = n.minor_units(_req(row, "amount", t), code)
    customer = str(_req(row, "customer_id", t))
    status = _status(_req(row, "status", t))
    if change.op in (Op.CREATE, Op.READ):
        card = lookups.card.get(str(row.get("card_id")), CardRef(None, None, None))
        occurred = n.timestamp(_req(row, "occurred_at", t), "transactions.occurred_at")
        created = TransactionCreated(
            transaction_id=str(_req(row, "id", t)),
            customer_id=customer,
            card_token=card.token,
            card_bin=card.bin,
            card_last4=card.last4,
            terminal_id=str(_req(row, "terminal_id", t)),
            merchant_id=str(_req(row, "merchant_id", t)),
            amount_minor=amount,
            currency=code,
            status=status,
            channel=_req(row, "channel", t),
            entry_mode=_str(row, "entry_mode"),
            device_id=_str(row, "device_id"),
            ip_pseudonym=_str(row, "ip_address_pseudonym"),
            occurred_at=occurred,
            source_lsn=change.lsn,
        )
        return [_wrap(change, created, TRANSACTIONS, customer, occurred)]
    previous = None if change.before is None else change.before.get("status")
    if previous is not None and _status(previous) is status:
        return []  # another column changed: the mirror has it, no domain fact happened
    changed_at = n.timestamp(row.get("updated_at") or change.source_ts_ms * 1000, "updated_at")
    moved = TransactionStatusChanged(
        transaction_id=str(_req(row, "id", t)),
        customer_id=customer,
        previous_status=None if previous is None else _status(previous),
        status=status,
        amount_minor=amount,
        currency=code,
        decline_reason=_str(row, "decline_reason"),
        changed_at=changed_at,
        source_lsn=change.lsn,
    )
    return [_wrap(change, moved, TRANSACTIONS, customer, changed_at)]


def _refunds(change: Change, lookups: Lookups) -> list[Publication]:
    row = change.after
    if row is None or change.op not in (Op.CREATE, Op.READ):
        return []
    t = "refunds"
    code = n.currency(_req(row, "currency", t))
    amount = n.minor_units(_req(row, "amount", t), code, allow_zero=False)
    transaction = str(_req(row, "transaction_id", t))
    customer = lookups.customer_of_transaction.get(transaction)
    created_at = n.timestamp(_req(row, "created_at", t), "refunds.created_at")
    refund = RefundCreated(
        refund_id=str(_req(row, "id", t)),
        transaction_id=transaction,
        customer_id=customer,
        amount_minor=amount,
        currency=code,
        reason=_str(row, "reason"),
        status=str(_req(row, "status", t)),
        created_at=created_at,
        source_lsn=change.lsn,
    )
    return [_wrap(change, refund, REFUNDS, customer or transaction, created_at)]


def _category(value: Any) -> DisputeCategory:
    try:
        return DisputeCategory(str(value).strip().lower())
    except ValueError:
        raise BadChange("bad_category", f"dispute category {value!r} not in the contract") from None


def _disputes(change: Change, lookups: Lookups) -> list[Publication]:
    row = change.after
    if row is None or change.op is Op.DELETE:
        return []
    t = "disputes"
    transaction = str(_req(row, "transaction_id", t))
    customer = lookups.customer_of_transaction.get(transaction)
    key = customer or transaction
    category = _category(_req(row, "category", t))
    status = str(_req(row, "status", t)).strip().lower()
    out: list[Publication] = []
    if change.op in (Op.CREATE, Op.READ):
        code = n.currency(_req(row, "currency", t))
        opened_at = n.timestamp(_req(row, "opened_at", t), "disputes.opened_at")
        opened = DisputeOpened(
            dispute_id=str(_req(row, "id", t)),
            transaction_id=transaction,
            customer_id=customer,
            reason_code=str(_req(row, "reason_code", t)),
            category=category,
            amount_minor=n.minor_units(_req(row, "amount", t), code, allow_zero=False),
            currency=code,
            opened_at=opened_at,
            source_lsn=change.lsn,
        )
        out.append(_wrap(change, opened, DISPUTES, key, opened_at))
        was_resolved = False
    else:
        previous = None if change.before is None else change.before.get("status")
        was_resolved = str(previous).strip().lower() in RESOLVED
    if status in RESOLVED and not was_resolved:
        resolved_at = n.timestamp(
            row.get("resolved_at") or row.get("updated_at") or change.source_ts_ms * 1000,
            "disputes.resolved_at",
        )
        resolved = DisputeResolved(
            dispute_id=str(_req(row, "id", t)),
            transaction_id=transaction,
            category=category,
            outcome=DisputeOutcome(status),
            resolved_at=resolved_at,
            source_lsn=change.lsn,
        )
        out.append(_wrap(change, resolved, DISPUTES, key, resolved_at))
    return out


def _entity(change: Change) -> list[Publication]:
    row = change.row
    if row is None:
        return []
    t = change.table
    deleted = change.op is Op.DELETE
    committed = n.from_epoch_ms(change.source_ts_ms)
    updated = committed if deleted else n.timestamp(_req(row, "updated_at", t), f"{t}.updated_at")
    pk = str(_req(row, "id", t))
    try:
        status = EntityStatus(str(_req(row, "status", t)).strip().lower())
    except ValueError:
        raise BadChange(
            "bad_status", f"{t} status {row.get('status')!r} not in the contract"
        ) from None
    payload: Event
    topic: Topic
    if t == "customers":
        topic = CUSTOMERS
        payload = CustomerUpserted(
            customer_id=pk,
            email_pseudonym=_str(row, "email_pseudonym"),
            phone_pseudonym=_str(row, "phone_pseudonym"),
            country_code=n.country(_req(row, "country_code", t)),
            risk_segment=str(_req(row, "risk_segment", t)),
            status=status,
            location_x=_float(row, "location_x"),
            location_y=_float(row, "location_y"),
            created_at=n.timestamp(_req(row, "created_at", t), "customers.created_at"),
            updated_at=updated,
            deleted=deleted,
            source_lsn=change.lsn,
        )
    elif t == "merchants":
        topic = MERCHANTS
        payload = MerchantUpserted(
            merchant_id=pk,
            name=str(_req(row, "name", t)),
            mcc=str(_req(row, "mcc", t)).strip(),
            country_code=n.country(_req(row, "country_code", t)),
            city=_str(row, "city"),
            status=status,
            updated_at=updated,
            deleted=deleted,
            source_lsn=change.lsn,
        )
    elif t == "terminals":
        topic = TERMINALS
        payload = TerminalUpserted(
            terminal_id=pk,
            merchant_id=str(_req(row, "merchant_id", t)),
            terminal_type=str(_req(row, "terminal_type", t)),
            location_x=_float(row, "location_x"),
            location_y=_float(row, "location_y"),
            country_code=n.country(_req(row, "country_code", t)),
            status=status,
            updated_at=updated,
            deleted=deleted,
            source_lsn=change.lsn,
        )
    else:
        topic = CARDS
        payload = CardUpserted(
            card_id=pk,
            customer_id=str(_req(row, "customer_id", t)),
            card_token=str(_req(row, "card_token", t)),
            card_bin=str(_req(row, "card_bin", t)),
            card_last4=str(_req(row, "card_last4", t)),
            brand=str(_req(row, "brand", t)),
            card_type=str(_req(row, "card_type", t)),
            expiry_month=int(_req(row, "expiry_month", t)),
            expiry_year=int(_req(row, "expiry_year", t)),
            status=status,
            updated_at=updated,
            deleted=deleted,
            source_lsn=change.lsn,
        )
    return [_wrap(change, payload, topic, pk, updated)]


ENTITY_TABLES = frozenset({"customers", "merchants", "terminals", "cards"})


def map_change(change: Change, lookups: Lookups) -> Outputs:
    """The domain events and mirror write of one change whose PII was already replaced."""
    if change.op is Op.TRUNCATE:
        return Outputs(truncate=change.table, truncate_version=change.lsn)
    try:
        if change.table == "transactions":
            events = _transactions(change, lookups)
        elif change.table == "refunds":
            events = _refunds(change, lookups)
        elif change.table == "disputes":
            events = _disputes(change, lookups)
        elif change.table in ENTITY_TABLES:
            events = _entity(change)
        else:
            raise BadChange("unknown_table", f"table {change.table!r} is not ingested")
        doc = None if change.op is Op.DELETE else mirror_doc(change)
    except ValidationError as exc:
        # the values are redacted already: the message may name them
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors())
        raise BadChange("contract_violation", f"{change.table}: {detail}") from None
    except (TypeError, ValueError) as exc:
        if isinstance(exc, BadChange):
            raise
        raise BadChange("bad_value", f"{change.table}: {exc}") from None
    mirror = MirrorWrite(change.table, change.key, change.lsn, doc)
    return Outputs(events=tuple(events), mirror=mirror)
