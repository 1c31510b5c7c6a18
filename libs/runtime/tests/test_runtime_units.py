"""Unit tests of the runtime (no server): backoff, settings errors, headers, metrics, tracing,
the HTTP app."""

from __future__ import annotations

import asyncio
import random

import httpx
import pytest
from opentelemetry.sdk.trace import TracerProvider
from pydantic_settings import SettingsConfigDict

from vigie_runtime import (
    Backoff,
    KafkaSettings,
    Metrics,
    ObservabilitySettings,
    Poison,
    ServiceSettings,
    create_app,
    extract,
    inject,
    load_settings,
)
from vigie_runtime import headers as h
from vigie_runtime.settings import env_var_of
from vigie_runtime.testing import sample_envelope
from vigie_runtime.tracing import current_traceparent


class DemoSettings(ServiceSettings):
    model_config = SettingsConfigDict(env_prefix="VIGIE_DEMO_")
    observability: ObservabilitySettings = ObservabilitySettings(service_name="demo")


# -- backoff -------------------------------------------------------------------------------


def test_backoff_grows_exponentially_then_caps() -> None:
    b = Backoff(initial=0.1, cap=2.0, multiplier=2.0)
    assert [b.ceiling(n) for n in range(1, 8)] == [0.1, 0.2, 0.4, 0.8, 1.6, 2.0, 2.0]
    assert b.ceiling(10_000) == 2.0  # no overflow for absurd attempt numbers


def test_backoff_jitter_stays_between_half_and_full_ceiling() -> None:
    b = Backoff(initial=1.0, cap=8.0)
    rng = random.Random(7)
    draws = [b.delay(4, rng) for _ in range(500)]
    assert all(4.0 <= d <= 8.0 for d in draws)
    assert max(draws) - min(draws) > 2.0  # actually jittered, not a constant


@pytest.mark.parametrize(
    "kwargs", [{"initial": 0}, {"initial": 2, "cap": 1}, {"multiplier": 0.5}, {"max_attempts": 0}]
)
def test_backoff_rejects_nonsense(kwargs: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**kwargs)  # type: ignore[arg-type]


# -- settings ------------------------------------------------------------------------------


def test_settings_from_env_with_nested_partial_override(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VIGIE_DEMO_KAFKA__GROUP_ID", "g1")
    monkeypatch.setenv("VIGIE_DEMO_OBSERVABILITY__LOG_LEVEL", "debug")
    monkeypatch.setenv("VIGIE_DEMO_KAFKA__SASL_PASSWORD", "hunter2")
    s = DemoSettings()
    assert s.group_id == "g1"
    assert s.kafka.bootstrap_servers == "127.0.0.1:9092"  # other defaults survive
    assert s.service_name == "demo"  # the subclass default survives the partial override
    assert s.observability.log_level == "debug"
    assert "hunter2" not in repr(s)
    with pytest.raises(Exception, match="frozen"):
        s.kafka = KafkaSettings()


def test_group_id_defaults_to_service_name() -> None:
    assert DemoSettings().group_id == "demo"


def test_settings_error_names_the_env_var_and_exits(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VIGIE_DEMO_KAFKA__BATCH_MAX_RECORDS", "lots")
    with pytest.raises(SystemExit) as exited:
        load_settings(DemoSettings)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "VIGIE_DEMO_KAFKA__BATCH_MAX_RECORDS" in err
    assert "'lots'" in err
    assert err.count("\n") == 1  # one paragraph


class TokenSettings(DemoSettings):
    api_token: int = 0


def test_settings_error_never_echoes_a_secret(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VIGIE_DEMO_API_TOKEN", "s3cr3t-value")
    monkeypatch.setenv("VIGIE_DEMO_OBSERVABILITY__OTLP_ENDPOINT", "collector:4318")
    with pytest.raises(SystemExit):
        load_settings(TokenSettings)
    err = capsys.readouterr().err
    assert "VIGIE_DEMO_API_TOKEN" in err and "s3cr3t" not in err
    assert "VIGIE_DEMO_OBSERVABILITY__OTLP_ENDPOINT" in err and "collector:4318" in err


def test_cross_field_rule_is_reported() -> None:
    with pytest.raises(ValueError, match="retry_backoff_max_s"):
        KafkaSettings(retry_backoff_initial_s=5, retry_backoff_max_s=1)
    assert env_var_of(DemoSettings, ("kafka", "group_id")) == "VIGIE_DEMO_KAFKA__GROUP_ID"


# -- headers -------------------------------------------------------------------------------


def test_envelope_headers() -> None:
    env = sample_envelope(1, event_id="e-1")
    assert h.envelope_headers(env) == [
        ("vigie.event_type", b"service_heartbeat"),
        ("vigie.schema_version", b"1"),
        ("vigie.event_id", b"e-1"),
    ]


def test_dead_letter_headers_keep_the_original_and_say_why() -> None:
    original = [("traceparent", b"00-abc"), ("vigie.dlq.error", b"stale"), ("x", b"1")]
    out = h.dead_letter_headers(
        original=original,
        error=Poison("amount < 0"),
        topic="t",
        partition=2,
        offset=41,
        timestamp=1700000000000,
        service="svc",
        now_ms=1700000000999,
    )
    as_dict = dict(out)
    assert ("traceparent", b"00-abc") in out and ("x", b"1") in out
    assert as_dict["vigie.dlq.error"] == b"amount < 0"  # the stale error is replaced
    assert sum(1 for k, _ in out if k == "vigie.dlq.error") == 1
    assert as_dict["vigie.dlq.error_type"] == b"vigie_runtime.errors.Poison"
    assert (as_dict["vigie.dlq.topic"], as_dict["vigie.dlq.partition"]) == (b"t", b"2")
    assert as_dict["vigie.dlq.offset"] == b"41"
    assert as_dict["vigie.dlq.timestamp"] == b"1700000000000"
    assert as_dict["vigie.dlq.service"] == b"svc"
    assert as_dict["vigie.dlq.failed_at"] == b"1700000000999"


def test_dead_letter_error_is_truncated() -> None:
    out = dict(
        h.dead_letter_headers(
            original=[],
            error=ValueError("x" * 10_000),
            topic="t",
            partition=0,
            offset=0,
            timestamp=0,
            service="s",
        )
    )
    assert len(out["vigie.dlq.error"]) == h.MAX_ERROR_BYTES


def test_replay_headers_drop_the_failure_and_record_the_origin() -> None:
    dead = [("a", b"1"), ("vigie.dlq.error", b"e"), ("vigie.dlq.topic", b"t")]
    assert h.replay_headers(dead, "dlq.s:0:7") == [
        ("a", b"1"),
        ("vigie.dlq.replayed_from", b"dlq.s:0:7"),
    ]


# -- metrics -------------------------------------------------------------------------------


def test_metrics_count_and_observe() -> None:
    m = Metrics("svc")
    m.count_consumed("t", 3)
    m.count_consumed("t", 2)
    m.count_dead_lettered("t", "X")
    m.observe_latencies("t", [0.2, 3.0, -1.0])
    m.observe_record_latencies("t", [0.5, -2.0])
    m.set_lag("t", 0, 42)
    labels = {"service": "svc", "topic": "t"}
    assert m.value("vigie_messages_consumed_total", labels) == 5
    assert m.value("vigie_messages_dead_lettered_total", {**labels, "error_type": "X"}) == 1
    assert m.value("vigie_event_latency_seconds_count", labels) == 3
    assert m.value("vigie_event_latency_seconds_sum", labels) == pytest.approx(3.2)
    assert m.value("vigie_record_latency_seconds_count", labels) == 2
    assert m.value("vigie_record_latency_seconds_sum", labels) == pytest.approx(0.5)
    assert m.value("vigie_consumer_lag", {**labels, "partition": "0"}) == 42
    m.forget_partition("t", 0)
    m.forget_partition("t", 0)  # twice: a second revoke must not raise
    assert m.registry.get_sample_value("vigie_consumer_lag", {**labels, "partition": "0"}) is None
    Metrics("svc")  # a second instance has its own registry: no duplicate registration


# -- tracing -------------------------------------------------------------------------------


def test_inject_then_extract_keeps_trace_and_parent() -> None:
    tracer = TracerProvider().get_tracer("t")
    headers: list[tuple[str, bytes]] = [("traceparent", b"00-" + b"0" * 32 + b"-" + b"0" * 16)]
    with tracer.start_as_current_span("produce") as span:
        inject(headers)
        expected = span.get_span_context()
    assert sum(1 for k, _ in headers if k == "traceparent") == 1  # replaced, not appended
    with tracer.start_as_current_span("consume", context=extract(headers)) as child:
        assert child.get_span_context().trace_id == expected.trace_id
        assert child.parent is not None and child.parent.span_id == expected.span_id  # type: ignore[attr-defined]


def test_extract_falls_back_to_the_envelope_field() -> None:
    tracer = TracerProvider().get_tracer("t")
    with tracer.start_as_current_span("produce") as span:
        parent = current_traceparent()
        trace_id = span.get_span_context().trace_id
    assert parent is not None
    with tracer.start_as_current_span("consume", context=extract([], parent)) as child:
        assert child.get_span_context().trace_id == trace_id
    assert current_traceparent() is None  # no span: nothing to propagate


# -- http ----------------------------------------------------------------------------------


async def test_health_and_metrics_endpoints() -> None:
    metrics = Metrics("demo")
    metrics.count_consumed("t", 7)
    healthy = {"value": True}

    async def store() -> bool:
        return healthy["value"]

    async def broken() -> None:
        raise ConnectionError("refused")

    app = create_app(DemoSettings(), {"store": store}, registry=metrics.registry)
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://svc") as client:
        assert (await client.get("/health/live")).json()["status"] == "ok"
        ready = await client.get("/health/ready")
        assert ready.status_code == 200
        healthy["value"] = False
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"] == {"store": "reported not ready"}
        body = (await client.get("/metrics")).text
        assert 'vigie_messages_consumed_total{service="demo",topic="t"} 7.0' in body

    app = create_app(DemoSettings(), {"store": store, "db": broken}, check_timeout_s=0.5)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://svc"
    ) as client:
        ready = await client.get("/health/ready")
        assert ready.status_code == 503
        assert ready.json()["checks"]["db"] == "ConnectionError: refused"


async def test_hung_readiness_check_times_out() -> None:
    async def hung() -> None:
        await asyncio.sleep(60)

    app = create_app(DemoSettings(), {"hung": hung}, check_timeout_s=0.2)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://svc"
    ) as client:
        ready = await client.get("/health/ready")
    assert ready.status_code == 503
    assert "no answer within 0.2s" in ready.json()["checks"]["hung"]


# -- logging -------------------------------------------------------------------------------


def test_json_logs_carry_service_level_and_trace_ids() -> None:
    import io
    import json
    import logging

    import structlog

    from vigie_runtime import configure_logging, get_logger

    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    stream = io.StringIO()
    try:
        configure_logging(ObservabilitySettings(service_name="demo"), stream=stream)
        tracer = TracerProvider().get_tracer("t")
        with tracer.start_as_current_span("work") as span:
            get_logger("demo").info("written", rows=3)
            ctx = span.get_span_context()
        logging.getLogger("aiokafka.x").warning("from stdlib")
        get_logger("demo").debug("filtered out at info")
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        structlog.reset_defaults()
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert len(lines) == 2
    first, second = lines
    assert first["event"] == "written" and first["rows"] == 3
    assert first["service"] == "demo" and first["level"] == "info"
    assert first["trace_id"] == f"{ctx.trace_id:032x}"
    assert first["span_id"] == f"{ctx.span_id:016x}"
    assert second["event"] == "from stdlib" and second["service"] == "demo"
    assert "trace_id" not in second


def test_a_complex_value_that_does_not_parse_is_a_clear_exit(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    class WithMapping(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="VIGIE_MAPPING_", env_nested_delimiter="__")
        keys: dict[str, str] = {}

    monkeypatch.setenv("VIGIE_MAPPING_KEYS", "{not json")
    with pytest.raises(SystemExit) as exited:
        load_settings(WithMapping)
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "invalid configuration" in err and "keys" in err
