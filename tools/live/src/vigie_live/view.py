"""The live view's layout (rich renderables from figures; no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from rich.console import Group, RenderableType
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .figures import History, PipelineFigures, sparkline


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:,.0f} ms"


def pipelines_table(rows: Sequence[PipelineFigures], history: History) -> Table:
    table = Table(title="pipelines (last interval)", expand=True)
    table.add_column("service")
    table.add_column("state")
    table.add_column("events/s", justify="right")
    table.add_column("events/s over time")
    table.add_column("p99 latency", justify="right")
    table.add_column("p99 over time")
    table.add_column("lag", justify="right")
    table.add_column("dead letters", justify="right")
    for fig in rows:
        state = Text("up", style="green") if fig.up else Text("down", style="bold red")
        dead = Text(f"{fig.dead_letters:,.0f}", style="red" if fig.dead_letters else "")
        table.add_row(
            fig.service,
            state,
            f"{fig.events_per_s:,.1f}",
            sparkline(history.rates.get(fig.service, ())),
            _ms(fig.p99_latency_s),
            sparkline(history.p99s.get(fig.service, ())),
            f"{fig.lag:,.0f}",
            dead,
        )
    return table


def json_panel(title: str, payload: Any | None, *, empty: str) -> Panel:
    """A small panel of what a service's REST API answered (alerts, model metrics)."""
    if payload is None:
        return Panel(Text(empty, style="dim"), title=title)
    if not payload:
        return Panel(Text("none", style="dim"), title=title)
    if isinstance(payload, Mapping):
        payload = [payload]
    table = Table(expand=True, show_header=False, box=None)
    for item in list(payload)[:8]:
        if isinstance(item, Mapping):
            table.add_row(
                "  ".join(f"{k}={v}" for k, v in item.items() if not isinstance(v, dict | list))
            )
        else:
            table.add_row(str(item))
    return Panel(table, title=title)


def screen(
    rows: Sequence[PipelineFigures],
    history: History,
    panels: Sequence[RenderableType],
    footer: str,
) -> Group:
    return Group(pipelines_table(rows, history), *panels, Text(footer, style="dim"))
