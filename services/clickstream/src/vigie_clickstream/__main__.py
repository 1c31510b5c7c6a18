"""``vigie-clickstream``: the collector, the pipeline and the query API (each can be disabled)."""

from __future__ import annotations

import sys

from vigie_runtime import load_settings, run

from .app import wire
from .settings import ClickstreamSettings


def main() -> None:
    settings = load_settings(ClickstreamSettings)
    sys.exit(run(settings, wire))


if __name__ == "__main__":
    main()
