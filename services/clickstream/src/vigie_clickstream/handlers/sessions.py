"""Sessions per user by event time: a session ends after ``gap`` without events.

State is one ``OpenSession`` per user with an open session (kept in Redis by the pipeline, per
Kafka partition, so a restart or a rebalance continues the sessions instead of cutting them).
``sessionize`` folds a partition's batch into that state and says which sessions closed:

- an event within ``gap`` of the open session extends it (even slightly out of order);
- an event more than ``gap`` after it closes it and opens the next one;
- an event more than ``gap`` before it belongs to a session already closed: it is counted as
  late (it is still stored with the other events) and does not reopen anything;
- after the batch, sessions whose last event is more than ``gap`` behind the partition's
  watermark (newest event time seen − allowed lateness) close.

Replays are harmless: an event at or below the offset a session already applied is skipped,
its recent event ids are remembered, and a session's id is derived from its user and first
event id, so a summary emitted twice upserts the same row.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

_NAMESPACE = uuid.UUID("1d6bbd51-5e45-4a43-9e0f-2b1b7b8cf0d4")
_PAGE_NAMES = frozenset({"page_view", "screen_view"})


@dataclass(frozen=True, slots=True)
class SessionEvent:
    """What a session needs of an event."""

    user_id: str
    event_id: str
    name: str
    at_us: int  # event time, microseconds since the epoch
    offset: int
    device_family: str | None = None


@dataclass(frozen=True, slots=True)
class OpenSession:
    session_id: str
    user_id: str
    start_us: int
    end_us: int
    events: int
    pages: int
    checkout_started: bool
    converted: bool
    failed_logins: int
    device_family: str | None
    last_offset: int
    recent_ids: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.session_id,
            "u": self.user_id,
            "s": self.start_us,
            "e": self.end_us,
            "n": self.events,
            "p": self.pages,
            "c": self.checkout_started,
            "v": self.converted,
            "f": self.failed_logins,
            "d": self.device_family,
            "o": self.last_offset,
            "r": list(self.recent_ids),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> OpenSession:
        return cls(
            session_id=data["id"],
            user_id=data["u"],
            start_us=int(data["s"]),
            end_us=int(data["e"]),
            events=int(data["n"]),
            pages=int(data["p"]),
            checkout_started=bool(data["c"]),
            converted=bool(data["v"]),
            failed_logins=int(data["f"]),
            device_family=data.get("d"),
            last_offset=int(data["o"]),
            recent_ids=tuple(data.get("r") or ()),
        )


@dataclass(slots=True)
class SessionBatch:
    """What one partition's batch did to its sessions."""

    #: the open sessions after the batch, by user (only users this batch touched)
    open: dict[str, OpenSession] = field(default_factory=dict)
    #: sessions that closed, in the order they closed
    closed: list[OpenSession] = field(default_factory=list)
    #: users whose session closed and who have no open one left (delete their state)
    gone: set[str] = field(default_factory=set)
    watermark_us: int = 0
    late: int = 0
    skipped: int = 0


def session_id_of(user_id: str, first_event_id: str) -> str:
    return str(uuid.uuid5(_NAMESPACE, f"{user_id}\x00{first_event_id}"))


def _start(ev: SessionEvent, keep_ids: int) -> OpenSession:
    return _add(
        OpenSession(
            session_id=session_id_of(ev.user_id, ev.event_id),
            user_id=ev.user_id,
            start_us=ev.at_us,
            end_us=ev.at_us,
            events=0,
            pages=0,
            checkout_started=False,
            converted=False,
            failed_logins=0,
            device_family=ev.device_family,
            last_offset=ev.offset,
        ),
        ev,
        keep_ids,
    )


def _add(s: OpenSession, ev: SessionEvent, keep_ids: int) -> OpenSession:
    recent = (*s.recent_ids, ev.event_id)[-keep_ids:] if keep_ids else ()
    return replace(
        s,
        start_us=min(s.start_us, ev.at_us),
        end_us=max(s.end_us, ev.at_us),
        events=s.events + 1,
        pages=s.pages + (ev.name in _PAGE_NAMES),
        checkout_started=s.checkout_started or ev.name == "checkout_started",
        converted=s.converted or ev.name == "purchase",
        failed_logins=s.failed_logins + (ev.name == "login_failed"),
        device_family=s.device_family or ev.device_family,
        last_offset=max(s.last_offset, ev.offset),
        recent_ids=recent,
    )


def sessionize(
    state: Mapping[str, OpenSession],
    events: Iterable[SessionEvent],
    *,
    watermark_us: int,
    gap_us: int,
    lateness_us: int,
    idle: Mapping[str, OpenSession] = {},  # noqa: B006 - read-only default
    keep_ids: int = 32,
) -> SessionBatch:
    """Fold ``events`` (one partition, in offset order) into ``state`` (the open sessions of the
    users they concern); ``idle`` are other open sessions of the partition that may now expire."""
    out = SessionBatch(open=dict(state), watermark_us=watermark_us)
    newest = None
    for ev in events:
        current = out.open.get(ev.user_id)
        if current is not None and (
            ev.offset <= current.last_offset or ev.event_id in current.recent_ids
        ):
            out.skipped += 1
            continue
        newest = ev.at_us if newest is None else max(newest, ev.at_us)
        if current is None:
            out.open[ev.user_id] = _start(ev, keep_ids)
            out.gone.discard(ev.user_id)
        elif ev.at_us > current.end_us + gap_us:
            out.closed.append(current)
            out.open[ev.user_id] = _start(ev, keep_ids)
        elif ev.at_us < current.start_us - gap_us:
            out.late += 1
            # remember the offset anyway, so a replay does not count it late twice
            out.open[ev.user_id] = replace(current, last_offset=max(current.last_offset, ev.offset))
        else:
            out.open[ev.user_id] = _add(current, ev, keep_ids)
    if newest is not None:
        out.watermark_us = max(watermark_us, newest - lateness_us)
    horizon = out.watermark_us - gap_us
    for user, session in [
        *out.open.items(),
        *((u, s) for u, s in idle.items() if u not in out.open),
    ]:
        if session.end_us < horizon:
            out.closed.append(session)
            out.open.pop(user, None)
            out.gone.add(user)
    return out


def _dt(us: int) -> datetime:
    return datetime.fromtimestamp(us / 1_000_000, UTC)


def summary_fields(session: OpenSession) -> dict[str, Any]:
    """The ``SessionSummary`` payload of a closed session."""
    return {
        "session_id": session.session_id,
        "user_id": session.user_id,
        "started_at": _dt(session.start_us),
        "ended_at": _dt(session.end_us),
        "event_count": session.events,
        "page_views": session.pages,
        "converted": session.converted,
        "checkout_abandoned": session.checkout_started and not session.converted,
        "failed_logins": session.failed_logins,
        "device_family": session.device_family,
    }
