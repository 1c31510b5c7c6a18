"""The window state of one entity (customer, card, terminal, merchant, device).

A compact, time-ordered log of what the entity's windows need, sorted by (event time,
transaction id), deduplicated by id and bounded by the longest window (plus the label delay for
terminals and merchants) and an allowed lateness. Times are epoch microseconds (UTC).

Late events: once the state has seen an event at time T, an event at or before
``T - horizon - lateness`` (or before what ``evict`` dropped) is rejected by raising
``LateEventError``; nothing is applied, and the caller counts it. A duplicate returns False.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right, insort
from datetime import datetime, timedelta
from itertools import accumulate
from typing import Any, TypeVar

import orjson

from vigie_contracts.events.features import EntityType

from .errors import LateEventError, StateDecodeError
from .facts import RefundFact, SessionFact, TxFact, from_us, to_us
from .registry import LABEL_DELAY

_T = TypeVar("_T")

FORMAT_VERSION = 1
DEFAULT_LATENESS = timedelta(days=1)

_DAY_US = 86_400_000_000
HORIZONS: dict[EntityType, timedelta] = {
    EntityType.CUSTOMER: timedelta(days=30),
    EntityType.CARD: timedelta(days=1),
    EntityType.TERMINAL: LABEL_DELAY + timedelta(days=30),
    EntityType.MERCHANT: LABEL_DELAY + timedelta(days=30),
    EntityType.DEVICE: timedelta(days=30),
}
"""How far back an entity's windows look from the time they are computed at."""

_WITH_AMOUNTS = frozenset({EntityType.CUSTOMER, EntityType.CARD, EntityType.DEVICE})
_WITH_LABELS = frozenset({EntityType.TERMINAL, EntityType.MERCHANT})


def _us(delta: timedelta) -> int:
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


class EntityState:
    """The window log of one entity. Not thread-safe; one owner mutates it.

    Columns (parallel lists, sorted by (ts, id)): ``ts``, ``ids``; ``amounts`` (minor units) for
    customers, cards and devices; ``terminals`` / ``merchants`` for customers. Terminals and
    merchants keep ``frauds``: (tx ts, tx id, earliest fraud-label time) sorted by tx ts. Customers
    keep refunds (``refund_ts``) and sessions (``session_ts``, ``session_failed``).
    """

    __slots__ = (
        "amounts",
        "applied",
        "entity_type",
        "frauds",
        "ids",
        "lateness",
        "merchants",
        "refund_ts",
        "session_failed",
        "session_ts",
        "terminals",
        "ts",
        "version",
        "_floor_us",
        "_id_ts",
        "_last_us",
        "_pending_labels",
        "_refund_ids",
        "_session_ids",
    )

    def __init__(self, entity_type: EntityType, *, lateness: timedelta = DEFAULT_LATENESS) -> None:
        if lateness < timedelta(0):
            raise ValueError("lateness must be >= 0")
        self.entity_type = EntityType(entity_type)
        self.lateness = lateness
        self.version = 0
        """Incremented on every change: a monotonic version for versioned writes."""
        self.ts: list[int] = []
        self.ids: list[str] = []
        self.amounts: list[int] = []
        self.terminals: list[str] = []
        self.merchants: list[str] = []
        self.frauds: list[tuple[int, str, int]] = []
        self.refund_ts: list[int] = []
        self.session_ts: list[int] = []
        self.session_failed: list[int] = []
        self._id_ts: dict[str, int] | None = {}
        # id -> time (and failed logins): deduplication, bounded by eviction like the times.
        self._refund_ids: dict[str, int] = {}
        self._session_ids: dict[str, tuple[int, int]] = {}
        self._pending_labels: dict[str, int] = {}
        self._last_us: int | None = None
        self._floor_us: int | None = None
        self.applied: dict[str, int] = {}
        """Highest input offset applied, by source ("topic:partition"): set by the stream
        processor that owns the state and stored with it, so that after a crash an event read
        again can be told from a late one (its entry may have been evicted since)."""

    # --- reading

    @property
    def horizon(self) -> timedelta:
        return HORIZONS[self.entity_type]

    @property
    def last_event_time(self) -> datetime | None:
        """The latest event time applied (transactions, labels, refunds, sessions)."""
        return None if self._last_us is None else from_us(self._last_us)

    @property
    def last_event_us(self) -> int | None:
        return self._last_us

    @property
    def size(self) -> int:
        """Entries held: transactions, refunds, sessions, labels waiting for their transaction."""
        return len(self.ts) + len(self.refund_ts) + len(self.session_ts) + len(self._pending_labels)

    @property
    def id_ts(self) -> dict[str, int]:
        """Transaction id -> its time; built on first use (readers that only compute never pay)."""
        if self._id_ts is None:
            self._id_ts = dict(zip(self.ids, self.ts, strict=True))
        return self._id_ts

    def __contains__(self, transaction_id: object) -> bool:
        return transaction_id in self.id_ts

    def __repr__(self) -> str:
        return (
            f"EntityState({self.entity_type.value}, txs={len(self.ts)}, "
            f"refunds={len(self.refund_ts)}, sessions={len(self.session_ts)}, "
            f"version={self.version})"
        )

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EntityState):
            return NotImplemented
        return self._payload() == other._payload()

    __hash__ = None  # type: ignore[assignment]  # mutable

    # --- writing

    @property
    def floor_us(self) -> int | None:
        """Events at or before this time are too late."""
        limits = [x for x in (self._floor_us, self._late_limit()) if x is not None]
        return max(limits) if limits else None

    def _late_limit(self) -> int | None:
        if self._last_us is None:
            return None
        return self._last_us - _us(self.horizon) - _us(self.lateness)

    def _check_late(self, kind: str, event_id: str, at_us: int) -> None:
        floor = self.floor_us
        if floor is not None and at_us <= floor:
            raise LateEventError(kind, event_id, from_us(at_us), from_us(floor))

    def _seen(self, at_us: int) -> None:
        self.version += 1
        if self._last_us is None or at_us > self._last_us:
            self._last_us = at_us

    def apply_tx(self, fact: TxFact) -> bool:
        """Add a transaction; False if its id is already held. Raises LateEventError if too late."""
        index = self.id_ts
        if fact.transaction_id in index:
            return False
        at = fact.ts_us
        self._check_late("transaction", fact.transaction_id, at)
        pos = bisect_right(self.ts, at)
        # Ties at the same microsecond are ordered by id.
        while pos > 0 and self.ts[pos - 1] == at and self.ids[pos - 1] > fact.transaction_id:
            pos -= 1
        self.ts.insert(pos, at)
        self.ids.insert(pos, fact.transaction_id)
        index[fact.transaction_id] = at
        if self.entity_type in _WITH_AMOUNTS:
            self.amounts.insert(pos, fact.amount_minor)
        if self.entity_type is EntityType.CUSTOMER:
            self.terminals.insert(pos, fact.terminal_id)
            self.merchants.insert(pos, fact.merchant_id)
        if self.entity_type in _WITH_LABELS:
            fraud_at = self._pending_labels.pop(fact.transaction_id, None)
            if fraud_at is not None:
                insort(self.frauds, (at, fact.transaction_id, fraud_at))
        self._seen(at)
        return True

    def apply_label(self, transaction_id: str, fraud: bool, labelled_at: datetime) -> bool:
        """Record that a transaction was labelled fraud at ``labelled_at`` (the earliest such label
        counts). Genuine labels, and labels on entities without risk windows, change nothing and
        return False. A label for a transaction not seen yet is held until it arrives."""
        if not fraud or self.entity_type not in _WITH_LABELS:
            return False
        at = to_us(labelled_at)
        tx_ts = self.id_ts.get(transaction_id)
        if tx_ts is None:
            self._check_late("label", transaction_id, at)
            held = self._pending_labels.get(transaction_id)
            if held is not None and held <= at:
                return False
            self._pending_labels[transaction_id] = at
            self._seen(at)
            return True
        pos = bisect_left(self.frauds, (tx_ts, transaction_id))
        if pos < len(self.frauds) and self.frauds[pos][1] == transaction_id:
            if self.frauds[pos][2] <= at:
                return False
            self.frauds[pos] = (tx_ts, transaction_id, at)
        else:
            self.frauds.insert(pos, (tx_ts, transaction_id, at))
        self._seen(at)
        return True

    def apply_refund(self, fact: RefundFact) -> bool:
        """Count a refund of the customer at its creation time; False if already counted (or if
        this is not a customer's state: no other entity has refund features)."""
        if self.entity_type is not EntityType.CUSTOMER or fact.refund_id in self._refund_ids:
            return False
        at = to_us(fact.created_at)
        self._check_late("refund", fact.refund_id, at)
        insort(self.refund_ts, at)
        self._refund_ids[fact.refund_id] = at
        self._seen(at)
        return True

    def apply_session(self, fact: SessionFact) -> bool:
        """Count a closed session of the customer at its end time; False if already counted (or
        if this is not a customer's state)."""
        if self.entity_type is not EntityType.CUSTOMER or fact.session_id in self._session_ids:
            return False
        at = to_us(fact.ended_at)
        self._check_late("session", fact.session_id, at)
        pos = bisect_right(self.session_ts, at)
        self.session_ts.insert(pos, at)
        self.session_failed.insert(pos, fact.failed_logins)
        self._session_ids[fact.session_id] = (at, fact.failed_logins)
        self._seen(at)
        return True

    def evict(self, now: datetime) -> int:
        """Drop what no window computed at or after ``now - lateness`` can need; returns how many
        entries went. Later events at or before the cut are rejected as too late."""
        cut = to_us(now) - _us(self.horizon) - _us(self.lateness)
        if self._floor_us is not None and cut <= self._floor_us:
            return 0
        self._floor_us = cut
        dropped = 0
        n = bisect_right(self.ts, cut)
        if n:
            index = self.id_ts
            for tx_id in self.ids[:n]:
                del index[tx_id]
            del self.ts[:n], self.ids[:n]
            if self.amounts:
                del self.amounts[:n]
            if self.terminals:
                del self.terminals[:n], self.merchants[:n]
            dropped += n
        f = bisect_right(self.frauds, (cut, "\U0010ffff"))
        del self.frauds[:f]
        r = bisect_right(self.refund_ts, cut)
        if r:
            del self.refund_ts[:r]
            self._refund_ids = {k: at for k, at in self._refund_ids.items() if at > cut}
            dropped += r
        s = bisect_right(self.session_ts, cut)
        if s:
            del self.session_ts[:s], self.session_failed[:s]
            self._session_ids = {k: v for k, v in self._session_ids.items() if v[0] > cut}
            dropped += s
        stale = [k for k, at in self._pending_labels.items() if at <= cut]
        for k in stale:
            del self._pending_labels[k]
        dropped += len(stale)
        if dropped:
            self.version += 1
        return dropped

    # --- bytes

    def _payload(self) -> dict[str, Any]:
        ts = self.ts
        out: dict[str, Any] = {
            "v": FORMAT_VERSION,
            "e": self.entity_type.value,
            "l": _us(self.lateness),
            "n": self.version,
            "last": self._last_us,
            "floor": self._floor_us,
            # Deltas keep 30 days of microsecond times short.
            "t": [ts[0], *(b - a for a, b in zip(ts, ts[1:], strict=False))] if ts else [],
            "i": self.ids,
        }
        if self.entity_type in _WITH_AMOUNTS:
            out["a"] = self.amounts
        if self.entity_type is EntityType.CUSTOMER:
            out["tm"] = self.terminals
            out["m"] = self.merchants
            out["r"] = self._refund_ids
            out["s"] = self._session_ids
        if self.entity_type in _WITH_LABELS:
            out["f"] = self.frauds
            out["p"] = self._pending_labels
        if self.applied:
            out["o"] = self.applied
        return out

    def to_bytes(self) -> bytes:
        """orjson of a versioned, column-oriented payload (UTF-8 JSON, so it is also valid text)."""
        return orjson.dumps(self._payload())

    @classmethod
    def from_bytes(cls, data: bytes | bytearray | memoryview | str) -> EntityState:
        """The inverse of ``to_bytes``; raises StateDecodeError on anything else."""
        try:
            raw = orjson.loads(data)
        except orjson.JSONDecodeError as exc:
            raise StateDecodeError(f"not an entity state: {exc}") from exc
        if not isinstance(raw, dict) or "v" not in raw:
            raise StateDecodeError("not an entity state: no format version")
        if raw["v"] != FORMAT_VERSION:
            raise StateDecodeError(f"unsupported entity state format version {raw['v']!r}")
        try:
            return cls._from_payload(raw)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise StateDecodeError(f"corrupt entity state: {type(exc).__name__}: {exc}") from exc

    @classmethod
    def _from_payload(cls, raw: dict[str, Any]) -> EntityState:
        state = cls(EntityType(raw["e"]), lateness=timedelta(microseconds=int(raw["l"])))
        state.version = int(raw["n"])
        state._last_us = _opt_int(raw["last"])
        state._floor_us = _opt_int(raw["floor"])
        state.ts = list(accumulate(_ints(raw["t"])))
        state.ids = _strs(raw["i"])
        state._id_ts = None
        n = len(state.ts)
        _same_len(n, state.ids)
        et = state.entity_type
        if et in _WITH_AMOUNTS:
            state.amounts = _same_len(n, _ints(raw["a"]))
        if et is EntityType.CUSTOMER:
            state.terminals = _same_len(n, _strs(raw["tm"]))
            state.merchants = _same_len(n, _strs(raw["m"]))
            refunds = {str(k): int(v) for k, v in dict(raw["r"]).items()}
            state._refund_ids = refunds
            state.refund_ts = sorted(refunds.values())
            sessions = {str(k): (int(at), int(n)) for k, (at, n) in dict(raw["s"]).items()}
            state._session_ids = sessions
            ordered = sorted(sessions.values())
            state.session_ts = [at for at, _ in ordered]
            state.session_failed = [n for _, n in ordered]
        if et in _WITH_LABELS:
            state.frauds = [(int(a), str(b), int(c)) for a, b, c in raw["f"]]
            state._pending_labels = {str(k): int(v) for k, v in dict(raw["p"]).items()}
        state.applied = {str(k): int(v) for k, v in dict(raw.get("o", {})).items()}
        return state

    def copy(self) -> EntityState:
        return EntityState.from_bytes(self.to_bytes())


def _opt_int(value: object) -> int | None:
    if value is None:
        return None
    if not isinstance(value, int):
        raise TypeError(f"expected an integer, got {type(value).__name__}")
    return value


def _ints(values: object) -> list[int]:
    # sum() and join() check every element at C speed (a per-element isinstance would cost more
    # than the JSON parsing): a non-number raises, a float makes the sum a float.
    if not isinstance(values, list) or type(sum(values)) is not int:
        raise TypeError("expected a list of integers")
    return values


def _strs(values: object) -> list[str]:
    if not isinstance(values, list):
        raise TypeError("expected a list of strings")
    "".join(values)  # raises TypeError on anything but strings
    return values


def _same_len(n: int, values: list[_T]) -> list[_T]:
    if len(values) != n:
        raise ValueError(f"column of {len(values)} entries for {n} transactions")
    return values

