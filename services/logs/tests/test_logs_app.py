"""How the service classifies failures, and its settings."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from vigie_logs import app
from vigie_logs.app import classify_error
from vigie_logs.handlers import Redactor, pipeline
from vigie_logs.settings import LogsSettings
from vigie_runtime import ErrorKind, Fatal, Message, Poison, Retryable
from vigie_stores import StoreConflict, StoreRejected, StoreUnavailable


@pytest.mark.parametrize(
    ("error", "kind"),
    [
        (StoreUnavailable("timeout", store="cassandra"), ErrorKind.RETRY),
        (StoreConflict("dup", store="cassandra"), ErrorKind.POISON),
        (StoreRejected("cannot bind ('x',): bad", store="cassandra"), ErrorKind.POISON),
        (StoreRejected("unconfigured table logs", store="cassandra"), ErrorKind.FATAL),
        (Retryable("x"), ErrorKind.RETRY),
        (Poison("x"), ErrorKind.POISON),
        (Fatal("x"), ErrorKind.FATAL),
        (RuntimeError("bug"), ErrorKind.FATAL),
    ],
)
def test_classify(error: BaseException, kind: ErrorKind) -> None:
    assert classify_error(error) is kind


def test_settings_need_a_pseudonym_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VIGIE_LOGS_PSEUDONYM_KEY", raising=False)
    with pytest.raises(ValidationError, match="pseudonym_key"):
        LogsSettings()
    monkeypatch.setenv("VIGIE_LOGS_PSEUDONYM_KEY", "k" * 32)
    monkeypatch.setenv("VIGIE_LOGS_KAFKA__BATCH_MAX_RECORDS", "2000")
    monkeypatch.setenv("VIGIE_LOGS_CASSANDRA__CONTACT_POINTS", '["cassandra.svc"]')
    settings = LogsSettings()
    assert settings.service_name == "logs" and settings.input_topic == "logs.raw"
    assert settings.security_topic == "logs.security" and settings.keyspace == "vigie"
    assert settings.kafka.batch_max_records == 2000
    assert settings.cassandra.contact_points == ("cassandra.svc",)
    assert "k" * 32 not in repr(settings)


class _Store:
    def __init__(self) -> None:
        self.records: list[Any] = []

    async def write(self, records: Any) -> None:
        self.records.extend(records)


class _Producer:
    def __init__(self) -> None:
        self.sent: list[tuple[str, Any, Any]] = []

    async def send(self, topic: str, envelope: Any, *, key: Any) -> None:
        self.sent.append((topic, envelope, key))


class _DeadLetters:
    def __init__(self) -> None:
        self.failures: list[tuple[Any, BaseException]] = []

    async def publish(self, failures: Any) -> None:
        self.failures.extend(failures)


def _message(offset: int, value: bytes, key: bytes | None = b"auth") -> Message[bytes]:
    return Message("logs.raw", 0, offset, 1795687200000, key, value, (), value)


async def test_handler_writes_publishes_and_dead_letters_only_what_it_cannot_process(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    real = pipeline.process

    def flaky(raw: bytes, *args: Any, **kwargs: Any) -> Any:
        if raw == b"boom":
            raise IndexError("parser bug")
        return real(raw, *args, **kwargs)

    monkeypatch.setattr(app, "process", flaky)
    store, producer, dead = _Store(), _Producer(), _DeadLetters()
    handler = app.LogsHandler(
        settings=LogsSettings(pseudonym_key="k" * 32),  # type: ignore[arg-type]  # str → SecretStr
        redactor=Redactor(b"k" * 32),
        store=store,  # type: ignore[arg-type]  # a fake with the same method
        lake=None,
        producer=producer,  # type: ignore[arg-type]
        dead_letters=dead,  # type: ignore[arg-type]
    )
    await handler(
        [
            _message(1, b'level=info msg="login failed for user=u-1"'),
            _message(2, b"boom"),
            _message(3, b"level=info msg=ok", key=None),
        ]
    )
    assert [r.source for r in store.records] == ["logs.raw:0:1", "logs.raw:0:3"]
    assert [m.offset for m, _ in dead.failures] == [2]
    assert "IndexError" in str(dead.failures[0][1])
    ((topic, envelope, key),) = producer.sent
    assert topic == "logs.security" and key == "u-1"
    assert envelope.payload.category.value == "auth_failure"
