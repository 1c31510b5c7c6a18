"""Pure parts: decoding and routing, internal messages, label routing, API statuses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from vigie_contracts import DecodeError, Envelope, Event, encode
from vigie_contracts.events import FraudLabel, RefundCreated, SessionSummary, TransactionCreated
from vigie_contracts.events.features import EntityType
from vigie_contracts.events.fraud import LabelSource, LabelValue
from vigie_contracts.events.payments import Channel, TransactionStatus
from vigie_features.handlers import (
    Forward,
    HeldLabels,
    Ignored,
    Kind,
    LookupError_,
    Routed,
    decode_forward,
    decode_internal,
    decode_source,
    describe,
    encode_forward,
    encode_internal,
    on_customer_event,
    on_forward,
    parse_entity_type,
    route_of,
    select,
)
from vigie_featureset import EntityState, LabelFact, TxFact, encode_fields, entity_values
from vigie_runtime import Poison

T0 = datetime(2024, 3, 1, 12, tzinfo=UTC)


def _tx(n: int, at: datetime, customer: str = "C1", card: str | None = "K1") -> TransactionCreated:
    return TransactionCreated(
        transaction_id=f"tx{n}", customer_id=customer, card_token=card, terminal_id=f"T{n % 2}",
        merchant_id=f"M{n % 3}", amount_minor=1000 + n, currency="EUR",
        status=TransactionStatus.AUTHORIZED, channel=Channel.POS, occurred_at=at,
    )


def _raw(event: Event, at: datetime = T0) -> bytes:
    return encode(Envelope.wrap(event, producer="tests", event_time=at))


def _label(tx: str, customer: str | None = "C1", fraud: bool = True) -> FraudLabel:
    return FraudLabel(
        transaction_id=tx, customer_id=customer,
        label=LabelValue.FRAUD if fraud else LabelValue.GENUINE,
        source=LabelSource.DISPUTE, labelled_at=T0 + timedelta(days=7),
    )


def test_sources_decode_to_facts_routed_by_customer() -> None:
    routed = decode_source(_raw(_tx(1, T0)))
    assert isinstance(routed, Routed) and routed.kind is Kind.TX and routed.customer_id == "C1"
    label = decode_source(_raw(_label("tx1")))
    assert isinstance(label, Routed) and label.kind is Kind.LABEL
    session = SessionSummary(
        session_id="s1", user_id="C9", started_at=T0, ended_at=T0, event_count=1, page_views=1,
        converted=False, checkout_abandoned=False, failed_logins=2,
    )
    routed_session = decode_source(_raw(session))
    assert isinstance(routed_session, Routed) and routed_session.customer_id == "C9"


def test_genuine_labels_are_ignored_and_unplaceable_events_are_poison() -> None:
    assert isinstance(decode_source(_raw(_label("tx1", fraud=False))), Ignored)
    with pytest.raises(Poison):
        decode_source(_raw(_label("tx1", customer=None)))
    refund = RefundCreated(
        refund_id="r1", transaction_id="tx1", customer_id=None, amount_minor=5,
        currency="EUR", status="ok", created_at=T0,
    )
    with pytest.raises(Poison):
        decode_source(_raw(refund))


@pytest.mark.parametrize("bad", [None, b"", b"not avro", b"\xc3\x01" + b"\x00" * 8 + b"x"])
def test_bad_bytes_raise_what_the_runtime_dead_letters(bad: bytes | None) -> None:
    with pytest.raises((DecodeError, ValueError)):
        decode_source(bad)


def test_internal_messages_round_trip() -> None:
    for event in (_tx(1, T0), _tx(2, T0, card=None), _label("tx1")):
        routed = decode_source(_raw(event))
        assert isinstance(routed, Routed)
        assert decode_internal(encode_internal(routed)) == routed
    with pytest.raises(DecodeError):
        decode_internal(b'{"f": 99}')
    with pytest.raises(DecodeError):
        decode_internal(b'{"f": 1, "k": "tx", "c": "C1"}')


def test_forwards_round_trip_with_their_terminal() -> None:
    for event in (_tx(1, T0), _label("tx1")):
        routed = decode_source(_raw(event))
        assert isinstance(routed, Routed)
        forward = Forward("M1", "T0", routed)
        assert decode_forward(encode_forward(forward), "M1") == forward
    plain = encode_internal(Routed(TxFact.from_event(_tx(1, T0)), "C1"))
    with pytest.raises(DecodeError, match="terminal"):
        decode_forward(plain, "M1")  # a message of the customer topic is no forward
    with pytest.raises(DecodeError, match="merchant"):
        decode_forward(encode_forward(Forward("M1", "T0", decode_internal(plain))), "")


def test_a_forward_updates_the_terminal_then_the_merchant() -> None:
    tx = Routed(TxFact.from_event(_tx(8, T0)), "C1")
    terminal, merchant = EntityState(EntityType.TERMINAL), EntityState(EntityType.MERCHANT)
    step = on_forward(Forward("M1", "T0", tx), terminal, merchant)
    assert [(t.entity_type, t.entity_id, t.changed) for t in step.touched] == [
        (EntityType.TERMINAL, "T0", True), (EntityType.MERCHANT, "M1", True)
    ]
    assert terminal.ids == merchant.ids == ["tx8"]
    again = on_forward(Forward("M1", "T0", tx), terminal, merchant)
    assert [t.changed for t in again.touched] == [False, False]
    label = Routed(LabelFact("tx8", True, T0 + timedelta(days=7)), "C1")
    labelled = on_forward(Forward("M1", "T0", label), terminal, merchant)
    assert [t.changed for t in labelled.touched] == [True, True]


def test_label_goes_to_the_terminal_and_merchant_of_its_transaction() -> None:
    customer = EntityState(EntityType.CUSTOMER)
    card = EntityState(EntityType.CARD)
    tx = Routed(TxFact.from_event(_tx(4, T0)), "C1")
    step = on_customer_event(tx, customer, card, HeldLabels(), timedelta(days=1))
    assert [(f.merchant_id, f.terminal_id) for f in step.forwards] == [("M1", "T0")]
    assert route_of(customer, "tx4") == ("T0", "M1")
    label = Routed(LabelFact("tx4", True, T0 + timedelta(days=7)), "C1")
    step = on_customer_event(label, customer, None, HeldLabels(), timedelta(days=1))
    assert step.forwards == [Forward("M1", "T0", label)]


def test_a_label_before_its_transaction_is_held_then_forwarded() -> None:
    customer = EntityState(EntityType.CUSTOMER)
    held = HeldLabels()
    label = Routed(LabelFact("tx5", True, T0 + timedelta(days=7)), "C1")
    step = on_customer_event(label, customer, None, held, timedelta(days=1))
    assert step.forwards == [] and held
    held = HeldLabels.from_bytes(held.to_bytes())
    tx = Routed(TxFact.from_event(_tx(5, T0)), "C1")
    step = on_customer_event(tx, customer, None, held, timedelta(days=1))
    assert [f.routed.kind for f in step.forwards] == [Kind.TX, Kind.LABEL]
    assert not held


def test_duplicates_are_forwarded_but_do_not_change_the_state() -> None:
    customer = EntityState(EntityType.CUSTOMER)
    tx = Routed(TxFact.from_event(_tx(6, T0)), "C1")
    on_customer_event(tx, customer, None, HeldLabels(), timedelta(days=1))
    version = customer.version
    step = on_customer_event(tx, customer, None, HeldLabels(), timedelta(days=1))
    assert customer.version == version
    assert [t.changed for t in step.touched] == [False] and len(step.forwards) == 1


def test_too_late_events_are_reported_not_applied() -> None:
    customer = EntityState(EntityType.CUSTOMER)
    on_customer_event(
        Routed(TxFact.from_event(_tx(7, T0)), "C1"), customer, None, HeldLabels(),
        timedelta(days=1),
    )
    old = Routed(TxFact.from_event(_tx(8, T0 - timedelta(days=40))), "C1")
    step = on_customer_event(old, customer, None, HeldLabels(), timedelta(days=1))
    assert [(kind, exc.kind) for kind, exc in step.late] == [(EntityType.CUSTOMER, "transaction")]
    assert "tx8" not in customer


def test_lookup_statuses_present_stale_missing() -> None:
    state = EntityState(EntityType.CUSTOMER)
    state.apply_tx(TxFact.from_event(_tx(1, T0)))
    fields = encode_fields(state, entity_values(EntityType.CUSTOMER, state), position="t:0:1")
    fields["_v"] = str(state.version)
    defs = select(EntityType.CUSTOMER, ["customer_nb_tx_1d", "customer_sessions_1h"])
    fresh = describe(EntityType.CUSTOMER, "C1", fields, defs, T0 + timedelta(seconds=0.5))
    want = {"value": 1.0, "age_s": 0.5, "status": "present"}
    assert fresh["features"]["customer_nb_tx_1d"] == want
    later = describe(EntityType.CUSTOMER, "C1", fields, defs, T0 + timedelta(seconds=20))
    assert later["features"]["customer_nb_tx_1d"]["status"] == "stale"  # freshness 1 s
    assert later["features"]["customer_sessions_1h"]["status"] == "present"  # freshness 30 s
    assert later["position"] == "t:0:1" and later["version"] == state.version
    missing = describe(EntityType.CUSTOMER, "C2", None, defs, T0)
    assert not missing["found"]
    assert {f["status"] for f in missing["features"].values()} == {"missing"}
    del fields["customer_clickstream"]
    partial = describe(EntityType.CUSTOMER, "C1", fields, defs, T0)
    assert partial["features"]["customer_sessions_1h"]["status"] == "missing"


def test_lookup_rejects_bad_input() -> None:
    with pytest.raises(LookupError_):
        parse_entity_type("planet")
    with pytest.raises(LookupError_):
        parse_entity_type("device")  # no stored features
    with pytest.raises(LookupError_):
        select(EntityType.CARD, ["customer_nb_tx_1d"])
    assert parse_entity_type("terminal") is EntityType.TERMINAL
