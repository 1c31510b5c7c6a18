"""Settings from the environment: the PII keys are required, nested values merge with defaults."""

from __future__ import annotations

import pytest

from vigie_ingest_cdc.settings import IngestCdcSettings
from vigie_runtime import load_settings

P = "VIGIE_INGEST_CDC_"


def test_missing_pii_keys_stop_the_service_with_a_clear_error(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for name in ("PII__CARD_TOKEN_KEY", "PII__PSEUDONYM_KEY"):
        monkeypatch.delenv(P + name, raising=False)
    with pytest.raises(SystemExit) as info:
        load_settings(IngestCdcSettings)
    assert info.value.code == 2
    assert "VIGIE_INGEST_CDC_PII" in capsys.readouterr().err


def test_environment_overrides_merge_with_defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(P + "PII__CARD_TOKEN_KEY", "c" * 20)
    monkeypatch.setenv(P + "PII__PSEUDONYM_KEY", "p" * 20)
    monkeypatch.setenv(P + "MONGO__DATABASE", "mirrors")
    monkeypatch.setenv(P + "KAFKA__GROUP_ID", "cdc-1")
    monkeypatch.setenv(P + "MIRROR_WRITE_MODE", "per_document")
    settings = IngestCdcSettings()  # type: ignore[call-arg]  # pii comes from the environment
    assert settings.mongo.database == "mirrors" and settings.mongo.app_name == "ingest-cdc"
    assert settings.group_id == "cdc-1" and settings.service_name == "ingest-cdc"
    assert settings.topics[0] == "cdc.public.customers" and len(settings.topics) == 7
    assert settings.mirror_write_mode == "per_document"
    assert "c" * 20 not in repr(settings)


def test_short_keys_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(P + "PII__CARD_TOKEN_KEY", "short")
    monkeypatch.setenv(P + "PII__PSEUDONYM_KEY", "p" * 20)
    with pytest.raises(ValueError, match="card_token_key"):
        IngestCdcSettings()  # type: ignore[call-arg]  # pii comes from the environment
