"""``vigie-live``: watch the running platform (Ctrl-C leaves the view, not the platform).

Scrapes every service's ``/metrics`` each interval (events/s, p99 event latency, consumer lag,
dead letters) and, where those services run, the latest alerts, the serving model and the
models' prequential quality per day.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import httpx
from rich.console import Console
from rich.live import Live

from vigie_localstack.apps import APPS
from vigie_localstack.settings import StackSettings

from .figures import History, PipelineFigures, Scrape, figures, parse
from .models import MALFORMED, NO_METRICS, Quality, metrics_request, quality
from .view import QualityView, json_panel, screen


def _alerts(payload: Any) -> Any:
    keep = ("status", "severity", "rule", "count", "summary", "last_seen")
    return [{k: a.get(k) for k in keep} for a in payload.get("alerts", [])]


def _model(payload: Any) -> Any:
    champion = payload.get("champion") or {}
    return {
        "champion": champion.get("model_name"),
        "version": champion.get("version"),
        "cold_start": payload.get("cold_start"),
        "challengers": ", ".join(c.get("model_name", "?") for c in payload.get("challengers", [])),
    }


#: (panel title, app, path, what to show of the JSON answer) beside the pipelines
PANELS: tuple[tuple[str, str, str, Callable[[Any], Any]], ...] = (
    ("latest alerts", "alerting", "/v1/alerts?limit=8", _alerts),
    ("fraud model", "inference", "/v1/models/status", _model),
)


def _targets(settings: StackSettings) -> dict[str, str]:
    base = f"http://{settings.host}"
    return {
        app.name: f"{base}:{settings.apps_port_base + app.port_offset}"
        for app in APPS
        if app.port_offset is not None
    }


async def _get(client: httpx.AsyncClient, url: str) -> httpx.Response | None:
    try:
        response = await client.get(url)
    except httpx.HTTPError:
        return None
    return response if response.status_code == 200 else None


async def _scrape(client: httpx.AsyncClient, targets: dict[str, str]) -> dict[str, Scrape | None]:
    names = list(targets)
    answers = await asyncio.gather(*(_get(client, f"{targets[n]}/metrics") for n in names))
    pairs = zip(names, answers, strict=True)
    return {n: parse(a.text) if a is not None else None for n, a in pairs}


async def _panels(
    client: httpx.AsyncClient, targets: dict[str, str], answers: dict[str, Any]
) -> list[Any]:
    """The PANELS; ``answers`` gets each path's JSON (None: no answer) for the panels after."""
    out = []
    for title, app, path, shown in PANELS:
        answer = await _get(client, targets[app] + path) if app in targets else None
        answers[path] = answer.json() if answer is not None else None
        payload = shown(answers[path]) if answer is not None else None
        out.append(json_panel(title, payload, empty=f"{app}: not running"))
    return out


@dataclass
class _Metrics:
    """The last per-day metrics answer and what it was asked with: the service computes 30 days
    from its prediction log on each call, and they only move with a checkpoint."""

    asked: tuple[str, int | None] | None = None
    payload: Any = None


async def _quality(
    client: httpx.AsyncClient, targets: dict[str, str], status: Any, last: _Metrics
) -> QualityView:
    empty = "inference: not running"
    if "inference" not in targets or status is None:
        return QualityView(None, empty)
    asked = metrics_request(status)
    if asked is None:
        return QualityView(Quality(note=NO_METRICS), empty)
    # no checkpoint number to compare: ask every time rather than show stale figures
    if asked != last.asked or asked[1] is None:
        answer = await _get(client, targets["inference"] + asked[0])
        if answer is None:
            return QualityView(None, "inference: no answer from /v1/models/metrics")
        try:
            last.payload = answer.json()
        except ValueError:
            return QualityView(Quality(note=MALFORMED), empty)
        last.asked = asked
    # roles are read anew: a promotion changes the champion without a checkpoint
    return QualityView(quality(last.payload, status), empty)


async def watch(interval: float, rounds: int | None, console: Console) -> None:
    targets = _targets(StackSettings())
    history = History()
    last_metrics = _Metrics()
    before: dict[str, Scrape | None] = {}
    t_before = time.monotonic()
    done = 0
    async with httpx.AsyncClient(timeout=interval) as client:
        with Live(console=console, auto_refresh=False, transient=False) as live:
            while rounds is None or done < rounds:
                now = await _scrape(client, targets)
                t_now = time.monotonic()
                rows: list[PipelineFigures] = []
                for name in targets:
                    fig = figures(name, before.get(name), now[name], t_now - t_before)
                    history.add(fig)
                    rows.append(fig)
                before, t_before = now, t_now
                footer = f"every {interval:g} s · Ctrl-C to leave the view"
                answers: dict[str, Any] = {}
                panels = await _panels(client, targets, answers)
                status = answers.get("/v1/models/status")
                panels.append(await _quality(client, targets, status, last_metrics))
                live.update(screen(rows, history, panels, footer))
                live.refresh()
                done += 1
                if rounds is None or done < rounds:
                    await asyncio.sleep(interval)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vigie-live", description=__doc__)
    parser.add_argument("--interval", type=float, default=2.0, help="seconds between scrapes")
    parser.add_argument("--rounds", type=int, default=None, help="stop after N (default: never)")
    args = parser.parse_args(argv)
    if args.interval <= 0:
        parser.error("--interval must be positive")
    with contextlib.suppress(KeyboardInterrupt):
        # a pipe or CI log has no width to ask: wide enough for every column
        console = Console() if sys.stdout.isatty() else Console(width=130)
        asyncio.run(watch(args.interval, args.rounds, console))
        console.print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
