"""The stack manager: `up` is idempotent, `status` tells the truth about every server."""

from __future__ import annotations

import subprocess
import sys

import pytest

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
    assert set(lines) == set(NAMES)
    for name, fields in lines.items():
        assert fields[1] == "RUNNING", name
        assert fields[4] == "ok", name


@pytest.mark.integration
def test_second_up_is_a_no_op() -> None:
    sup = Supervisor(_context())
    before = {name: (info or {}).get("pid") for name in NAMES if (info := sup.info(name))}
    result = _stack("up")
    assert result.returncode == 0, result.stderr
    after = {name: (info or {}).get("pid") for name in NAMES if (info := sup.info(name))}
    assert before == after and len(after) == len(NAMES)
