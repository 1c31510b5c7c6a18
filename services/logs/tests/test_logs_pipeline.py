"""The pure pipeline: raw bytes → redacted, classified record and security event."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from vigie_contracts import Pseudonymizer, decode, encode
from vigie_contracts.events.logs import SecurityCategory
from vigie_logs.handlers import (
    BadRecord,
    Outcome,
    Redactor,
    Source,
    check_raw,
    process,
    record_id,
    security_envelope,
    security_key,
)
from vigie_logs.handlers.classify import (
    account_of,
    fingerprint,
    normalise_message,
    security_category,
)

KEY = b"unit-test-key-0123456789"
R = Redactor(KEY)
INGEST_MS = 1795687200000  # 2026-11-26T10:00:00Z


def run(
    line: str | bytes, key: bytes | None = b"svc", offset: int = 1, max_bytes: int = 65536
) -> Outcome:
    raw = line.encode() if isinstance(line, str) else line
    return process(raw, Source("logs.raw", 0, offset, INGEST_MS, key), R, max_bytes=max_bytes)


def java(order: int, line: int, host: str) -> str:
    return (
        f"2026-11-26 10:00:0{order % 10}.123 [exec-{order}] ERROR c.a.Pay - payment {order}"
        f" failed on {host}\n"
        f"java.lang.IllegalStateException: order ord_{order} in state 'PENDING_{order}'"
        f" at 0x7f{order:04x}\n"
        f"\tat com.acme.pay.Pay.charge(Pay.java:{line})\n"
        f"\tat com.acme.pay.Api.post(Api.java:{line + 10})"
    )


def test_fingerprint_groups_repeats_and_separates_other_errors() -> None:
    a = run(java(1, 88, "host-a")).record
    b = run(java(2, 90, "host-b")).record  # other ids, values, line numbers, host
    assert a.fingerprint is not None and a.fingerprint == b.fingerprint
    other = run(java(1, 88, "host-a").replace("Pay.charge", "Pay.refund")).record
    assert other.fingerprint != a.fingerprint
    other_type = run(
        java(1, 88, "x").replace("IllegalStateException", "IllegalArgumentException")
    ).record
    assert other_type.fingerprint != a.fingerprint
    assert a.exception_type == "java.lang.IllegalStateException"


def test_fingerprint_without_stack_uses_the_normalised_message() -> None:
    one = run(
        '{"level":"error","msg":"timeout calling ledger after 3012 ms '
        'for txn-9f8e7d, user \\"bob\\""}'
    )
    two = run(
        '{"level":"error","msg":"timeout calling ledger after 15 ms for txn-0001, user \\"eve\\""}'
    )
    three = run('{"level":"error","msg":"refund rejected by ledger"}')
    assert one.record.fingerprint == two.record.fingerprint != three.record.fingerprint
    assert (
        normalise_message('failed id=42 "x" 0xdeadbeef 3f2a9c1b7e')
        == "failed id=<n> <str> <hex> <hex>"
    )
    assert fingerprint("a", None, "x 1", None) != fingerprint("b", None, "x 1", None)


def test_info_records_have_no_fingerprint() -> None:
    assert run("level=info msg=ok").record.fingerprint is None


@pytest.mark.parametrize(
    ("message", "category"),
    [
        ("Login failed for user bob: invalid password", SecurityCategory.AUTH_FAILURE),
        ("authentication failed (bad credentials)", SecurityCategory.AUTH_FAILURE),
        (
            "Failed password for invalid user admin from 10.0.0.1 port 22 ssh2",
            SecurityCategory.AUTH_FAILURE,
        ),
        ("account locked after 5 attempts", SecurityCategory.AUTH_FAILURE),
        ("invalid MFA code for user=u-1", SecurityCategory.AUTH_FAILURE),
        ("user u-1 logged in", SecurityCategory.AUTH_SUCCESS),
        ("Accepted publickey for deploy from 10.1.1.1", SecurityCategory.AUTH_SUCCESS),
        ("login succeeded for user=u-1", SecurityCategory.AUTH_SUCCESS),
        ("role admin granted to user=u-2", SecurityCategory.PRIVILEGE_CHANGE),
        ("permissions changed on project 7", SecurityCategory.PRIVILEGE_CHANGE),
        ("privilege escalation via sudo", SecurityCategory.PRIVILEGE_CHANGE),
        ("Access denied for user=u-3 to /admin", SecurityCategory.ACCESS_DENIED),
        ("403 Forbidden: missing scope", SecurityCategory.ACCESS_DENIED),
        ("insufficient permissions for refunds:write", SecurityCategory.ACCESS_DENIED),
        ("payment captured", None),
        ("token refresh scheduled", None),
    ],
)
def test_security_categories(message: str, category: SecurityCategory | None) -> None:
    assert security_category(message, None, {}, None, None) == category


def test_security_from_http_and_audit_markers() -> None:
    assert (
        security_category("POST /login", None, {}, "/login", 401) is SecurityCategory.AUTH_FAILURE
    )
    assert security_category("GET /x", None, {}, "/x", 403) is SecurityCategory.ACCESS_DENIED
    assert security_category("export", "audit", {}, None, None) is SecurityCategory.AUDIT
    assert (
        security_category("export", None, {"event.category": "audit"}, None, None)
        is SecurityCategory.AUDIT
    )
    assert security_category("GET /x", None, {}, "/x", 200) is None


def test_account_extraction() -> None:
    assert account_of("x", {"user_id": "u-7"}) == "u-7"
    assert account_of("Failed password for invalid user admin from ip:ab", {}) == "admin"
    assert account_of("login failed for user=[email:0123abcd]", {}) == "[email:0123abcd]"
    assert account_of("nothing here", {}) is None


def test_security_event_is_redacted_and_keyed() -> None:
    out = run(
        '{"time":"2026-11-26T10:00:00Z","level":"warn","msg":"login failed for alice@example.com '
        'from 203.0.113.5 password=hunter2","trace_id":"0af7651916cd43dd8448eb211c80319c"}',
        key=b"auth",
    )
    event = out.security
    assert event is not None and event.category is SecurityCategory.AUTH_FAILURE
    blob = event.model_dump_json()
    for clear in ("alice@example.com", "203.0.113.5", "hunter2"):
        assert clear not in blob
    assert event.source_ip_pseudonym == "ip:" + Pseudonymizer(KEY).pseudonym("ip", "203.0.113.5")
    assert event.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert event.occurred_at == datetime(2026, 11, 26, 10, tzinfo=UTC)
    assert security_key(event) == event.account or security_key(event) == event.source_ip_pseudonym
    envelope = security_envelope(event, out.record, "logs")
    assert decode(encode(envelope)).payload == event
    # a replay of the same offset republishes the same event id
    assert security_envelope(event, out.record, "logs").event_id == envelope.event_id


def test_access_log_403_is_access_denied_keyed_by_ip_pseudonym() -> None:
    out = run(
        "198.51.100.4 - - [26/Nov/2026:10:00:00 +0000] "
        '"DELETE /admin/users/7 HTTP/1.1" 403 0 "-" "curl/8"'
    )
    assert out.security is not None and out.security.category is SecurityCategory.ACCESS_DENIED
    assert out.security.account is None
    assert security_key(out.security) == out.record.http.remote
    assert out.record.http.remote is not None and "198.51.100.4" not in out.record.http.remote


def test_record_fields_and_deterministic_id() -> None:
    out = run(
        '{"ts":"2026-11-26T09:59:59.5Z","level":"WARN","message":"slow","logger":"api",'
        '"trace_id":"0AF7651916CD43DD8448EB211C80319C","span_id":"b7ad6b7169203331",'
        '"http":{"method":"get","path":"/v1/x?token=abc123","status_code":200,"duration_ms":812.5},'
        '"client_ip":"10.0.0.9","cart":{"items":3},"hostname":"api-1"}',
        key=b"",
    ).record
    assert out.time == datetime(2026, 11, 26, 9, 59, 59, 500000, tzinfo=UTC)
    assert out.service == "unknown" and out.host == "api-1" and out.level == "warning"
    assert out.trace_id == "0af7651916cd43dd8448eb211c80319c" and out.span_id == "b7ad6b7169203331"
    assert out.http.method == "GET" and out.http.status == 200 and out.http.duration_ms == 812.5
    assert out.http.path == "/v1/x?token=[REDACTED:secret]"
    assert out.http.remote == "ip:" + Pseudonymizer(KEY).pseudonym("ip", "10.0.0.9")
    assert out.attributes["cart.items"] == "3"
    assert out.id == record_id(Source("logs.raw", 0, 1, 0, None))
    assert out.id != run("x", offset=2).record.id
    assert out.redactions == {"secret": 1, "ipv4": 1}


def test_sensitive_json_keys_are_redacted_whatever_their_value() -> None:
    out = run(
        '{"msg":"cfg","db_password":"plain words here",'
        '"nested":{"client_secret":42},"session_id":"s"}'
    ).record
    assert out.attributes["db_password"] == "[REDACTED:secret]"
    assert out.attributes["nested.client_secret"] == "[REDACTED:secret]"
    assert out.attributes["session_id"] == "[REDACTED:secret]"
    assert "plain words here" not in orjson.dumps(out.to_json()).decode()


def test_bad_input_is_flagged() -> None:
    ten_mb = b'{"level":"info","msg":"' + b"x" * (10 * 2**20) + b'"}'
    big = run(ten_mb, max_bytes=64 * 1024).record
    assert "truncated" in big.flags and len(big.message) <= 64 * 1024
    assert "ingest_time" in big.flags  # the JSON was cut, so its time was lost too
    assert big.time == datetime(2026, 11, 26, 10, tzinfo=UTC)
    bad_time = run('{"time":"not a time","msg":"x"}').record
    assert "ingest_time" in bad_time.flags and bad_time.time == datetime(
        2026, 11, 26, 10, tzinfo=UTC
    )
    utf = run(b'level=info msg="caf\xe9"').record
    assert "invalid_utf8" in utf.flags and utf.message == "caf\ufffd"


def test_secret_cut_by_truncation_does_not_leak_its_head() -> None:
    line = ("x" * 1000 + " Authorization: Bearer " + "A1b2C3d4" * 8).encode()
    out = run(line, max_bytes=1030).record
    assert "A1b2C3d4" not in out.message


@pytest.mark.parametrize("raw", [None, b"", b"  \n", b"\x00\x01\x02\x03" * 100])
def test_not_a_log_line_is_rejected_for_the_dead_letter_topic(raw: bytes | None) -> None:
    with pytest.raises(BadRecord):
        check_raw(raw)
    assert check_raw(b"ok") == b"ok"


def test_keys_service_and_method_cannot_smuggle_values() -> None:
    out = run(
        '{"msg":"x","alice@example.com":"1","method":"GET password=hunter2"}',
        key=b"bob@example.com",
    ).record
    blob = orjson.dumps(out.to_json()).decode()
    assert "alice@example.com" not in blob and "bob@example.com" not in blob
    assert "hunter2" not in blob and out.http.method is None
