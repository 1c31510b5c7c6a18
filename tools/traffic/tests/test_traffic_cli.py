"""The command line: options reach the simulator, and a bad size is a clear error before any I/O."""

from __future__ import annotations

import pytest

from vigie_traffic.__main__ import main, parse_args


def test_defaults_are_the_handbook_scale() -> None:
    args = parse_args([])
    assert (args.customers, args.terminals, args.days, args.seed) == (5_000, 10_000, 183, 0)
    assert args.rate == 100.0 and args.max_transactions is None
    args = parse_args(["--rate", "50", "--days", "3", "--max-transactions", "10", "--unlimited"])
    assert (args.rate, args.days, args.max_transactions, args.unlimited) == (50.0, 3, 10, True)


def test_a_bad_size_fails_before_connecting(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--customers", "0"]) == 2
    assert "at least 1" in capsys.readouterr().err
