"""Redaction: every kind of secret and PII, and the look-alikes that must stay."""

from __future__ import annotations

from collections import Counter

import pytest

from vigie_contracts import Pseudonymizer
from vigie_logs.handlers.redact import Redactor, luhn

KEY = b"unit-test-key-0123456789"
R = Redactor(KEY)
SHARED = Pseudonymizer(KEY)


def redact(text: str) -> tuple[str, Counter[str]]:
    counts: Counter[str] = Counter()
    return R.redact(text, counts), counts


@pytest.mark.parametrize(
    ("line", "secret", "kind"),
    [
        (
            "GET /me Authorization: Bearer abcDEF123456ghiJKL789mno",
            "abcDEF123456ghiJKL789mno",
            "bearer",
        ),
        ("auth header=Basic dXNlcjpwYXNzd29yZA==", "dXNlcjpwYXNzd29yZA==", "bearer"),
        (
            "jwt eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0"
            ".dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
            "jwt",
        ),
        ("aws key AKIAIOSFODNN7EXAMPLE used", "AKIAIOSFODNN7EXAMPLE", "api_key"),
        ("sts ASIAY34FZKBOKMUTVV7A", "ASIAY34FZKBOKMUTVV7A", "api_key"),
        (
            "gh ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8 ok",
            "ghp_a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8",
            "api_key",
        ),
        ("stripe sk_live_4eC39HqLyjWDarjtT1zdp7dc", "sk_live_4eC39HqLyjWDarjtT1zdp7dc", "api_key"),
        ("slack xoxb-2048-1024-Zr3aBcDeFgHiJkLmN", "xoxb-2048-1024-Zr3aBcDeFgHiJkLmN", "api_key"),
        (
            "google AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
            "AIzaSyA1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q",
            "api_key",
        ),
        ("dsn postgres://app:S3cretPassw0rd@db:5432/x", "S3cretPassw0rd", "url_password"),
        ("amqp://guest:gu3st!@rabbit/", "gu3st!", "url_password"),
        ("login password=hunter2xyz ok", "hunter2xyz", "secret"),
        ('{"password": "Tr0ub4dor&3", "user": "x"}', "Tr0ub4dor&3", "secret"),
        ("client_secret: 'a b c d'", "a b c d", "secret"),
        ("api_key=k-9f8e7d6c5b4a&x=1", "k-9f8e7d6c5b4a", "secret"),
        ("DB_PASSWORD=p@ss", "p@ss", "secret"),
        (
            "key -----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA7bq\n"
            "-----END RSA PRIVATE KEY----- end",
            "MIIEowIBAAKCAQEA7bq",
            "private_key",
        ),
        (
            "cut -----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAA",
            "b3BlbnNzaC1rZXktdjEAAAA",
            "private_key",
        ),
        ("card 4111 1111 1111 1111 declined", "4111 1111 1111 1111", "card"),
        ("card 4111-1111-1111-1111", "4111-1111-1111-1111", "card"),
        ("pan=5555555555554444", "5555555555554444", "card"),
        ("amex 378282246310005", "378282246310005", "card"),
        ("mail alice.smith+test@example.co.uk now", "alice.smith+test@example.co.uk", "email"),
        ("call +14155552671", "+14155552671", "phone"),
        ("call +44 20 7946 0958", "+44 20 7946 0958", "phone"),
        ("call (415) 555-2671", "(415) 555-2671", "phone"),
        ("call 415-555-2671", "415-555-2671", "phone"),
        ("appelez 06 12 34 56 78", "06 12 34 56 78", "phone"),
        ("from 203.0.113.77 port 22", "203.0.113.77", "ipv4"),
        ("from 2001:db8:85a3::8a2e:370:7334", "2001:db8:85a3::8a2e:370:7334", "ipv6"),
        ("peer ::ffff:10.0.0.1 up", "10.0.0.1", "ipv6"),
        ("ends with fe80::1.", "fe80::1", "ipv6"),
    ],
)
def test_each_kind_is_replaced_and_counted(line: str, secret: str, kind: str) -> None:
    out, counts = redact(line)
    assert secret not in out
    assert counts[kind] >= 1, counts


@pytest.mark.parametrize(
    "line",
    [
        "order 1234567890123457 shipped",  # 16 digits, fails Luhn: an order id
        "epoch 1764163284123 ms",  # starts with 1: never a card
        "took 12:30:45 and mac aa:bb:cc:dd:ee:ff",  # not IPv6
        "version 2026-11-26 build 42",  # dates are not phones
        "max_tokens_used=5 count=12",  # not secrets
        "user bob logged in",
    ],
)
def test_look_alikes_stay(line: str) -> None:
    out, counts = redact(line)
    assert out == line, counts
    assert not counts


def test_markers_say_what_was_removed() -> None:
    out, _ = redact("Authorization: Bearer abcDEF123456ghiJKL789mno card 4111111111111111")
    assert out == "Authorization: Bearer [REDACTED:bearer] card [REDACTED:card]"
    out, _ = redact("postgres://app:pw12345@db/x")
    assert out == "postgres://app:[REDACTED:url_password]@db/x"
    out, _ = redact('"password": "x y"')
    assert out == '"password": "[REDACTED:secret]"'


def test_pseudonyms_are_stable_keyed_and_normalised() -> None:
    a, _ = redact("from 203.0.113.77 and Alice@Example.com")
    b, _ = redact("to 203.0.113.77 and alice@example.com")
    assert a.split()[1] == b.split()[1]
    assert a.split()[-1] == b.split()[-1]
    # the markers carry the shared pseudonym: what clickstream and ingest-cdc compute too
    assert a.split()[1] == "ip:" + SHARED.pseudonym("ip", "203.0.113.77")
    assert a.split()[-1] == "[email:" + SHARED.pseudonym("email", "alice@example.com") + "]"
    other = Redactor(b"another-key-0123456789").redact("from 203.0.113.77")
    assert other.split()[1] != a.split()[1]
    phone1, _ = redact("+33 6 12 34 56 78")
    phone2, _ = redact("+33612345678")
    assert phone1 == phone2 == "[phone:" + SHARED.pseudonym("phone", "+33612345678") + "]"
    v4_mapped, _ = redact("from ::ffff:203.0.113.77 x")
    assert v4_mapped.split()[1] == a.split()[1]  # a dual-stack peer is the same client


def test_redaction_is_idempotent() -> None:
    once, _ = redact("password=abc token: xyz 4111111111111111 203.0.113.77")
    twice, counts = redact(once)
    assert twice == once
    assert sum(counts.values()) == 0


def test_redact_ip_field() -> None:
    counts: Counter[str] = Counter()
    assert R.redact_ip("2001:DB8::1", counts) == "ip:" + SHARED.pseudonym("ip", "2001:db8::1")
    assert R.redact_ip("unknown", counts) == "unknown"
    assert counts == Counter({"ipv6": 1})


def test_a_short_key_is_refused() -> None:
    with pytest.raises(ValueError, match="16 bytes"):
        Redactor(b"short")


def test_luhn() -> None:
    assert luhn("4111111111111111") and luhn("378282246310005")
    assert not luhn("4111111111111112")
