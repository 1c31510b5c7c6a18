"""The scorer's memory of each customer's latest transactions, for ``complete(pending=...)``.

The features worker may not have applied a customer's previous transactions yet when the next
one is scored; the scorer passes the ones it consumed itself, so the vector counts each
transaction once whichever service is ahead. Bounded three ways: transactions per customer,
customers (least recently seen dropped first) and an event-time horizon.
"""

from __future__ import annotations

from collections import OrderedDict, deque
from datetime import timedelta

from vigie_featureset import TxFact


class PendingBuffer:
    def __init__(self, *, per_customer: int, customers: int, horizon: timedelta) -> None:
        self._per_customer = per_customer
        self._customers = customers
        self._horizon = horizon
        self._by_customer: OrderedDict[str, deque[TxFact]] = OrderedDict()

    def __len__(self) -> int:
        return sum(len(q) for q in self._by_customer.values())

    @property
    def customers(self) -> int:
        return len(self._by_customer)

    def before(self, tx: TxFact) -> list[TxFact]:
        """The customer's remembered transactions other than ``tx`` within the horizon
        (``complete`` itself keeps only those before ``tx`` in event order)."""
        queue = self._by_customer.get(tx.customer_id)
        if not queue:
            return []
        oldest = tx.occurred_at - self._horizon
        return [
            f for f in queue if f.transaction_id != tx.transaction_id and f.occurred_at > oldest
        ]

    def add(self, tx: TxFact) -> None:
        queue = self._by_customer.get(tx.customer_id)
        if queue is None:
            queue = deque(maxlen=self._per_customer)
            self._by_customer[tx.customer_id] = queue
            if len(self._by_customer) > self._customers:
                self._by_customer.popitem(last=False)
        else:
            self._by_customer.move_to_end(tx.customer_id)
            if any(f.transaction_id == tx.transaction_id for f in queue):
                return  # a redelivered transaction
        queue.append(tx)
