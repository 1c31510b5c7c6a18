"""``vigie-alerting``: run the alerting service until SIGTERM."""

from __future__ import annotations

import sys

from vigie_runtime import load_settings, run

from .app import wire
from .rules import RulesError, load
from .settings import AlertingSettings


def main() -> int:
    settings = load_settings(AlertingSettings)
    try:
        load(settings.rules_path)  # refuse to start on a bad file, saying why
    except RulesError as exc:
        print(f"alerting: {exc}", file=sys.stderr)
        return 2
    return run(settings, wire)


if __name__ == "__main__":
    raise SystemExit(main())
