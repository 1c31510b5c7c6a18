"""The live view's arithmetic: rates and p99 over the last interval, from two scrapes."""

from __future__ import annotations

import math

import pytest

from vigie_live.figures import (
    History,
    PipelineFigures,
    figures,
    histogram_quantile,
    parse,
    sparkline,
)


def _scrape(processed: float, buckets: dict[str, float], lag: float = 0, dead: float = 0) -> str:
    lines = [
        "# TYPE vigie_messages_processed counter",
        f'vigie_messages_processed_total{{service="s",topic="t"}} {processed}',
        "# TYPE vigie_record_latency_seconds histogram",
    ]
    for le, count in buckets.items():
        labels = f'service="s",topic="t",le="{le}"'
        lines.append(f"vigie_record_latency_seconds_bucket{{{labels}}} {count}")
    lines += [
        "# TYPE vigie_consumer_lag gauge",
        f'vigie_consumer_lag{{service="s",topic="t",partition="0"}} {lag}',
        "# TYPE vigie_messages_dead_lettered counter",
        f'vigie_messages_dead_lettered_total{{service="s",topic="t",error_type="x"}} {dead}',
    ]
    return "\n".join(lines) + "\n"


def test_quantile_interpolates_inside_its_bucket() -> None:
    # 100 observations: 50 at most 0.1 s, 40 more at most 0.5 s, 10 more at most 1 s
    cumulative = {0.1: 50.0, 0.5: 90.0, 1.0: 100.0, math.inf: 100.0}
    assert histogram_quantile(0.5, cumulative) == pytest.approx(0.1)
    assert histogram_quantile(0.7, cumulative) == pytest.approx(0.1 + 0.4 * 20 / 40)
    assert histogram_quantile(0.99, cumulative) == pytest.approx(0.5 + 0.5 * 9 / 10)


def test_quantile_of_nothing_is_none_and_of_the_overflow_is_the_last_bound() -> None:
    assert histogram_quantile(0.99, {0.1: 0.0, math.inf: 0.0}) is None
    assert histogram_quantile(0.99, {0.1: 1.0, math.inf: 100.0}) == 0.1
    with pytest.raises(ValueError):
        histogram_quantile(1.5, {0.1: 1.0})


def test_figures_describe_the_interval_not_the_process_life() -> None:
    before = parse(_scrape(1000, {"0.1": 1000, "1.0": 1000, "+Inf": 1000}))
    # 200 new records in 2 s, all slow: a whole-life p99 would still say "fast"
    now = parse(_scrape(1200, {"0.1": 1000, "1.0": 1200, "+Inf": 1200}, lag=42, dead=3))
    fig = figures("s", before, now, 2.0)
    assert fig.up and fig.events_per_s == pytest.approx(100.0)
    assert fig.p99_latency_s is not None and 0.9 < fig.p99_latency_s <= 1.0
    assert (fig.lag, fig.dead_letters) == (42, 3)


def test_an_unreachable_service_is_down_and_a_first_scrape_has_no_rate() -> None:
    assert not figures("s", None, None, 2.0).up
    first = figures("s", None, parse(_scrape(5, {"+Inf": 5}, lag=7)), 2.0)
    assert first.up and first.events_per_s == 0 and first.lag == 7


def test_sparkline_scales_to_the_largest_and_leaves_gaps() -> None:
    assert sparkline([0.0, 5.0, 10.0, None]) == "▁▅█ "
    assert sparkline([0.0, 0.0]) == "▁▁"
    history = History(size=3)
    for rate in (1.0, 2.0, 3.0, 4.0):
        up = PipelineFigures(service="s", up=True, events_per_s=rate)
        history.add(figures("s", None, None, 1.0) if rate == 2.0 else up)
    assert list(history.rates["s"]) == [None, 3.0, 4.0]

