"""The pure parts: event checks (held against the contract model), sessions, the rate limit,
and the fast Avro path round trip."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from pydantic import ValidationError

from vigie_clickstream.adapters.codec import click_decoder, decode_record, encode_click
from vigie_clickstream.errors import InvalidEvent
from vigie_clickstream.handlers import (
    OpenSession,
    SessionEvent,
    check_limits,
    click_from_record,
    click_row,
    sessionize,
    summary_fields,
)
from vigie_clickstream.handlers.ratelimit import TokenBucket
from vigie_clickstream.settings import ValidationLimits
from vigie_contracts import Envelope, decode, encode
from vigie_contracts.events import ClickstreamEvent

NOW = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
LIMITS = ValidationLimits()
MIN_US = 60_000_000


def payload(**changes: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "user_id": "u1",
        "app_id": "shop-web",
        "platform": "web",
        "name": "page_view",
        "occurred_at": NOW - timedelta(seconds=5),
        "properties": {"sku": "A-1"},
        "page_url": "https://shop.example/p/1",
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def envelope_record(**changes: Any) -> dict[str, Any]:
    return {
        "event_id": "e-1",
        "event_type": "clickstream_event",
        "event_time": NOW - timedelta(seconds=5),
        "producer": "sdk",
        "schema_version": 1,
        "traceparent": None,
        "tracestate": None,
        "payload": payload(**changes),
    }


# the fast path must accept and refuse what the contract model does
CONTRACT_CASES = [
    {},
    {"user_id": ...},
    {"user_id": ""},
    {"user_id": "x" * 129},
    {"app_id": ""},
    {"platform": "tv"},
    {"name": "teleport"},
    {"name": "purchase"},
    {"page_url": "h" * 4097},
    {"user_agent": "a" * 1025},
    {"country_code": "fr"},
    {"country_code": "FR"},
    {"properties": {"a": 1}},
]


@pytest.mark.parametrize("changes", CONTRACT_CASES)
def test_fast_validation_agrees_with_the_contract_model(changes: dict[str, Any]) -> None:
    try:
        ClickstreamEvent.model_validate(payload(**changes))
        contract_ok = True
    except ValidationError:
        contract_ok = False
    try:
        click_from_record(envelope_record(**changes), now=NOW, limits=LIMITS)
        fast_ok = True
    except InvalidEvent:
        fast_ok = False
    assert fast_ok == contract_ok


def test_reasons_name_the_field() -> None:
    with pytest.raises(InvalidEvent) as caught:
        click_from_record(envelope_record(user_id=..., name="teleport"), now=NOW, limits=LIMITS)
    assert any(r.startswith("user_id: missing") for r in caught.value.reasons)
    assert any(r.startswith("name:") for r in caught.value.reasons)


def test_limits_refuse_far_future_and_oversized_properties() -> None:
    assert check_limits(NOW + timedelta(minutes=4), {}, NOW, LIMITS) == []
    future = check_limits(NOW + timedelta(minutes=6), {}, NOW, LIMITS)
    assert future and "future" in future[0]
    big = check_limits(NOW, {"k": "v" * 5000}, NOW, LIMITS)
    assert big and "bytes" in big[0]
    many = check_limits(NOW, {str(i): "" for i in range(65)}, NOW, LIMITS)
    assert many and "entries" in many[0]
    with pytest.raises(InvalidEvent, match="future"):
        click_from_record(
            envelope_record(occurred_at=NOW + timedelta(hours=1)), now=NOW, limits=LIMITS
        )


def test_row_is_partitioned_by_user_and_utc_day() -> None:
    click = click_from_record(
        envelope_record(occurred_at=datetime(2026, 3, 1, 23, 30, tzinfo=UTC)),
        now=NOW + timedelta(days=1),
        limits=LIMITS,
    )
    row = click_row(click, NOW)
    assert row[:4] == ("u1", datetime(2026, 3, 1).date(), click.occurred_at, "e-1")


def test_fast_codec_round_trips_through_the_contract() -> None:
    model = ClickstreamEvent.model_validate(payload(user_agent="Mozilla/5.0"))
    env = Envelope.wrap(model, producer="sdk", event_time=model.occurred_at, event_id="e-9")
    click = click_decoder(LIMITS, lambda: NOW)(encode(env))
    assert (click.event_id, click.user_id, click.properties) == ("e-9", "u1", {"sku": "A-1"})
    enriched = click.enriched(device_family="Other", browser_family="Chrome", os_family="Mac OS X")
    again = decode(encode_click(enriched, "clickstream"))  # the contract reads what we write
    assert isinstance(again.payload, ClickstreamEvent)
    assert again.payload.browser_family == "Chrome"
    assert again.event_id == "e-9"
    assert decode_record(encode_click(enriched, "clickstream"))["producer"] == "clickstream"


def ev(
    user: str, minute: int, name: str = "page_view", offset: int = 0, eid: str = ""
) -> SessionEvent:
    at = int(NOW.timestamp() * 1_000_000) + minute * MIN_US
    return SessionEvent(user, eid or f"{user}-{minute}-{name}", name, at, offset)


def fold(events: list[SessionEvent], state: dict[str, OpenSession] | None = None, wm: int = 0):  # type: ignore[no-untyped-def]
    return sessionize(
        state or {}, events, watermark_us=wm, gap_us=30 * MIN_US, lateness_us=2 * MIN_US
    )


def test_checkout_without_purchase_is_an_abandon_and_closes_on_the_watermark() -> None:
    events = [
        ev("a", 0, offset=0),
        ev("a", 2, "add_to_cart", 1),
        ev("a", 3, "checkout_started", 2),
        ev("b", 0, offset=3),
        ev("b", 1, "checkout_started", 4),
        ev("b", 2, "purchase", 5),
        ev("c", 40, offset=6),  # moves the watermark to 38 min: a and b idle since 3 min
    ]
    out = fold(events)
    closed = {s.user_id: summary_fields(s) for s in out.closed}
    assert set(closed) == {"a", "b"}
    assert closed["a"]["checkout_abandoned"] and not closed["a"]["converted"]
    assert closed["b"]["converted"] and not closed["b"]["checkout_abandoned"]
    assert closed["a"]["event_count"] == 3 and closed["a"]["page_views"] == 1
    assert set(out.open) == {"c"} and out.gone == {"a", "b"}


def test_gap_splits_sessions_and_replays_are_skipped() -> None:
    first = fold([ev("a", 0, offset=0), ev("a", 10, "login_failed", 1)])
    assert not first.closed and first.open["a"].failed_logins == 1
    # a replay of the same offsets changes nothing; a new event 31 min later splits
    second = fold(
        [ev("a", 0, offset=0), ev("a", 10, "login_failed", 1), ev("a", 41, offset=2)],
        first.open,
        first.watermark_us,
    )
    assert second.skipped == 2
    assert [s.events for s in second.closed] == [2]
    assert second.open["a"].events == 1
    assert second.open["a"].session_id != first.open["a"].session_id


def test_duplicate_event_id_at_a_new_offset_is_not_counted_twice() -> None:
    out = fold([ev("a", 0, offset=0, eid="x"), ev("a", 1, offset=1, eid="x")])
    assert out.open["a"].events == 1 and out.skipped == 1


def test_late_event_is_counted_not_sessionised() -> None:
    state = fold([ev("a", 60, offset=0)]).open
    out = fold([ev("a", 10, offset=1)], state)
    assert out.late == 1 and out.open["a"].events == 1 and not out.closed


def test_idle_sessions_of_other_users_expire() -> None:
    idle = fold([ev("z", 0, offset=0)]).open
    out = sessionize(
        {},
        [ev("c", 50, offset=1)],
        watermark_us=0,
        gap_us=30 * MIN_US,
        lateness_us=0,
        idle=idle,
    )
    assert [s.user_id for s in out.closed] == ["z"] and "z" in out.gone


def test_session_id_is_deterministic_and_state_round_trips() -> None:
    a = fold([ev("a", 0, offset=0)]).open["a"]
    b = fold([ev("a", 0, offset=0)]).open["a"]
    assert a.session_id == b.session_id
    assert OpenSession.from_json(a.to_json()) == a


def test_token_bucket() -> None:
    bucket = TokenBucket.full(rate=100, burst=200, now=0.0)
    assert bucket.take(150, 0.0) == 0
    assert bucket.take(100, 0.0) == pytest.approx(0.5)  # 50 left, 50 missing at 100/s
    assert bucket.take(100, 0.5) == 0
