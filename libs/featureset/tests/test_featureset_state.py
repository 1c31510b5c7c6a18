"""EntityState: bytes round trip, bad bytes, lateness, eviction, labels before their transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import orjson
import pytest

from vigie_contracts.events.features import EntityType
from vigie_featureset import (
    EntityState,
    LateEventError,
    RefundFact,
    SessionFact,
    StateDecodeError,
    TxFact,
    complete,
    vector_keys,
)

T = datetime(2026, 3, 10, 12, 0, tzinfo=UTC)
DAY = timedelta(days=1)


def tx(tid: str, at: datetime, amount: int = 1_000) -> TxFact:
    return TxFact(tid, "c1", "k1", "T1", "M1", None, amount, at)


def filled(entity: EntityType) -> EntityState:
    state = EntityState(entity, lateness=timedelta(hours=6))
    for i in range(40):
        state.apply_tx(tx(f"t{i:02d}", T + timedelta(hours=7 * i), 100 + i))
    state.apply_label("t03", True, T + 10 * DAY)
    state.apply_label("zz", True, T + 11 * DAY)  # its transaction is not here yet
    state.apply_refund(RefundFact("r1", "t01", "c1", T + DAY, 50))
    state.apply_session(SessionFact("s1", "c1", T + 2 * DAY, 3))
    return state


@pytest.mark.parametrize("entity", list(EntityType))
def test_round_trip(entity: EntityType) -> None:
    state = filled(entity)
    data = state.to_bytes()
    back = EntityState.from_bytes(data)
    assert back == state
    assert back.to_bytes() == data
    assert back.version == state.version > 0
    assert back.last_event_time == state.last_event_time
    assert back.lateness == timedelta(hours=6)
    assert back.size == state.size
    assert EntityState.from_bytes(data.decode()) == state  # the text Redis returns
    # Decoded states keep working: duplicates are still known, new events still apply.
    assert back.apply_tx(tx("t05", T + 35 * DAY)) is False
    assert back.apply_tx(tx("new", T + 40 * DAY)) is True


def test_applied_offsets_travel_with_the_state() -> None:
    state = filled(EntityType.CUSTOMER)
    without = state.to_bytes()
    assert b'"o"' not in without  # nothing to say, nothing written
    assert EntityState.from_bytes(without).applied == {}
    state.applied["payments.transactions:3"] = 41
    state.applied["features-customer-events:3"] = 7
    back = EntityState.from_bytes(state.to_bytes())
    assert back.applied == {"payments.transactions:3": 41, "features-customer-events:3": 7}
    assert back == state
    with pytest.raises(StateDecodeError):
        EntityState.from_bytes(without.replace(b'"v":1,', b'"v":1,"o":{"t:0":"x"},'))


def test_the_format_is_compact_and_versioned() -> None:
    state = filled(EntityType.CUSTOMER)
    raw = orjson.loads(state.to_bytes())
    assert raw["v"] == 1 and raw["e"] == "customer"
    assert len(state.to_bytes()) < 40 * 60  # ~ an id, a delta, an amount, two ids per entry


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x01garbage",
        b"[1, 2]",
        b'{"e": "customer"}',
        b'{"v": 99, "e": "customer"}',
        b'{"v": 1, "e": "planet"}',
        b'{"v": 1, "e": "card", "l": 0, "n": 1, "last": null, "floor": null, "t": [1, 2], '
        b'"i": ["a"], "a": [1, 2]}',
        b'{"v": 1, "e": "card", "l": 0, "n": 1, "last": "x", "floor": null, "t": [], "i": [], '
        b'"a": []}',
    ],
)
def test_bad_bytes_raise_a_clear_error(data: bytes) -> None:
    with pytest.raises(StateDecodeError):
        EntityState.from_bytes(data)


def test_truncated_bytes_raise() -> None:
    data = filled(EntityType.TERMINAL).to_bytes()
    with pytest.raises(StateDecodeError, match="not an entity state"):
        EntityState.from_bytes(data[: len(data) // 2])


def test_duplicates_and_versions() -> None:
    state = EntityState(EntityType.CUSTOMER)
    assert state.apply_tx(tx("a", T)) is True
    v = state.version
    assert state.apply_tx(tx("a", T)) is False
    assert state.version == v
    assert state.apply_refund(RefundFact("r", "a", "c1", T, 1)) is True
    assert state.apply_refund(RefundFact("r", "a", "c1", T, 1)) is False
    assert state.apply_session(SessionFact("s", "c1", T, 0)) is True
    assert state.apply_session(SessionFact("s", "c1", T, 0)) is False
    assert state.version == v + 2
    # Customers keep no labels.
    assert state.apply_label("a", True, T) is False


def test_late_events_are_rejected_with_an_exception() -> None:
    state = EntityState(EntityType.CUSTOMER, lateness=DAY)
    state.apply_tx(tx("a", T))
    limit = T - timedelta(days=30) - DAY
    assert state.apply_tx(tx("ok", limit + timedelta(microseconds=1))) is True
    with pytest.raises(LateEventError) as caught:
        state.apply_tx(tx("late", limit))
    assert caught.value.kind == "transaction" and caught.value.limit == limit
    assert "late" not in state
    with pytest.raises(LateEventError):
        state.apply_refund(RefundFact("r", "x", "c1", limit - DAY, 1))
    with pytest.raises(LateEventError):
        state.apply_session(SessionFact("s", "c1", limit, 1))
    # A duplicate of something held is a duplicate, not a late event.
    assert state.apply_tx(tx("ok", limit + timedelta(microseconds=1))) is False


def test_terminal_labels_before_and_after_their_transaction() -> None:
    state = EntityState(EntityType.TERMINAL)
    assert state.apply_label("a", True, T + 8 * DAY) is True  # before the transaction
    assert state.apply_label("a", True, T + 9 * DAY) is False  # a later label: no news
    assert state.apply_label("a", False, T + 2 * DAY) is False  # genuine: no news
    state.apply_tx(tx("a", T))
    assert state.frauds == [(state.ts[0], "a", state.ts[0] + 8 * 86_400_000_000)]
    assert state.apply_label("a", True, T + 7 * DAY) is True  # an earlier fraud label wins
    assert state.frauds[0][2] == state.ts[0] + 7 * 86_400_000_000
    assert state.size == 1


def test_eviction_keeps_every_window_right() -> None:
    customer = EntityState(EntityType.CUSTOMER, lateness=DAY)
    terminal = EntityState(EntityType.TERMINAL, lateness=DAY)
    facts = [tx(f"t{i:03d}", T + timedelta(hours=5 * i), 100 + i) for i in range(400)]
    for i, f in enumerate(facts):
        customer.apply_tx(f)
        terminal.apply_tx(f)
        if i % 9 == 0:
            terminal.apply_label(f.transaction_id, True, f.occurred_at + 3 * DAY)
        customer.apply_refund(RefundFact(f"r{i}", f.transaction_id, "c1", f.occurred_at, 1))
        customer.apply_session(SessionFact(f"s{i}", "c1", f.occurred_at, i % 3))
    now = facts[-1].occurred_at
    probes = [f for f in facts if f.occurred_at >= now - DAY]  # within the allowed lateness
    keys = {EntityType.CUSTOMER: customer, EntityType.TERMINAL: terminal}

    def vectors() -> list[dict[str, float]]:
        return [complete(f, {k: keys.get(k[0]) for k in vector_keys(f)}) for f in probes]

    before = vectors()
    sizes = customer.size, terminal.size
    assert customer.evict(now) > 0 and terminal.evict(now) > 0
    assert customer.size < sizes[0] and terminal.size < sizes[1]
    # 30 days (+ 1 of lateness) of transactions every 5 hours, each with a refund and a session.
    assert len(customer.ts) == 31 * 24 // 5 + 1
    assert len(terminal.ts) == 38 * 24 // 5 + 1
    assert vectors() == before
    assert EntityState.from_bytes(customer.to_bytes()) == customer
    # Ids kept for deduplication go with their entries.
    raw = orjson.loads(customer.to_bytes())
    assert len(raw["r"]) == len(customer.refund_ts) == len(customer.ts)
    assert len(raw["s"]) == len(customer.session_ts) == len(customer.ts)
    # What eviction cut is now too late, even if the watermark alone would not say so.
    with pytest.raises(LateEventError):
        customer.apply_tx(tx("old", now - timedelta(days=31)))
    assert customer.evict(now) == 0
