"""Test helpers shipped with the library: a minimal online driver and table builders.

``OnlineReplay`` routes facts to entity states the way the features worker does (a transaction to
its customer, card, terminal and merchant; a label to the transaction's terminal and merchant; a
refund or a session to its customer) and scores transactions with ``complete()``. ``frames()``
turns the same facts into the tables ``compute_offline()`` reads.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import timedelta

import pandas as pd  # type: ignore[import-untyped]  # no pandas-stubs in the workspace yet

from vigie_contracts.events.features import EntityType

from .compute import complete, vector_keys
from .facts import LabelFact, RefundFact, SessionFact, TxFact
from .state import DEFAULT_LATENESS, EntityState

Fact = TxFact | LabelFact | RefundFact | SessionFact


class OnlineReplay:
    """Entity states fed fact by fact; ``lag_customer`` leaves customer/card states that many
    transactions behind (per customer), as a lagging features worker would."""

    def __init__(self, *, lateness: timedelta = DEFAULT_LATENESS, lag_customer: int = 0) -> None:
        self.lateness = lateness
        self.lag = lag_customer
        self.states: dict[tuple[EntityType, str], EntityState] = {}
        self.where: dict[str, tuple[str, str]] = {}
        self.held: dict[str, list[TxFact]] = {}
        self.early_labels: dict[str, list[LabelFact]] = {}
        self.late = 0

    def state(self, entity: EntityType, entity_id: str) -> EntityState:
        key = (entity, entity_id)
        found = self.states.get(key)
        if found is None:
            found = self.states[key] = EntityState(entity, lateness=self.lateness)
        return found

    def _customer_side(self, fact: TxFact) -> None:
        self.state(EntityType.CUSTOMER, fact.customer_id).apply_tx(fact)
        if fact.has_card:
            self.state(EntityType.CARD, fact.card_token or "").apply_tx(fact)

    def apply(self, fact: Fact) -> None:
        if isinstance(fact, TxFact):
            self.where[fact.transaction_id] = (fact.terminal_id, fact.merchant_id)
            self.state(EntityType.TERMINAL, fact.terminal_id).apply_tx(fact)
            self.state(EntityType.MERCHANT, fact.merchant_id).apply_tx(fact)
            queue = self.held.setdefault(fact.customer_id, [])
            queue.append(fact)
            while len(queue) > self.lag:
                self._customer_side(queue.pop(0))
            for label in self.early_labels.pop(fact.transaction_id, ()):
                self.apply(label)
        elif isinstance(fact, LabelFact):
            if fact.transaction_id not in self.where:
                # The worker would look the transaction up; here it waits for it.
                self.early_labels.setdefault(fact.transaction_id, []).append(fact)
                return
            terminal, merchant = self.where[fact.transaction_id]
            for key in ((EntityType.TERMINAL, terminal), (EntityType.MERCHANT, merchant)):
                self.state(*key).apply_label(fact.transaction_id, fact.fraud, fact.labelled_at)
        elif isinstance(fact, RefundFact):
            self._catch_up(fact.customer_id)
            self.state(EntityType.CUSTOMER, fact.customer_id).apply_refund(fact)
        else:
            self._catch_up(fact.customer_id)
            self.state(EntityType.CUSTOMER, fact.customer_id).apply_session(fact)

    def _catch_up(self, customer_id: str) -> None:
        # A customer's facts reach its state in stream order (one partition): the transactions
        # held back go in before a later refund or session, never after it.
        for held in self.held.pop(customer_id, ()):
            self._customer_side(held)

    def pending(self, customer_id: str) -> list[TxFact]:
        """What the caller consumed but the customer/card states do not hold yet."""
        return list(self.held.get(customer_id, ()))

    def vector(self, tx: TxFact, pending: Sequence[TxFact] = ()) -> dict[str, float]:
        return complete(tx, {k: self.states.get(k) for k in vector_keys(tx)}, pending)


def frames(
    facts: Iterable[Fact],
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(transactions, labels, refunds, sessions) tables in ``compute_offline``'s columns."""
    txs, labels, refunds, sessions = [], [], [], []
    for f in facts:
        if isinstance(f, TxFact):
            txs.append({
                "transaction_id": f.transaction_id, "customer_id": f.customer_id,
                "card_token": f.card_token, "terminal_id": f.terminal_id,
                "merchant_id": f.merchant_id, "amount_minor": f.amount_minor,
                "occurred_at": f.occurred_at,
            })
        elif isinstance(f, LabelFact):
            labels.append({"transaction_id": f.transaction_id, "fraud": f.fraud,
                           "labelled_at": f.labelled_at})
        elif isinstance(f, RefundFact):
            refunds.append({"refund_id": f.refund_id, "customer_id": f.customer_id,
                            "transaction_id": f.transaction_id, "created_at": f.created_at})
        else:
            sessions.append({"session_id": f.session_id, "customer_id": f.customer_id,
                             "ended_at": f.ended_at, "failed_logins": f.failed_logins})
    return (
        pd.DataFrame(txs, columns=["transaction_id", "customer_id", "card_token", "terminal_id",
                                   "merchant_id", "amount_minor", "occurred_at"]),
        pd.DataFrame(labels, columns=["transaction_id", "fraud", "labelled_at"]),
        pd.DataFrame(refunds, columns=["refund_id", "customer_id", "transaction_id", "created_at"]),
        pd.DataFrame(sessions, columns=["session_id", "customer_id", "ended_at", "failed_logins"]),
    )
