"""Clickstream: what users do in the apps and on the web. Keyed by ``user_id``."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import ClassVar

from pydantic import Field

from .base import COUNTRY_PATTERN, Event


class Platform(StrEnum):
    WEB = "web"
    IOS = "ios"
    ANDROID = "android"


class ClickName(StrEnum):
    PAGE_VIEW = "page_view"
    SCREEN_VIEW = "screen_view"
    CLICK = "click"
    SEARCH = "search"
    CONTENT_VIEW = "content_view"
    ADD_TO_CART = "add_to_cart"
    CHECKOUT_STARTED = "checkout_started"
    PURCHASE = "purchase"
    LOGIN = "login"
    LOGIN_FAILED = "login_failed"
    LOGOUT = "logout"


class ClickstreamEvent(Event):
    """One user action. The collector fills the raw fields; the pipeline adds the enriched ones."""

    EVENT_TYPE: ClassVar[str] = "clickstream_event"

    user_id: str = Field(min_length=1, max_length=128)
    anonymous_id: str | None = None
    app_id: str = Field(min_length=1)
    platform: Platform
    name: ClickName
    page_url: str | None = Field(default=None, max_length=4096)
    referrer: str | None = Field(default=None, max_length=4096)
    user_agent: str | None = Field(default=None, max_length=1024)
    ip_pseudonym: str | None = None
    properties: dict[str, str] = Field(default_factory=dict)
    occurred_at: datetime
    # enrichment, set by services/clickstream
    device_family: str | None = None
    browser_family: str | None = None
    os_family: str | None = None
    country_code: str | None = Field(default=None, pattern=COUNTRY_PATTERN)


class SessionSummary(Event):
    """A user's session closed after inactivity: what features and fraud scoring need of it."""

    EVENT_TYPE: ClassVar[str] = "session_summary"

    session_id: str
    user_id: str
    started_at: datetime
    ended_at: datetime
    event_count: int = Field(ge=1)
    page_views: int = Field(ge=0)
    converted: bool
    checkout_abandoned: bool
    failed_logins: int = Field(ge=0)
    device_family: str | None = None
