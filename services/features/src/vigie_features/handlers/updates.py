"""Pure: apply one fact to the states it touches, and say what goes where next.

The customer's partition sees every transaction, refund, session and fraud label of the
customer. It updates the customer's (and the card's) state and forwards transactions and fraud
labels, once each, to the merchant's partition, which holds the merchant's state and the states
of the merchant's terminals (a terminal belongs to one merchant: one forward updates both, where
a partition per terminal would take a second message). A label needs the terminal and merchant of
its transaction: the customer's state knows them. A label that arrives before its transaction is
held (in ``HeldLabels``) until the transaction comes.

Everything is forwarded even when it is a duplicate here: after a crash the state may already
hold an event whose forwards were lost; the receiving state drops what it already has.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import orjson

from vigie_contracts.events.features import EntityType
from vigie_featureset import (
    HORIZONS,
    EntityState,
    LabelFact,
    LateEventError,
    RefundFact,
    SessionFact,
    TxFact,
    encode_fields,
    entity_values,
    from_us,
    to_us,
)

from .routing import Fact, Forward, Routed


@dataclass(frozen=True, slots=True)
class Touched:
    """An entity whose state the event was applied to (``changed`` False: a duplicate or too
    late; the hash is written anyway, which is a no-op when Redis already has this version)."""

    entity_type: EntityType
    entity_id: str
    state: EntityState
    changed: bool


@dataclass(slots=True)
class Step:
    touched: list[Touched] = field(default_factory=list)
    forwards: list[Forward] = field(default_factory=list)
    late: list[tuple[EntityType, LateEventError]] = field(default_factory=list)
    #: labels dropped from the hold unrouted (their transaction never came within the horizon)
    unrouted_labels: int = 0


class HeldLabels:
    """Fraud labels of a customer's transactions not seen yet: transaction id → label time (µs).

    Kept next to the customer's state (its own table); bounded like the terminal windows that
    would use them: a label older than the terminal horizon + lateness is dropped and counted.
    """

    __slots__ = ("labels",)

    def __init__(self, labels: Mapping[str, int] | None = None) -> None:
        self.labels: dict[str, int] = dict(labels or {})

    def __bool__(self) -> bool:
        return bool(self.labels)

    def hold(self, label: LabelFact) -> bool:
        at = to_us(label.labelled_at)
        held = self.labels.get(label.transaction_id)
        if held is not None and held <= at:
            return False
        self.labels[label.transaction_id] = at
        return True

    def take(self, transaction_id: str) -> LabelFact | None:
        at = self.labels.pop(transaction_id, None)
        return None if at is None else LabelFact(transaction_id, True, from_us(at))

    def prune(self, now_us: int, lateness: timedelta) -> int:
        horizon = HORIZONS[EntityType.TERMINAL] + lateness
        cut = now_us - int(horizon.total_seconds() * 1_000_000)
        stale = [tx for tx, at in self.labels.items() if at <= cut]
        for tx in stale:
            del self.labels[tx]
        return len(stale)

    def to_bytes(self) -> bytes:
        return orjson.dumps(self.labels)

    @classmethod
    def from_bytes(cls, data: bytes | None) -> HeldLabels:
        if not data:
            return cls()
        raw = orjson.loads(data)
        if not isinstance(raw, dict):
            raise ValueError("held labels are a JSON object")
        return cls({str(k): int(v) for k, v in raw.items()})


def route_of(customer: EntityState, transaction_id: str) -> tuple[str, str] | None:
    """(terminal_id, merchant_id) of one of the customer's transactions, if the state holds it."""
    at = customer.id_ts.get(transaction_id)
    if at is None:
        return None
    i = bisect_left(customer.ts, at)
    ids = customer.ids
    while i < len(ids) and ids[i] != transaction_id:
        i += 1
    if i == len(ids):  # pragma: no cover - id_ts and the columns always agree
        return None
    return customer.terminals[i], customer.merchants[i]


def apply(state: EntityState, fact: Fact) -> bool:
    """Apply one fact; False for a duplicate (or a fact the entity does not keep). Raises
    ``LateEventError``. Evicts what no window needs any more after a change."""
    if isinstance(fact, TxFact):
        changed = state.apply_tx(fact)
    elif isinstance(fact, LabelFact):
        changed = state.apply_label(fact.transaction_id, fact.fraud, fact.labelled_at)
    elif isinstance(fact, RefundFact):
        changed = state.apply_refund(fact)
    elif isinstance(fact, SessionFact):
        changed = state.apply_session(fact)
    else:  # pragma: no cover - Fact is a closed union
        raise TypeError(f"not a fact: {fact!r}")
    last = state.last_event_time
    if changed and last is not None:
        state.evict(last)
    return changed


def _apply(
    step: Step, entity_type: EntityType, entity_id: str, state: EntityState, fact: Fact
) -> None:
    try:
        changed = apply(state, fact)
    except LateEventError as exc:
        step.late.append((entity_type, exc))
        changed = False
    step.touched.append(Touched(entity_type, entity_id, state, changed))


def _forward(step: Step, terminal: str, merchant: str, routed: Routed) -> None:
    step.forwards.append(Forward(merchant, terminal, routed))


def on_customer_event(
    routed: Routed,
    customer: EntityState,
    card: EntityState | None,
    held: HeldLabels,
    lateness: timedelta,
) -> Step:
    """An event on the customer's partition. ``card`` is the transaction's card state (None
    when it has no card or the event is not a transaction). Mutates the states and ``held``."""
    step = Step()
    fact = routed.fact
    cid = routed.customer_id
    if isinstance(fact, TxFact):
        _apply(step, EntityType.CUSTOMER, cid, customer, fact)
        if card is not None and fact.has_card:
            _apply(step, EntityType.CARD, fact.card_token or "", card, fact)
        _forward(step, fact.terminal_id, fact.merchant_id, routed)
        label = held.take(fact.transaction_id)
        if label is not None:
            _forward(step, fact.terminal_id, fact.merchant_id, Routed(label, cid))
    elif isinstance(fact, LabelFact):
        where = route_of(customer, fact.transaction_id)
        if where is not None:
            _forward(step, where[0], where[1], routed)
        elif fact.fraud:
            held.hold(fact)
    else:
        _apply(step, EntityType.CUSTOMER, cid, customer, fact)
    last = customer.last_event_us
    if held and last is not None:
        step.unrouted_labels = held.prune(last, lateness)
    return step


def on_forward(forward: Forward, terminal: EntityState, merchant: EntityState) -> Step:
    """A forwarded transaction or label on the merchant's partition: the terminal's state, then
    the merchant's."""
    step = Step()
    _apply(step, EntityType.TERMINAL, forward.terminal_id, terminal, forward.routed.fact)
    _apply(step, EntityType.MERCHANT, forward.merchant_id, merchant, forward.routed.fact)
    return step


def hash_fields(touched: Touched, position: str) -> dict[str, str]:
    """The Redis hash of an entity after an update (``_v`` is ``touched.state.version``)."""
    values = entity_values(touched.entity_type, touched.state)
    return encode_fields(touched.state, values, position=position)
