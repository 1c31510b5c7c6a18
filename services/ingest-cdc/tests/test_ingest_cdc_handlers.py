"""The pure handlers with plain values: parsing, normalisation, PII, mapping, event ids."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import orjson
import pytest

from vigie_contracts import Pseudonymizer as SharedPseudonymizer
from vigie_ingest_cdc.errors import BadChange
from vigie_ingest_cdc.handlers import (
    CardRef,
    Lookups,
    Op,
    Pseudonymizer,
    map_change,
    parse_change,
    scrub,
)
from vigie_ingest_cdc.handlers import normalize as n
from vigie_ingest_cdc.settings import TABLES

PII = Pseudonymizer(
    b"k" * 32, b"p" * 32, ("email", "phone", "ip_address", "full_name", "date_of_birth")
)
#: what every service computes under the same key: ingest-cdc's pseudonyms must equal it
SHARED = SharedPseudonymizer(b"p" * 32)
TS = "2026-11-26T12:35:27.713559Z"


def envelope(
    table: str,
    op: str,
    after: dict[str, Any] | None,
    before: dict[str, Any] | None = None,
    lsn: int = 100,
) -> bytes:
    return orjson.dumps(
        {
            "before": before,
            "after": after,
            "source": {
                "table": table,
                "lsn": lsn,
                "txId": 7,
                "ts_ms": 1_795_696_527_717,
                "snapshot": "false",
                "db": "oltp",
            },
            "op": op,
            "ts_ms": 1_795_696_527_937,
        }
    )


def tx_row(**over: Any) -> dict[str, Any]:
    row = {
        "id": 4,
        "customer_id": 7,
        "card_id": 3,
        "terminal_id": 4,
        "merchant_id": 5,
        "amount": "1234567.8901",
        "currency": "EUR",
        "status": "pending",
        "channel": "pos",
        "entry_mode": "chip",
        "ip_address": "192.0.2.1",
        "device_id": None,
        "decline_reason": None,
        "occurred_at": TS,
        "created_at": TS,
        "updated_at": TS,
        "a_column_added_later": 42,
    }
    return {**row, **over}


def run(raw: bytes, lookups: Lookups | None = None) -> Any:
    change = PII.change(parse_change(raw, TABLES))
    return map_change(change, lookups or Lookups())


@pytest.mark.parametrize(
    ("amount", "currency", "minor"),
    [
        ("12.345", "EUR", 1234),  # half-even
        ("12.355", "EUR", 1236),
        ("1500", "JPY", 1500),
        ("1500.5", "JPY", 1500),
        ("1.2345", "KWD", 1234),
        ("0", "USD", 0),
        ("1234567.8901", "EUR", 123456789),
    ],
)
def test_minor_units_follow_the_currency_exponent(amount: str, currency: str, minor: int) -> None:
    assert n.minor_units(amount, n.currency(currency)) == minor


@pytest.mark.parametrize("code", ["ZZZ", "EURO", "XAU", "", 12])
def test_non_iso_currencies_are_refused(code: Any) -> None:
    with pytest.raises(BadChange) as info:
        n.currency(code)
    assert info.value.reason == "bad_currency"


def test_negative_and_garbage_amounts_are_refused() -> None:
    with pytest.raises(BadChange, match="negative_amount"):
        n.minor_units("-0.01", "EUR")
    with pytest.raises(BadChange, match="bad_amount"):
        n.minor_units("NaN", "EUR")
    with pytest.raises(BadChange, match="bad_amount"):
        n.minor_units("0.001", "EUR", allow_zero=False)


def test_countries_times_and_dates() -> None:
    assert n.country("de ") == "DE"
    with pytest.raises(BadChange):
        n.country("XX")
    assert n.timestamp("2026-11-26T13:35:27+01:00", "t") == datetime(
        2026, 11, 26, 12, 35, 27, tzinfo=UTC
    )
    assert n.day(7441, "dob") == date(1990, 5, 17)


def test_card_numbers_become_token_bin_and_last_four() -> None:
    token, bin_, last4 = PII.card("4111 1111 1111 1111")
    assert (bin_, last4, len(token)) == ("41111111", "1111", 64)
    assert PII.card("4111111111111111")[0] == token  # same card, same token
    assert PII.card("378282246310005")[1] == "378282"  # 15 digits: 6-digit BIN
    with pytest.raises(BadChange) as info:
        PII.card("41111111111x1111")
    assert "4111" not in str(info.value)
    row = PII.row({"id": 1, "pan": "4111111111111111", "email": "A@B.test"})
    assert row is not None and "pan" not in row and "email" not in row
    assert row["email_pseudonym"] == SHARED.pseudonym("email", "a@b.test")


def test_pseudonyms_are_the_shared_ones_per_column_kind() -> None:
    row = PII.row(
        {
            "email": " A@B.test",
            "phone": "+33 6 12 34 56 78",
            "ip_address": "::ffff:192.0.2.1",
            "full_name": "Ada Lovelace",
            "date_of_birth": 7441,  # Debezium: days since the epoch
            "segment": "high",
        }
    )
    assert row == {
        "email_pseudonym": SHARED.pseudonym("email", "a@b.test"),
        "phone_pseudonym": SHARED.pseudonym("phone", "+33612345678"),
        "ip_address_pseudonym": SHARED.pseudonym("ip", "192.0.2.1"),
        "full_name_pseudonym": SHARED.pseudonym("name", "Ada Lovelace"),
        "date_of_birth_pseudonym": SHARED.pseudonym("birth_date", "1990-05-17"),
        "segment": "high",
    }
    assert PII.pseudonym("date_of_birth", "1990-05-17") == row["date_of_birth_pseudonym"]
    assert PII.pseudonym("email", None) is None


def test_a_pseudonymised_column_without_a_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="iban"):
        Pseudonymizer(b"k" * 32, b"p" * 32, ("email", "iban"))
    with pytest.raises(ValueError, match="16 bytes"):
        Pseudonymizer(b"k" * 32, b"short", ("email",))


def test_the_two_keys_must_differ() -> None:
    with pytest.raises(ValueError, match="differ"):
        Pseudonymizer(b"same" * 8, b"same" * 8)


def test_scrub_masks_pans_and_emails_in_unparseable_bytes() -> None:
    out = scrub(b'{"pan": "4111 1111 1111 1111", "mail": "x.y@z.test", "id": 12345}')
    assert b"4111" not in out and b"x.y@z.test" not in out and b"12345" in out


def test_parse_refuses_what_is_not_a_change() -> None:
    for raw, reason in [
        (b"not json", "unparseable"),
        (b"[1]", "unparseable"),
        (envelope("ledgers", "c", {"id": 1}), "unknown_table"),
        (envelope("transactions", "x", {"id": 1}), "unparseable"),
        (envelope("transactions", "c", None), "unparseable"),
    ]:
        with pytest.raises(BadChange) as info:
            parse_change(raw, TABLES)
        assert info.value.reason == reason


def test_insert_becomes_transaction_created_keyed_by_customer() -> None:
    card = CardRef("tok", "41111111", "1111")
    out = run(envelope("transactions", "c", tx_row()), Lookups(card={"3": card}))
    (pub,) = out.events
    p = pub.envelope.payload
    assert pub.topic.name == "payments.transactions" and pub.key == "7"
    assert (p.amount_minor, p.currency, p.card_token, p.card_bin) == (
        123456789,
        "EUR",
        "tok",
        "41111111",
    )
    assert p.ip_pseudonym == SHARED.pseudonym("ip", "192.0.2.1")
    assert p.source_lsn == 100 and pub.envelope.event_time == p.occurred_at
    assert out.mirror.version == 100 and out.mirror.doc["a_column_added_later"] == 42
    assert out.mirror.doc["amount_minor"] == 123456789 and "ip_address" not in out.mirror.doc


def test_event_ids_are_deterministic_per_change() -> None:
    raw = envelope("transactions", "c", tx_row())
    assert run(raw).events[0].envelope.event_id == run(raw).events[0].envelope.event_id
    other = envelope("transactions", "c", tx_row(), lsn=101)
    assert run(raw).events[0].envelope.event_id != run(other).events[0].envelope.event_id


def test_status_update_uses_the_before_image() -> None:
    raw = envelope(
        "transactions", "u", tx_row(status="declined", decline_reason="51"), tx_row(), lsn=120
    )
    (pub,) = run(raw).events
    p = pub.envelope.payload
    assert (p.previous_status, p.status, p.decline_reason) == ("pending", "declined", "51")
    same = envelope("transactions", "u", tx_row(device_id="d"), tx_row(), lsn=121)
    out = run(same)
    assert out.events == () and out.mirror.doc["device_id"] == "d"


def test_bad_transactions_are_refused_with_a_reason() -> None:
    with pytest.raises(BadChange, match="bad_currency"):
        run(envelope("transactions", "c", tx_row(currency="ZZZ")))
    with pytest.raises(BadChange, match="negative_amount"):
        run(envelope("transactions", "c", tx_row(amount="-1.00")))
    with pytest.raises(BadChange, match="bad_status"):
        run(envelope("transactions", "c", tx_row(status="weird")))
    with pytest.raises(BadChange, match="contract_violation"):
        run(envelope("transactions", "c", tx_row(channel="telepathy")))


def test_refund_and_dispute_keys_use_the_customer_when_known() -> None:
    refund = {"id": 9, "transaction_id": 4, "amount": "5.00", "currency": "EUR",
              "reason": None, "status": "pending", "created_at": TS, "updated_at": TS}  # fmt: skip
    known = run(envelope("refunds", "c", refund), Lookups(customer_of_transaction={"4": "7"}))
    assert known.events[0].key == "7" and known.events[0].envelope.payload.customer_id == "7"
    unknown = run(envelope("refunds", "c", refund))
    assert unknown.events[0].key == "4" and unknown.events[0].envelope.payload.customer_id is None
    dispute = {"id": 2, "transaction_id": 4, "reason_code": "10.4", "category": "fraud",
               "amount": "12.34", "currency": "EUR", "status": "opened", "opened_at": TS,
               "resolved_at": None, "created_at": TS, "updated_at": TS}  # fmt: skip
    opened = run(envelope("disputes", "c", dispute))
    assert [e.envelope.event_type for e in opened.events] == ["dispute_opened"]
    won = run(envelope("disputes", "u", {**dispute, "status": "won", "resolved_at": TS}, dispute))
    assert [e.envelope.payload.outcome for e in won.events] == ["won"]
    again = run(
        envelope("disputes", "u", {**dispute, "status": "won"}, {**dispute, "status": "won"})
    )
    assert again.events == ()


def test_entity_delete_is_an_upsert_with_deleted_and_a_tombstone() -> None:
    merchant = {"id": 5, "name": "Shop", "mcc": "5411", "country_code": "fr", "city": None,
                "status": "active", "created_at": TS, "updated_at": TS}  # fmt: skip
    out = run(envelope("merchants", "d", None, merchant, lsn=300))
    (pub,) = out.events
    assert pub.envelope.payload.deleted is True and pub.key == "5"
    assert pub.envelope.payload.country_code == "FR"
    assert out.mirror.doc is None and out.mirror.version == 300


def test_card_snapshot_read_publishes_without_the_pan() -> None:
    card = {"id": 3, "customer_id": 7, "pan": "5500000000000004", "brand": "mastercard",
            "card_type": "debit", "expiry_month": 1, "expiry_year": 2031, "status": "active",
            "issued_at": TS, "created_at": TS, "updated_at": TS}  # fmt: skip
    raw = orjson.loads(envelope("cards", "r", card))
    raw["source"]["snapshot"] = "true"
    out = run(orjson.dumps(raw))
    (pub,) = out.events
    assert pub.envelope.payload.card_bin == "55000000"
    assert "5500000000000004" not in pub.envelope.model_dump_json()
    assert "5500000000000004" not in str(out.mirror.doc)


def test_truncate_tombstones_the_collection() -> None:
    raw = orjson.dumps(
        {"before": None, "after": None, "op": "t", "ts_ms": 1,
         "source": {"table": "refunds", "lsn": 999, "ts_ms": 1, "snapshot": "false"}}
    )  # fmt: skip
    change = parse_change(raw, TABLES)
    assert change.op is Op.TRUNCATE
    out = map_change(change, Lookups())
    assert (out.truncate, out.truncate_version, out.events) == ("refunds", 999, ())
