"""The shared pseudonym: stable, normalised per kind, kinds apart, key checked, format pinned."""

from __future__ import annotations

import re

import pytest

from vigie_contracts import Pseudonymizer, PseudonymKind
from vigie_contracts.pseudonyms import normalise

KEY = b"golden-vector-key-0123456789"
P = Pseudonymizer(KEY)


def test_golden_vectors_pin_the_format() -> None:
    # computed independently: printf 'email:alice@example.com' | openssl dgst -sha256 -hmac KEY
    # (first 32 hex characters). If this fails, every stored and published pseudonym changes.
    assert P.pseudonym("email", "alice@example.com") == "7f634644eeb2b563ef174c92498ad765"
    assert P.pseudonym("ip", "192.0.2.1") == "10d513c2589c80c316db4f232ab1d270"
    assert P.pseudonym("phone", "+33612345678") == "83b2757c27092c9d586c7a56489d5908"


def test_output_is_32_lower_case_hex_and_stable() -> None:
    first = P.pseudonym(PseudonymKind.NAME, "Ada Lovelace")
    assert re.fullmatch(r"[0-9a-f]{32}", first)
    assert Pseudonymizer(KEY).pseudonym("name", "Ada Lovelace") == first
    assert Pseudonymizer(b"another-key-0123456789").pseudonym("name", "Ada Lovelace") != first


@pytest.mark.parametrize(
    ("kind", "spellings"),
    [
        ("email", [" Alice@Example.COM ", "alice@example.com"]),
        ("phone", ["+33 6 12 34 56 78", "+33.6.12.34.56.78", "+33612345678"]),
        ("phone", ["(555) 123-4567", "555.123.4567", "5551234567"]),
        ("ip", ["::ffff:1.2.3.4", "1.2.3.4", " 001.002.003.004 ", "::FFFF:0102:0304"]),
        ("ip", ["2001:0DB8:0000:0000:0000:0000:0000:0001", "2001:db8::1", "2001:db8:0::0:1"]),
        ("name", ["  Ada Lovelace ", "Ada Lovelace"]),
        ("birth_date", ["1990-05-17 ", "1990-05-17"]),
    ],
)
def test_spellings_of_the_same_value_agree(kind: str, spellings: list[str]) -> None:
    assert len({P.pseudonym(kind, s) for s in spellings}) == 1


def test_different_values_differ() -> None:
    assert P.pseudonym("phone", "+33612345678") != P.pseudonym("phone", "33612345678")
    assert P.pseudonym("ip", "1.2.3.4") != P.pseudonym("ip", "1.2.3.5")
    assert P.pseudonym("name", "Ada") != P.pseudonym("name", "ada")  # names keep their case


def test_kinds_never_collide_for_the_same_value() -> None:
    for value in ("1990-05-17", "12345678", "ada", "1.2.3.4"):
        pseudonyms = [P.pseudonym(kind, value) for kind in PseudonymKind]
        assert len(set(pseudonyms)) == len(PseudonymKind)


def test_normalisation_per_kind() -> None:
    assert normalise("email", " A@B.Test\n") == "a@b.test"
    assert normalise("phone", " +44 (20) 7946-0958") == "+442079460958"
    assert normalise("phone", "06 12 34 56 78") == "0612345678"
    assert normalise("ip", "::ffff:192.0.2.1") == "192.0.2.1"
    assert normalise("ip", "010.000.000.001") == "10.0.0.1"
    assert normalise("ip", "2001:DB8::0001") == "2001:db8::1"
    # not an address: still pseudonymised, as its text (a collector must not fail on it)
    assert normalise("ip", " Unknown ") == "unknown"
    assert normalise("ip", "300.1.1.1") == "300.1.1.1"
    assert normalise("account", " Bob ") == "Bob"


def test_short_or_non_bytes_key_refused_without_showing_it() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes") as info:
        Pseudonymizer(b"short-secret")
    assert "short-secret" not in str(info.value)
    with pytest.raises(TypeError):
        Pseudonymizer("a-str-key-0123456789")  # type: ignore[arg-type]
    assert "0123" not in repr(Pseudonymizer(b"x" * 16))


def test_unknown_kind_refused() -> None:
    with pytest.raises(ValueError):
        P.pseudonym("iban", "FR76...")
