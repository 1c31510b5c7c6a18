"""``vigie-ingest-cdc``: run the service until SIGTERM."""

from __future__ import annotations

from vigie_runtime import load_settings, run

from .app import wire
from .settings import IngestCdcSettings


def main() -> int:
    settings = load_settings(IngestCdcSettings)
    return run(settings, wire)


if __name__ == "__main__":
    raise SystemExit(main())
