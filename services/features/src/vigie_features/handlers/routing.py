"""What each event is to the feature state, and the private messages between the worker's agents.

Source topics carry vigie Avro envelopes; the worker turns them into the featureset's facts.
Refunds, labels and sessions are re-keyed by customer (the partition that holds the customer's
state); transactions and fraud labels then go on to the merchant's partition (``Forward``), which
holds the states of the merchant and of its terminals.
The re-keyed messages are this service's own compact JSON, never read by anyone else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import orjson

from vigie_contracts import DecodeError, Envelope, Event
from vigie_contracts.events import (
    FraudLabel,
    RefundCreated,
    SessionSummary,
    TransactionCreated,
)
from vigie_featureset import LabelFact, RefundFact, SessionFact, TxFact, from_us, to_us
from vigie_runtime import Poison, envelope_decoder

Fact = TxFact | LabelFact | RefundFact | SessionFact

#: version of the internal message format (a reader refuses what it does not know)
FORMAT = 1


class Kind(StrEnum):
    TX = "tx"
    LABEL = "label"
    REFUND = "refund"
    SESSION = "session"


@dataclass(frozen=True, slots=True)
class Routed:
    """A fact and the customer whose partition owns it."""

    fact: Fact
    customer_id: str

    @property
    def kind(self) -> Kind:
        return kind_of(self.fact)


@dataclass(frozen=True, slots=True)
class Forward:
    """A fact for the states of a merchant and of its terminal (on the merchant's partition)."""

    merchant_id: str
    terminal_id: str
    routed: Routed


@dataclass(frozen=True, slots=True)
class Ignored:
    """An event that changes no feature (a status change, a genuine label)."""

    reason: str


def kind_of(fact: Fact) -> Kind:
    if isinstance(fact, TxFact):
        return Kind.TX
    if isinstance(fact, LabelFact):
        return Kind.LABEL
    if isinstance(fact, RefundFact):
        return Kind.REFUND
    return Kind.SESSION


def event_id_of(fact: Fact) -> str:
    if isinstance(fact, RefundFact):
        return fact.refund_id
    if isinstance(fact, SessionFact):
        return fact.session_id
    return fact.transaction_id


def event_time_of(fact: Fact) -> datetime:
    if isinstance(fact, TxFact):
        return fact.occurred_at
    if isinstance(fact, LabelFact):
        return fact.labelled_at
    if isinstance(fact, RefundFact):
        return fact.created_at
    return fact.ended_at


def route(envelope: Envelope[Event]) -> Routed | Ignored:
    """The fact an event carries, or why it carries none. Raises ``Poison`` for an event that
    should matter but cannot be placed (no customer to attach it to)."""
    payload = envelope.payload
    if isinstance(payload, TransactionCreated):
        return Routed(TxFact.from_event(payload), payload.customer_id)
    if isinstance(payload, FraudLabel):
        label = LabelFact.from_event(payload)
        if not label.fraud:
            # only frauds enter risk windows; a genuine verdict changes no feature
            return Ignored("genuine label")
        if not payload.customer_id:
            raise Poison(f"fraud label of {payload.transaction_id!r} has no customer_id")
        return Routed(label, payload.customer_id)
    if isinstance(payload, RefundCreated):
        if not payload.customer_id:
            raise Poison(f"refund {payload.refund_id!r} has no customer_id")
        refund = RefundFact.from_event(payload)
        return Routed(refund, refund.customer_id)
    if isinstance(payload, SessionSummary):
        session = SessionFact.from_event(payload)
        return Routed(session, session.customer_id)
    return Ignored(f"event type {envelope.event_type} changes no feature")


def decode_source(value: bytes | None) -> Routed | Ignored:
    """Bytes of a source topic → what to do with them. Raises what the runtime's decoders raise
    for bad input (``DecodeError`` / ``ValidationError`` / ``Poison``): dead-letter it."""
    return route(envelope_decoder(value))


# -- internal messages -------------------------------------------------------------------------


def encode_internal(routed: Routed) -> bytes:
    return orjson.dumps(_body(routed))


def encode_forward(forward: Forward) -> bytes:
    """``encode_internal`` of the fact, with the terminal it is for (a label names none)."""
    body = _body(forward.routed)
    body["ft"] = forward.terminal_id
    return orjson.dumps(body)


def _body(routed: Routed) -> dict[str, Any]:
    fact = routed.fact
    body: dict[str, Any] = {"f": FORMAT, "k": routed.kind.value, "c": routed.customer_id}
    if isinstance(fact, TxFact):
        body.update(
            id=fact.transaction_id,
            card=fact.card_token,
            t=fact.terminal_id,
            m=fact.merchant_id,
            d=fact.device_id,
            a=fact.amount_minor,
            at=fact.ts_us,
        )
    elif isinstance(fact, LabelFact):
        body.update(id=fact.transaction_id, fraud=fact.fraud, at=to_us(fact.labelled_at))
    elif isinstance(fact, RefundFact):
        body.update(
            id=fact.refund_id,
            tx=fact.transaction_id,
            a=fact.amount_minor,
            at=to_us(fact.created_at),
        )
    else:
        body.update(id=fact.session_id, n=fact.failed_logins, at=to_us(fact.ended_at))
    return body


def decode_internal(value: bytes | None) -> Routed:
    """The inverse of ``encode_internal``; raises ``DecodeError`` on anything else."""
    return _routed(_load(value))


def decode_forward(value: bytes | None, merchant_id: str) -> Forward:
    """The inverse of ``encode_forward`` (``merchant_id``: the record's key); raises
    ``DecodeError`` on anything else."""
    body = _load(value)
    terminal = body.get("ft")
    if not isinstance(terminal, str) or not terminal:
        raise DecodeError("internal features forward without its terminal")
    if not merchant_id:
        raise DecodeError("internal features forward without its merchant (the record key)")
    return Forward(merchant_id, terminal, _routed(body))


def _load(value: bytes | None) -> dict[str, Any]:
    if value is None:
        raise DecodeError("tombstone on an internal features topic")
    try:
        body = orjson.loads(value)
    except orjson.JSONDecodeError as exc:
        raise DecodeError(f"corrupt internal features message: {exc}") from exc
    if not isinstance(body, dict) or body.get("f") != FORMAT:
        raise DecodeError("not an internal features message of a known format")
    return body


def _routed(body: dict[str, Any]) -> Routed:
    try:
        kind = Kind(body["k"])
        customer = str(body["c"])
        at = from_us(int(body["at"]))
        fact: Fact
        if kind is Kind.TX:
            fact = TxFact(
                transaction_id=str(body["id"]),
                customer_id=customer,
                card_token=_opt_str(body["card"]),
                terminal_id=str(body["t"]),
                merchant_id=str(body["m"]),
                device_id=_opt_str(body["d"]),
                amount_minor=int(body["a"]),
                occurred_at=at,
            )
        elif kind is Kind.LABEL:
            fact = LabelFact(str(body["id"]), bool(body["fraud"]), at)
        elif kind is Kind.REFUND:
            fact = RefundFact(str(body["id"]), str(body["tx"]), customer, at, int(body["a"]))
        else:
            fact = SessionFact(str(body["id"]), customer, at, int(body["n"]))
    except (KeyError, TypeError, ValueError, OverflowError) as exc:
        why = f"{type(exc).__name__}: {exc}"
        raise DecodeError(f"corrupt internal features message: {why}") from exc
    return Routed(fact, customer)


def _opt_str(value: object) -> str | None:
    return None if value is None else str(value)
