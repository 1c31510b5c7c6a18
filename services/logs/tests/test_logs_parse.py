"""Parsers: real-looking lines of every format → the fields they carry."""

from __future__ import annotations

from datetime import UTC, datetime

import orjson
import pytest

from vigie_logs.handlers.parse import (
    decode_bytes,
    duration_ms,
    is_binary,
    normalise_level,
    parse_line,
    parse_time,
    split_stack,
)

NOW = datetime(2026, 11, 26, 13, 0, tzinfo=UTC)


def test_fluent_bit_docker_envelope_with_app_json_inside() -> None:
    inner = {
        "level": "error",
        "msg": "db timeout",
        "time": "2026-11-26T10:00:00.123Z",
        "trace_id": "4BF92F3577B34DA6A3CE929D0E0E4736",
        "span_id": "00f067aa0ba902b7",
        "logger": "orders.repo",
        "order_id": "ord_42",
    }
    outer = {
        "log": orjson.dumps(inner).decode() + "\n",
        "stream": "stderr",
        "time": "2026-11-26T10:00:01.000000001Z",
        "kubernetes": {
            "pod_name": "orders-5c7d-abc",
            "namespace_name": "shop",
            "container_name": "orders",
            "labels": {"app": "orders"},
        },
    }
    p = parse_line(orjson.dumps(outer).decode())
    assert p.format == "json"
    assert p.message == "db timeout" and p.level == "error" and p.logger == "orders.repo"
    assert p.time == "2026-11-26T10:00:00.123Z"  # the app's own time wins over the shipper's
    assert p.service == "orders" and p.host == "orders-5c7d-abc"
    assert p.trace_id == "4BF92F3577B34DA6A3CE929D0E0E4736" and p.span_id == "00f067aa0ba902b7"
    assert p.attributes["order_id"] == "ord_42"
    assert p.attributes["kubernetes.namespace_name"] == "shop"


def test_fluent_bit_envelope_with_plain_text_uses_the_shipper_time() -> None:
    outer = {"log": "starting worker pool\n", "stream": "stdout", "time": "2026-11-26T10:00:01Z"}
    p = parse_line(orjson.dumps(outer).decode())
    assert p.format == "text" and p.message == "starting worker pool"
    assert p.time == "2026-11-26T10:00:01Z"


def test_vector_envelope_with_logfmt_inside() -> None:
    outer = {
        "message": 'level=warn msg="slow query" duration=250ms table=orders',
        "timestamp": "2026-11-26T10:00:02Z",
        "source_type": "kubernetes_logs",
        "host": "node-7",
    }
    p = parse_line(orjson.dumps(outer).decode())
    assert p.format == "logfmt" and p.message == "slow query" and p.level == "warn"
    assert p.http["duration"] == 250.0 and p.host == "node-7"
    assert p.attributes["table"] == "orders"


def test_app_json_structlog_and_ecs_shapes() -> None:
    p = parse_line('{"event": "user signed up", "level": "info", "timestamp": 1764162000.5}')
    assert p.message == "user signed up" and p.time == 1764162000.5
    ecs = {
        "@timestamp": "2026-11-26T10:00:00Z",
        "log": {"level": "ERROR", "logger": "api"},
        "message": "request failed",
        "http": {"request": {"method": "POST"}, "response": {"status_code": 502}},
        "url": {"path": "/v1/pay"},
        "error": {"type": "TimeoutError", "stack_trace": "Traceback..."},
        "trace": {"id": "abc123abc123abc1"},
    }
    q = parse_line(orjson.dumps(ecs).decode())
    assert q.message == "request failed" and q.level == "ERROR" and q.logger == "api"
    assert q.http["method"] == "POST" and q.http["status"] == 502 and q.http["path"] == "/v1/pay"
    assert q.exception_type == "TimeoutError" and q.stack == "Traceback..."
    assert q.trace_id == "abc123abc123abc1"


def test_json_http_fields_and_bunyan_levels() -> None:
    line = (
        '{"msg":"request","level":30,"time":"2026-11-26T10:00:00Z","method":"get",'
        '"url":"https://api.example.com/v1/x?y=1","statusCode":200,"status":200,'
        '"request_time":"0.120","remote_addr":"10.0.0.7"}'
    )
    p = parse_line(line)
    assert normalise_level(p.level) == "info"
    assert p.http["path"] == "/v1/x?y=1" and p.http["duration"] == pytest.approx(120.0)
    assert p.http["remote"] == "10.0.0.7" and p.http["status"] == 200


def test_json_stack_in_message_is_split() -> None:
    line = orjson.dumps(
        {
            "level": "error",
            "message": "unhandled\nTraceback (most recent call last):\n"
            "  File \"a.py\", line 1, in f\nKeyError: 'x'",
        }
    ).decode()
    p = parse_line(line)
    assert p.message == "unhandled" and p.exception_type == "KeyError"
    assert p.stack is not None and p.stack.startswith("Traceback")


def test_broken_json_is_kept_as_text_with_a_flag() -> None:
    p = parse_line('{"level": "info", "msg": "cut in the midd')
    assert p.format == "text" and "unparsed_json" in p.flags
    assert p.message.startswith('{"level"')


def test_logfmt() -> None:
    p = parse_line(
        "ts=2026-11-26T10:00:00.5Z level=error caller=server.go:88 "
        'msg="listen failed: \\"addr in use\\"" '
        "err=bind trace_id=0af7651916cd43dd8448eb211c80319c"
    )
    assert p.format == "logfmt" and p.level == "error"
    assert p.message == 'listen failed: "addr in use"'
    assert p.trace_id == "0af7651916cd43dd8448eb211c80319c"
    assert p.attributes["caller"] == "server.go:88"


@pytest.mark.parametrize(
    ("line", "fmt", "level", "logger", "message", "time"),
    [
        ("ERROR:root:something broke", "python", "ERROR", "root", "something broke", None),
        ("WARNING:app.jobs:retrying", "python", "WARNING", "app.jobs", "retrying", None),
        (
            "2026-11-26 10:00:00,123 - app.db - ERROR - query failed",
            "python",
            "ERROR",
            "app.db",
            "query failed",
            "2026-11-26 10:00:00,123",
        ),
        (
            "2026-11-26 10:00:00,123 INFO app.web: GET / 200",
            "python",
            "INFO",
            "app.web",
            "GET / 200",
            "2026-11-26 10:00:00,123",
        ),
        (
            "[2026-11-26 10:00:00,123] ERROR in views: boom",
            "python",
            "ERROR",
            "views",
            "boom",
            "2026-11-26 10:00:00,123",
        ),
        (
            'INFO:     10.0.0.1:50000 - "GET /health HTTP/1.1" 200 OK',
            "python",
            "INFO",
            None,
            '10.0.0.1:50000 - "GET /health HTTP/1.1" 200 OK',
            None,
        ),
        (
            "2026-11-26 10:00:00.123 [main] WARN  com.acme.Cache - eviction storm",
            "logback",
            "WARN",
            "com.acme.Cache",
            "eviction storm",
            "2026-11-26 10:00:00.123",
        ),
        (
            "2026-11-26T10:00:00.123Z ERROR 4242 --- [nio-8080-exec-1] "
            "o.a.c.c.C.[.[.[/].[dispatcherServlet]    : Servlet failed",
            "spring",
            "ERROR",
            "o.a.c.c.C.[.[.[/].[dispatcherServlet]",
            "Servlet failed",
            "2026-11-26T10:00:00.123Z",
        ),
        (
            "Nov 26 10:00:00 bastion sshd[812]: Accepted publickey for deploy from 10.1.1.1",
            "syslog",
            None,
            "sshd",
            "Accepted publickey for deploy from 10.1.1.1",
            "Nov 26 10:00:00",
        ),
        ("just some words", "text", None, None, "just some words", None),
    ],
)
def test_plain_text_formats(
    line: str, fmt: str, level: str | None, logger: str | None, message: str, time: str | None
) -> None:
    p = parse_line(line)
    assert (p.format, p.level, p.logger, p.message, p.time) == (fmt, level, logger, message, time)


def test_nginx_combined_with_request_time() -> None:
    p = parse_line(
        '203.0.113.9 - - [26/Nov/2026:10:00:00 +0000] "POST /v1/payments?x=1 HTTP/1.1" 502 157 '
        '"https://shop.example.com/cart" "Mozilla/5.0 (iPhone)" 1.250'
    )
    assert p.format == "access" and p.level == "error"
    assert p.http == {
        "remote": "203.0.113.9",
        "status": 502,
        "method": "POST",
        "path": "/v1/payments?x=1",
        "user_agent": "Mozilla/5.0 (iPhone)",
        "duration": 1250.0,
    }
    assert p.attributes["referer"] == "https://shop.example.com/cart"
    assert parse_time(p.time, NOW) == datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def test_apache_common_and_combined() -> None:
    common = parse_line(
        '127.0.0.1 - frank [10/Oct/2026:13:55:36 -0700] "GET /a.gif HTTP/1.0" 200 2326'
    )
    assert common.format == "access" and common.http["status"] == 200
    assert common.attributes["user"] == "frank"
    assert parse_time(common.time, NOW) == datetime(2026, 10, 10, 20, 55, 36, tzinfo=UTC)
    combined = parse_line(
        '::1 - - [10/Oct/2026:13:55:36 +0000] "GET /x HTTP/1.1" 404 - "-" "curl/8.0"'
    )
    assert combined.level == "warning" and combined.http["user_agent"] == "curl/8.0"


JAVA = (
    "2026-11-26 10:00:00.123 [http-nio-8080-exec-3] ERROR c.a.p."
    "PaymentController - payment failed\n"
    "java.lang.IllegalStateException: card declined for order 42\n"
    "\tat com.acme.pay.PaymentController.pay(PaymentController.java:88)\n"
    "\tat org.springframework.web.servlet.FrameworkServlet.service(FrameworkServlet.java:897)\n"
    "Caused by: java.net.SocketTimeoutException: Read timed out\n"
    "\tat java.base/java.net.SocketInputStream.read(SocketInputStream.java:168)\n"
    "\t... 42 more"
)


def test_java_stack_trace_in_one_record() -> None:
    p = parse_line(JAVA)
    assert p.format == "logback" and p.message == "payment failed"
    assert p.exception_type == "java.lang.IllegalStateException"
    assert p.stack is not None and "Caused by" in p.stack


def test_bare_java_exception_is_an_error() -> None:
    p = parse_line(
        'Exception in thread "main" java.lang.NullPointerException: x is null\n'
        "\tat com.acme.Main.main(Main.java:5)"
    )
    assert p.format == "text" and p.level == "error"
    assert p.exception_type == "java.lang.NullPointerException"


def test_python_traceback() -> None:
    message, stack, exc = split_stack(
        "Unhandled error\nTraceback (most recent call last):\n"
        '  File "/app/src/svc/handler.py", line 10, in handle\n    do()\n'
        "svc.errors.PaymentDeclined: card refused"
    )
    assert message == "Unhandled error" and exc == "svc.errors.PaymentDeclined"
    assert stack is not None and stack.startswith("Traceback")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-26T10:00:00Z", datetime(2026, 11, 26, 10, tzinfo=UTC)),
        ("2026-11-26T11:00:00+01:00", datetime(2026, 11, 26, 10, tzinfo=UTC)),
        ("2026-11-26T10:00:00.123456789Z", datetime(2026, 11, 26, 10, 0, 0, 123456, tzinfo=UTC)),
        ("2026-11-26 10:00:00,250", datetime(2026, 11, 26, 10, 0, 0, 250000, tzinfo=UTC)),
        (1795687200, datetime(2026, 11, 26, 10, tzinfo=UTC)),
        (1795687200123, datetime(2026, 11, 26, 10, 0, 0, 123000, tzinfo=UTC)),
        ("1795687200000000000", datetime(2026, 11, 26, 10, tzinfo=UTC)),
        ("26/Nov/2026:11:00:00 +0100", datetime(2026, 11, 26, 10, tzinfo=UTC)),
        ("Nov 26 10:00:00", datetime(2026, 11, 26, 10, tzinfo=UTC)),
        ("yesterday", None),
        ("", None),
        (None, None),
        (True, None),
        ("0001-01-01T00:00:00Z", None),
        (42, None),
    ],
)
def test_parse_time(value: object, expected: datetime | None) -> None:
    assert parse_time(value, NOW) == expected


def test_syslog_time_in_january_belongs_to_last_year() -> None:
    assert parse_time("Dec 31 23:59:00", datetime(2027, 1, 1, 0, 5, tzinfo=UTC)) == datetime(
        2026, 12, 31, 23, 59, tzinfo=UTC
    )


@pytest.mark.parametrize(
    ("value", "level"),
    [
        ("WARN", "warning"),
        ("Err", "error"),
        ("FATAL", "critical"),
        (50, "error"),
        ("30", "info"),
        ("loud", None),
        (None, None),
    ],
)
def test_levels(value: object, level: str | None) -> None:
    assert normalise_level(value) == level


def test_durations() -> None:
    assert duration_ms("duration", "1.5s") == 1500.0
    assert duration_ms("duration", 12) == 12.0
    assert duration_ms("request_time", 0.25) == 250.0
    assert duration_ms("event.duration", 2_000_000) == 2.0
    assert duration_ms("latency", "300us") == pytest.approx(0.3)
    assert duration_ms("duration", "soon") is None


def test_bytes_to_text_flags() -> None:
    assert decode_bytes(b"hello\n", 100) == ("hello", frozenset())
    text, flags = decode_bytes(b"caf\xe9 ok", 100)
    assert text == "caf\ufffd ok" and flags == {"invalid_utf8"}
    text, flags = decode_bytes("é".encode() * 10, 5)  # cut inside a character: not "invalid"
    assert text == "éé" and flags == {"truncated"}
    text, flags = decode_bytes(b"a\x00b\x1bc", 100)
    assert text == "abc" and flags == {"control_chars"}
    text, _ = decode_bytes(b"\x1b[31mERROR\x1b[0m:app:boom", 100)
    assert text == "ERROR:app:boom"


def test_binary_detection() -> None:
    assert is_binary(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4)
    assert is_binary(b"\x1f\x8b\x08\x00" + bytes(200))
    assert not is_binary(b"plain log line")
    assert not is_binary("journal en français, ça marche".encode())
