"""``vigie-features worker`` (the faust-streaming worker) | ``vigie-features api`` (REST)."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys

from vigie_runtime import Fatal, load_settings, run_service

from .app import serve_api, worker_wiring
from .settings import FeaturesSettings


async def _worker(settings: FeaturesSettings) -> int:
    stop = asyncio.Event()
    failed: list[BaseException] = []
    try:
        await run_service(settings, worker_wiring(stop, failed), stop=stop)
    except Fatal:
        return 1
    if failed:
        # a crashed faust app leaves tasks that ignore cancellation: asyncio.run would wait for
        # them forever; exit now so Kubernetes restarts the pod
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="vigie-features", description="Online features: the stream worker or the REST API."
    )
    parser.add_argument(
        "command",
        choices=("worker", "api"),
        help="worker: events → entity states → Redis; api: reads Redis",
    )
    args = parser.parse_args(argv)
    settings = load_settings(FeaturesSettings)
    if args.command == "api":
        asyncio.run(serve_api(settings))
        return 0
    return asyncio.run(_worker(settings))


if __name__ == "__main__":
    raise SystemExit(main())
