"""The live view's layout (rich renderables from figures; no I/O)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from rich.console import Console, ConsoleOptions, Group, RenderableType, RenderResult
from rich.measure import Measurement
from rich.panel import Panel
from rich.table import Table
from rich.text import Text

from .figures import History, PipelineFigures, sparkline
from .models import DAYS, METRICS, Quality


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


QUALITY_TITLE = "model quality (prequential, per day)"
#: below a week of bars, a narrow terminal wraps the row instead
_FEWEST_BARS = 7
_UNBOUNDED = 100_000
_ROLE_STYLE = {"champion": "bold green", "challenger": "cyan"}


def _figure(value: float | None) -> str:
    return f"{'-' if value is None else f'{value:.3f}':>5}"


def quality_table(quality: Quality, bars: int = DAYS) -> Table:
    """One row per model: each metric's latest day, then a bar per day of the last ``bars``.

    A metric's bars share one scale across models, lowest to highest value shown, so rows
    compare and a drift of a few hundredths is visible (the number gives the level).
    """
    days = quality.days[-bars:]
    span = f"{days[0]} … {days[-1]}" if len(days) > 1 else (days[0] if days else "")
    table = Table(
        title=QUALITY_TITLE,
        caption=f"value and labels: the latest day · bars: a day each, {span}, lowest to highest",
        expand=True,
    )
    table.add_column("model")
    for _, title in METRICS:
        table.add_column(title, no_wrap=True)
    table.add_column("labels", justify="right")
    ranges = []
    for i in range(len(METRICS)):
        shown = [v for m in quality.models for v in m.series[i][-bars:] if v is not None]
        ranges.append((min(shown, default=0.0), max(shown, default=0.0)))
    for model in quality.models:
        name = Text(model.model)
        if model.role:
            name.append(f" {model.role}", style=_ROLE_STYLE.get(model.role, "dim"))
        cells: list[RenderableType] = [name]
        for values, latest, (low, high) in zip(model.series, model.latest, ranges, strict=True):
            cells.append(f"{_figure(latest)} {sparkline(values, bars, low=low, high=high)}")
        labels = "-" if model.labels is None else f"{model.labels:,}"
        if model.frauds is not None:
            labels += f" ({model.frauds:,} fraud)"
        cells.append(labels)
        table.add_row(*cells)
    return table


@dataclass(frozen=True)
class QualityView:
    """The quality table with as many days of bars as the width allows (a line per day is
    worth more than a wrapped row), or a line saying why there is none."""

    quality: Quality | None
    empty: str

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        if self.quality is None or self.quality.note is not None:
            note = self.empty if self.quality is None else self.quality.note
            yield Panel(Text(note or "", style="dim"), title=QUALITY_TITLE)
            return
        for bars in range(DAYS, _FEWEST_BARS - 1, -1):
            table = quality_table(self.quality, bars)
            # measured unbounded: Measurement.get clamps to the width it is given
            natural = Measurement.get(console, options.update_width(_UNBOUNDED), table)
            if natural.maximum <= options.max_width or bars == _FEWEST_BARS:
                yield table
                return


def screen(
    rows: Sequence[PipelineFigures],
    history: History,
    panels: Sequence[RenderableType],
    footer: str,
) -> Group:
    return Group(pipelines_table(rows, history), *panels, Text(footer, style="dim"))
