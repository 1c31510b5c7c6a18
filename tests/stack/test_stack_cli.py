"""The stack manager: `up` is idempotent, `status` tells the truth about every server."""

from __future__ import annotations

import subprocess
import sys

import pytest

from vigie_localstack.apps import APP_NAMES, app, dev_secrets
from vigie_localstack.cli import _context
from vigie_localstack.registry import NAMES, closure
from vigie_localstack.supervisor import Supervisor


def _stack(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: S603 - our own CLI
        [sys.executable, "-m", "vigie_localstack", *args],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    )


def test_closure_starts_requirements_first() -> None:
    names = [c.name for c in closure(["connect"])]
    assert names.index("kafka") < names.index("connect")
    assert names.index("postgres") < names.index("connect")
    assert "cassandra" not in names


def test_unknown_component_is_a_clear_error() -> None:
    result = _stack("up", "mysql")
    assert result.returncode == 1
    assert "unknown component 'mysql'" in result.stderr


@pytest.mark.integration
def test_status_reports_every_server_running_and_healthy() -> None:
    result = _stack("status")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = {line.split()[0]: line.split() for line in result.stdout.splitlines()[1:]}
    assert set(NAMES) <= set(lines)
    assert set(lines) - set(NAMES) <= set(APP_NAMES)
    for name in NAMES:
        assert lines[name][1] == "RUNNING", name
        assert lines[name][4] == "ok", name


@pytest.mark.integration
def test_second_up_is_a_no_op() -> None:
    sup = Supervisor(_context())
    before = {name: (info or {}).get("pid") for name in NAMES if (info := sup.info(name))}
    result = _stack("up")
    assert result.returncode == 0, result.stderr
    after = {name: (info or {}).get("pid") for name in NAMES if (info := sup.info(name))}
    assert before == after and len(after) == len(NAMES)


def test_an_app_requires_the_servers_it_uses_and_gets_their_addresses() -> None:
    ctx = _context()
    names = [c.name for c in closure(["traffic"])]
    assert names.index("postgres") < names.index("ingest-cdc") < names.index("traffic")
    env = app("ingest-cdc").env(ctx)
    settings = ctx.settings
    kafka = f"{settings.host}:{settings.kafka_port}"
    assert env["VIGIE_INGEST_CDC_KAFKA__BOOTSTRAP_SERVERS"] == kafka
    assert env["VIGIE_INGEST_CDC_MONGO__URL"].endswith(f":{settings.mongo_port}")
    assert env["VIGIE_INGEST_CDC_OBSERVABILITY__HTTP_PORT"] == str(settings.apps_port_base + 1)
    # one pseudonym key for every service, or pseudonyms would not join across them
    key = dev_secrets(ctx)["pseudonym_key"]
    assert env["VIGIE_INGEST_CDC_PII__PSEUDONYM_KEY"] == key
    assert app("logs").env(ctx)["VIGIE_LOGS_PSEUDONYM_KEY"] == key


@pytest.mark.integration
def test_an_app_starts_healthy_under_supervision_and_stops() -> None:
    sup = Supervisor(_context())
    try:
        result = _stack("up", "logs")
        assert result.returncode == 0, result.stdout + result.stderr
        info = sup.info("logs")
        assert info is not None and info["statename"] == "RUNNING"
        assert app("logs").healthy(_context())
    finally:
        stopped = _stack("down", "logs")
    assert stopped.returncode == 0, stopped.stderr
    info = sup.info("logs")
    assert info is not None and info["statename"] == "STOPPED"
    assert not app("logs").healthy(_context())
