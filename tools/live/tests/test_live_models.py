"""The models' quality over time: from /v1/models/metrics and /v1/models/status to rows."""

from __future__ import annotations

import io
from datetime import date, timedelta
from typing import Any

import httpx
import pytest
from rich.console import Console

from vigie_live.__main__ import _Metrics, _quality
from vigie_live.figures import sparkline
from vigie_live.models import MALFORMED, NO_METRICS, Quality, metrics_request, quality
from vigie_live.view import QualityView


def _doc(auc: float | None, ap: float | None, cp: float | None, n: int = 1000) -> dict[str, Any]:
    # what vigie_inference.learner.metrics_doc writes for a model and a day
    return {
        "day": "x",
        "transactions": n,
        "frauds": n // 100,
        "auc_roc": auc,
        "average_precision": ap,
        "card_precision_at_100": cp,
    }


def _day(d: date, models: dict[str, Any], labels: int = 1200) -> dict[str, Any]:
    return {"day": d.isoformat(), "labels": labels, "models": models}


STATUS = {
    "cold_start": False,
    "champion": {"model_name": "logreg", "version": "logreg@7"},
    "challengers": [
        {"model_name": "arf_steps", "version": "arf_steps@7"},
        {"model_name": "logreg_hb_steps", "version": "logreg_hb_steps@7"},
    ],
    "pinned": None,
    "registry_revision": 3,
    "checkpoint": {"checkpoint": 7, "learned": 5000, "metrics": {"day": "2018-04-02"}},
}


def _payload(n_days: int = 5) -> dict[str, Any]:
    end = date(2018, 4, 2)
    days = []
    for i in range(n_days):
        d = end - timedelta(days=n_days - 1 - i)
        # the service's configured order (arf_steps first), not the registry's champion
        days.append(
            _day(
                d,
                {
                    "arf_steps": _doc(0.70 + i / 100, 0.40 + i / 100, 0.20, n=900 + i),
                    "logreg": _doc(0.90, 0.50 + i / 100, 0.25 + i / 100, n=1000 + i),
                    "logreg_hb_steps": _doc(0.85, 0.45, 0.22, n=950 + i),
                },
            )
        )
    return {"days": days}


def test_champion_first_then_challengers_with_the_latest_values() -> None:
    q = quality(_payload(), STATUS)
    assert q.note is None
    assert q.days == tuple(f"2018-03-{d}" for d in (29, 30, 31)) + ("2018-04-01", "2018-04-02")
    assert [(m.model, m.role) for m in q.models] == [
        ("logreg", "champion"),
        ("arf_steps", "challenger"),
        ("logreg_hb_steps", "challenger"),
    ]
    champion, arf, _ = q.models
    assert champion.latest == pytest.approx((0.90, 0.54, 0.29))
    assert arf.latest == pytest.approx((0.74, 0.44, 0.20))
    assert arf.series[0] == pytest.approx((0.70, 0.71, 0.72, 0.73, 0.74))
    assert (champion.labels, champion.frauds) == (1004, 10)


def test_only_the_last_days_and_no_leading_days_without_figures() -> None:
    q = quality(_payload(40), STATUS, days=30)
    assert len(q.days) == 30 and q.days[-1] == "2018-04-02"
    assert all(len(s) == 30 for m in q.models for s in m.series)
    # a service that learned for 3 days: the 27 days before are not drawn as gaps
    young = _payload(3)
    young["days"] = [_day(date(2018, 3, 1), {}, labels=0)] * 27 + young["days"]
    assert len(quality(young, STATUS).days) == 3


def test_missing_days_and_undefined_figures_are_gaps() -> None:
    payload = _payload(4)
    del payload["days"][1]["models"]["arf_steps"]  # arf_steps scored nothing that day
    payload["days"][3]["models"]["arf_steps"]["auc_roc"] = None  # one class only: no AUC
    payload["days"][2]["models"]["logreg"]["average_precision"] = "NaN"  # not a number
    q = quality(payload, STATUS)
    arf = next(m for m in q.models if m.model == "arf_steps")
    logreg = next(m for m in q.models if m.model == "logreg")
    assert arf.series[0] == pytest.approx((0.70, None, 0.72, None))
    assert arf.latest[0] is None and arf.latest[1] == pytest.approx(0.43)
    assert logreg.series[1][2] is None
    assert sparkline(arf.series[0], low=0.70, high=0.72) == "▁ █ "


def test_a_model_out_of_the_status_comes_last_unmarked_and_no_status_keeps_the_order() -> None:
    payload = _payload(2)
    payload["days"][0]["models"]["old_kind"] = _doc(0.7, 0.3, 0.1)  # a day, then dropped
    q = quality(payload, STATUS)
    assert [m.model for m in q.models][-1] == "old_kind"
    old = q.models[-1]
    assert old.role == "" and old.latest == (None, None, None) and old.labels is None
    unknown = quality(_payload(2), None)
    assert [(m.model, m.role) for m in unknown.models] == [
        ("arf_steps", ""),
        ("logreg", ""),
        ("logreg_hb_steps", ""),
    ]


def test_labels_of_the_day_when_the_model_does_not_count_its_own() -> None:
    payload = _payload(1)
    del payload["days"][0]["models"]["logreg"]["transactions"]
    q = quality(payload, STATUS)
    assert q.models[0].labels == 1200


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        "oops",
        {"detail": "Not Found"},
        {"days": "2018-04-02"},
        {"days": [{"labels": 3}]},
        {"days": [{"day": "2018-04-02", "models": ["logreg"]}]},
        {"days": [{"day": "2018-04-02", "models": {"logreg": 0.9}}]},
    ],
)
def test_a_malformed_answer_is_a_line_not_a_crash(payload: Any) -> None:
    assert quality(payload, STATUS) == Quality(note=MALFORMED)


def test_no_metrics_yet() -> None:
    assert quality({"days": []}, STATUS).note == NO_METRICS
    no_models = {"days": [_day(date(2018, 4, 2), {}, labels=0)]}
    assert quality(no_models, STATUS).note == NO_METRICS


def test_the_request_ends_on_the_checkpoint_day_and_names_the_checkpoint() -> None:
    assert metrics_request(STATUS) == ("/v1/models/metrics?day=2018-04-02&days=30", 7)
    assert metrics_request(STATUS, days=100) == ("/v1/models/metrics?day=2018-04-02&days=62", 7)
    cold = {**STATUS, "checkpoint": None}
    assert metrics_request(cold) is None
    assert metrics_request({**STATUS, "checkpoint": {"checkpoint": 1, "metrics": {}}}) is None
    assert metrics_request(None) is None and metrics_request([1]) is None


def test_sparkline_range_from_low_to_a_shared_high() -> None:
    assert sparkline([0.90, 0.925, 0.95], low=0.90, high=0.95) == "▁▅█"
    assert sparkline([0.90, 0.95]) == "██"  # from 0: the move is invisible
    assert sparkline([0.5, 2.0], low=1.0, high=1.5) == "▁█"  # out of range: clamped
    assert sparkline([0.9, 0.9], low=0.9, high=0.9) == "▁▁"


def _render(view: QualityView, width: int) -> str:
    out = io.StringIO()
    Console(file=out, width=width, color_system=None).print(view)
    return out.getvalue()


def test_the_table_shows_every_model_with_as_many_days_as_fit() -> None:
    text = _render(QualityView(quality(_payload(30), STATUS), "inference: not running"), 130)
    assert "model quality (prequential, per day)" in text
    lines = text.splitlines()
    assert max(len(line) for line in lines) <= 130
    rows = [line for line in lines if "logreg" in line or "arf_steps" in line]
    assert [r.split()[1:3] for r in rows] == [
        ["logreg", "champion"],
        ["arf_steps", "challenger"],
        ["logreg_hb_steps", "challenger"],
    ]
    assert "0.900" in rows[0] and "0.790" in rows[0] and "1,029 (10 fraud)" in rows[0]
    # a month of bars does not fit in 130 columns beside the numbers: the latest days that do
    bars = rows[1].split()[5]  # arf_steps' AUC ROC, one bar per day, rising
    assert 7 <= len(bars) < 30 and bars[-1] == "█"
    assert f"{date(2018, 4, 2) - timedelta(days=len(bars) - 1)} … 2018-04-02" in text
    wide = _render(QualityView(quality(_payload(30), STATUS), ""), 200)
    assert "2018-03-04 … 2018-04-02" in wide


def test_the_line_instead_of_the_table() -> None:
    assert "inference: not running" in _render(QualityView(None, "inference: not running"), 80)
    assert NO_METRICS in _render(QualityView(Quality(note=NO_METRICS), "x"), 100)


async def test_the_fetch_asks_again_only_with_a_new_checkpoint() -> None:
    asked: list[str] = []
    answer: dict[str, Any] = {"code": 200}

    def handler(request: httpx.Request) -> httpx.Response:
        asked.append(str(request.url))
        return httpx.Response(answer["code"], json=_payload(3))

    targets = {"inference": "http://inference"}
    last = _Metrics()
    async with httpx.AsyncClient(transport=httpx.MockTransport(handler)) as client:
        first = await _quality(client, targets, STATUS, last)
        await _quality(client, targets, STATUS, last)
        newer = {**STATUS, "checkpoint": {"checkpoint": 8, "metrics": {"day": "2018-04-02"}}}
        await _quality(client, targets, newer, last)
        answer["code"] = 503
        down = await _quality(
            client, targets, {**STATUS, "checkpoint": {"metrics": {"day": "2018-04-03"}}}, last
        )
        stopped = await _quality(client, targets, None, last)
    assert asked == ["http://inference/v1/models/metrics?day=2018-04-02&days=30"] * 2 + [
        "http://inference/v1/models/metrics?day=2018-04-03&days=30"
    ]
    assert first.quality is not None and len(first.quality.models) == 3
    assert down.quality is None and "no answer" in down.empty
    assert stopped.quality is None and stopped.empty == "inference: not running"
