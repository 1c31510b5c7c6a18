"""Feature values from entity states: pure, O(entries), no pandas (inference calls it per event).

``complete(tx, states, pending)`` is point-in-time: customer and card windows count only what
comes before ``tx`` in the order (occurred_at, transaction_id), plus ``tx`` itself once, so the
vector is the same whether the features worker has applied ``tx`` (or later transactions) yet or
not. Terminal and merchant risk windows are label-delayed: transactions in (t - (d + n), t - d],
frauds among them labelled at or before t.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from statistics import median

from vigie_contracts.events.features import EntityType

from .facts import TxFact, to_us
from .registry import FEATURE_NAMES, LABEL_DELAY, views
from .state import EntityState

_S = 1_000_000
_H = 3_600 * _S
_D = 24 * _H
_DELAY = LABEL_DELAY.days * _D
_RISK_DAYS = (1, 7, 30)
_MAX_GAP_S = 30 * 86_400.0
_CUSTOMER_WINDOWS = (("1h", _H), ("1d", _D), ("7d", 7 * _D), ("30d", 30 * _D))

# (ts, amount_minor, terminal_id, merchant_id)
_Row = tuple[int, int, str, str]


def vector_keys(tx: TxFact) -> list[tuple[EntityType, str]]:
    """The states ``complete(tx, ...)`` reads, in a stable order (the card only when tx has one)."""
    keys = [(EntityType.CUSTOMER, tx.customer_id)]
    if tx.has_card:
        keys.append((EntityType.CARD, tx.card_token or ""))
    keys += [(EntityType.TERMINAL, tx.terminal_id), (EntityType.MERCHANT, tx.merchant_id)]
    return keys


def _before(state: EntityState, tx: TxFact) -> int:
    """Index of the first entry that is not before tx in (ts, id) order."""
    ts, ids, at = state.ts, state.ids, tx.ts_us
    pos = bisect_left(ts, at)
    n = len(ts)
    while pos < n and ts[pos] == at and ids[pos] < tx.transaction_id:
        pos += 1
    return pos


def _extra(state: EntityState | None, tx: TxFact, pending: Iterable[TxFact]) -> list[TxFact]:
    """Pending transactions before tx that the state does not hold yet, each once."""
    out: dict[str, TxFact] = {}
    key = (tx.ts_us, tx.transaction_id)
    for p in pending:
        if (p.ts_us, p.transaction_id) < key and (state is None or p.transaction_id not in state):
            out.setdefault(p.transaction_id, p)
    return list(out.values())


class _Windows:
    """Counts and amount sums over windows ending at t, the latest earlier time, distinct sets."""

    __slots__ = ("counts", "merchants", "prev", "sums", "terminals")

    def __init__(
        self,
        state: EntityState | None,
        end: int,
        extra: Sequence[_Row],
        current: _Row | None,
        t: int,
        widths: Sequence[int],
        distinct: bool,
    ) -> None:
        """``state`` entries [0, end) and ``extra`` come before ``current`` (which may be None)."""
        n = len(widths)
        self.counts = [0] * n
        self.sums = [0] * n
        self.prev: int | None = None
        self.terminals: set[str] = set()
        self.merchants: set[str] = set()
        if state is not None and end > 0:
            ts, amounts = state.ts, state.amounts
            self.prev = ts[end - 1]
            for k, width in enumerate(widths):
                start = bisect_right(ts, t - width, 0, end)
                self.counts[k] = end - start
                self.sums[k] = sum(amounts[start:end])
            if distinct:
                start = bisect_right(ts, t - _D, 0, end)
                self.terminals = set(state.terminals[start:end])
                self.merchants = set(state.merchants[start:end])
        for row in extra:
            if self.prev is None or row[0] > self.prev:
                self.prev = row[0]
            self._add(row, t, widths, distinct)
        if current is not None:
            self._add(current, t, widths, distinct)

    def _add(self, row: _Row, t: int, widths: Sequence[int], distinct: bool) -> None:
        at = row[0]
        for k, width in enumerate(widths):
            if at > t - width:
                self.counts[k] += 1
                self.sums[k] += row[1]
        if distinct and at > t - _D:
            self.terminals.add(row[2])
            self.merchants.add(row[3])


_CUSTOMER_WIDTHS = tuple(w for _, w in _CUSTOMER_WINDOWS)
_CARD_WIDTHS = (_H, _D)


def _rows(facts: Sequence[TxFact]) -> list[_Row]:
    return [(p.ts_us, p.amount_minor, p.terminal_id, p.merchant_id) for p in facts]


def _customer_values(
    state: EntityState | None,
    end: int,
    extra: Sequence[_Row],
    current: _Row | None,
    t: int,
    out: dict[str, float],
) -> None:
    """Windows ending at t over state entries [0, end) and ``extra`` (earlier transactions) and
    ``current`` (the one scored, or the latest one for stored values)."""
    w = _Windows(state, end, extra, current, t, _CUSTOMER_WIDTHS, True)
    counts, sums = w.counts, w.sums
    for k, (name, _) in enumerate(_CUSTOMER_WINDOWS):
        out[f"customer_nb_tx_{name}"] = float(counts[k])
        out[f"customer_avg_amount_{name}"] = sums[k] / 100.0 / counts[k] if counts[k] else 0.0
    ref = current[0] if current is not None else t
    gap = _MAX_GAP_S if w.prev is None else min((ref - w.prev) / _S, _MAX_GAP_S)
    out["customer_seconds_since_previous"] = gap
    out["customer_distinct_terminals_1d"] = float(len(w.terminals))
    out["customer_distinct_merchants_1d"] = float(len(w.merchants))
    refunds = 0
    sessions = failed = 0
    if state is not None:
        refunds = bisect_right(state.refund_ts, t) - bisect_right(state.refund_ts, t - 30 * _D)
        s_ts = state.session_ts
        a, b = bisect_right(s_ts, t - _H), bisect_right(s_ts, t)
        sessions = b - a
        failed = sum(state.session_failed[a:b])
    out["customer_refund_ratio_30d"] = refunds / counts[3] if counts[3] else 0.0
    out["customer_sessions_1h"] = float(sessions)
    out["customer_failed_logins_1h"] = float(failed)


def _amount_values(
    state: EntityState | None,
    end: int,
    extra: Sequence[_Row],
    current: _Row,
    t: int,
    out: dict[str, float],
) -> None:
    """The scored amount against the customer's amounts in (t - 30d, t] (state entries [0, end),
    ``extra`` and ``current``). A compromised customer's frauds inflate the 30-day mean; the median
    much less (a third of the transactions at 5x over 14 days moves it ~1.2x, the mean ~1.6x), so
    the earlier transactions of the last 7 days far above it count the burst itself."""
    lo, week = t - 30 * _D, t - 7 * _D
    times: list[int] = []
    amounts: list[int] = []
    if state is not None and end > 0:
        start = bisect_right(state.ts, lo, 0, end)
        times, amounts = state.ts[start:end], state.amounts[start:end]
    for row in extra:
        if row[0] > lo:
            times.append(row[0])
            amounts.append(row[1])
    amount = current[1]
    middle = median([*amounts, amount])
    # (n * a - S1) / sqrt(n * S2 - S1^2) = (a - mean) / population std: exact integers up to the
    # root, so the offline reference (exact float sums of integers) gives the same bits.
    n = len(amounts) + 1
    s1 = sum(amounts) + amount
    spread = n * (sum(a * a for a in amounts) + amount * amount) - s1 * s1
    above = 3 * middle
    high = sum(1 for at, a in zip(times, amounts, strict=True) if at > week and a > above)
    out["customer_amount_median_ratio_30d"] = amount / middle if middle else 0.0
    out["customer_amount_zscore_30d"] = (n * amount - s1) / math.sqrt(spread) if spread else 0.0
    out["customer_high_amounts_7d"] = float(high)


def _card_values(
    state: EntityState | None,
    end: int,
    extra: Sequence[_Row],
    current: _Row | None,
    t: int,
    out: dict[str, float],
) -> None:
    w = _Windows(state, end, extra, current, t, _CARD_WIDTHS, False)
    (n_h, n_d), s_d = w.counts, w.sums[1]
    out["card_nb_tx_1h"] = float(n_h)
    out["card_nb_tx_1d"] = float(n_d)
    out["card_avg_amount_1d"] = s_d / 100.0 / n_d if n_d else 0.0


def _risk_values(prefix: str, state: EntityState | None, t: int, out: dict[str, float]) -> None:
    hi = t - _DELAY
    for n in _RISK_DAYS:
        lo = hi - n * _D
        nb = frauds = 0
        if state is not None:
            nb = bisect_right(state.ts, hi) - bisect_right(state.ts, lo)
            if nb:
                for at, _, fraud_at in state.frauds:
                    if lo < at <= hi and fraud_at <= t:
                        frauds += 1
        out[f"{prefix}_nb_tx_{n}d"] = float(nb)
        out[f"{prefix}_risk_{n}d"] = frauds / nb if nb else 0.0


def complete(
    tx: TxFact,
    states: Mapping[tuple[EntityType, str], EntityState | None],
    pending: Sequence[TxFact] = (),
) -> dict[str, float]:
    """The full feature vector for scoring ``tx`` (every registry feature, in registry order).

    ``states`` holds what ``vector_keys(tx)`` names (a missing key or None = no history).
    ``pending``: transactions of the same customer seen by the caller before ``tx`` that the stored
    states may not hold yet; they are merged (ids already held are ignored).
    """
    t = tx.ts_us
    values: dict[str, float] = {}
    when = tx.occurred_at.astimezone(UTC) if tx.occurred_at.tzinfo else tx.occurred_at
    amount = tx.amount_minor / 100.0

    current = (t, tx.amount_minor, tx.terminal_id, tx.merchant_id)
    customer = states.get((EntityType.CUSTOMER, tx.customer_id))
    c_end = _before(customer, tx) if customer is not None else 0
    c_extra = _rows(_extra(customer, tx, pending))
    _customer_values(customer, c_end, c_extra, current, t, values)
    _amount_values(customer, c_end, c_extra, current, t, values)

    if tx.has_card:
        card = states.get((EntityType.CARD, tx.card_token or ""))
        k_end = _before(card, tx) if card is not None else 0
        mine = [p for p in pending if p.card_token == tx.card_token]
        _card_values(card, k_end, _rows(_extra(card, tx, mine)), current, t, values)
    else:
        values.update(card_nb_tx_1h=0.0, card_nb_tx_1d=0.0, card_avg_amount_1d=0.0)
    _risk_values("terminal", states.get((EntityType.TERMINAL, tx.terminal_id)), t, values)
    _risk_values("merchant", states.get((EntityType.MERCHANT, tx.merchant_id)), t, values)

    avg30 = values["customer_avg_amount_30d"]
    values["amount"] = amount
    values["during_weekend"] = 1.0 if when.weekday() >= 5 else 0.0
    values["during_night"] = 1.0 if when.hour <= 6 else 0.0
    values["customer_amount_ratio_30d"] = amount / avg30 if avg30 else 0.0
    return {name: values[name] for name in FEATURE_NAMES}


def entity_values(
    entity_type: EntityType, state: EntityState, as_of: datetime | None = None
) -> dict[str, float]:
    """The entity's stored features (every registry feature of that entity outside the request
    view, in registry order) as of ``as_of`` (default: its latest event): windows
    (as_of - n, as_of] over everything held at or before ``as_of``. For customers and cards the
    latest transaction up to as_of plays the scored one, so when as_of is its time the values equal
    what ``complete()`` gives it (``customer_seconds_since_previous``: the gap to the one before).
    An entity type without features (device) gives {}."""
    entity_type = EntityType(entity_type)
    t = to_us(as_of) if as_of is not None else state.last_event_us
    names = [name for group in views(entity_type).values() for name in group]
    if t is None or not names:
        return _empty(names)
    values: dict[str, float] = {}
    if entity_type in (EntityType.CUSTOMER, EntityType.CARD):
        # The latest transaction up to as_of plays the scored one; what precedes it, the history.
        end = bisect_right(state.ts, t)
        last: _Row | None = None
        if end:
            end -= 1
            terminal = state.terminals[end] if state.terminals else ""
            merchant = state.merchants[end] if state.merchants else ""
            last = (state.ts[end], state.amounts[end], terminal, merchant)
        compute = _customer_values if entity_type is EntityType.CUSTOMER else _card_values
        compute(state, end, (), last, t, values)
    else:
        _risk_values(entity_type.value, state, t, values)
    return {name: values[name] for name in names}


def entity_view_values(
    entity_type: EntityType, state: EntityState, as_of: datetime | None = None
) -> dict[str, dict[str, float]]:
    """``entity_values`` grouped by view (view -> {feature: value}): one Redis field per view."""
    values = entity_values(entity_type, state, as_of)
    return {
        view: {name: values[name] for name in names}
        for view, names in views(EntityType(entity_type)).items()
    }


def _empty(names: Iterable[str]) -> dict[str, float]:
    out = dict.fromkeys(names, 0.0)
    if "customer_seconds_since_previous" in out:
        out["customer_seconds_since_previous"] = _MAX_GAP_S
    return out
