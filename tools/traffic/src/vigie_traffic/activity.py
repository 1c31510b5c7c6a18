"""What the simulated customers and the company's services do besides paying (pure, seeded).

App sessions of the customers (logins, failed logins, page views, carts, purchases, abandons) for
the clickstream collector, and the log lines of three payment services (JSON, logfmt and plain
text, with errors and authentication failures) for ``logs.raw``. Session times follow the
payments' simulated clock (the newest transaction time), so a customer's sessions and payments
share one timeline; log lines carry the wall clock, like real operational logs.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import numpy as np

PAGES = ("/", "/catalogue", "/product/{}", "/search?q={}", "/account", "/offers")
SERVICES = ("payments-api", "auth-service", "settlement-batch")
ERRORS = (
    ("TimeoutError", "upstream acquirer did not answer within 2000 ms"),
    ("ValueError", "invalid currency code 'XYZ' for merchant {}"),
    ("ConnectionResetError", "connection reset by peer while calling ledger"),
)


@dataclass(frozen=True, slots=True)
class ClickEvent:
    """One event as an SDK posts it to the collector (``POST /v1/batch``)."""

    event_id: str
    user_id: str
    platform: str
    name: str
    occurred_at: datetime
    page_url: str | None = None

    def json(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "event_id": self.event_id,
            "user_id": self.user_id,
            "platform": self.platform,
            "name": self.name,
            "occurred_at": self.occurred_at.isoformat(),
        }
        if self.page_url is not None:
            body["page_url"] = self.page_url
        return body


def _uuid(rng: np.random.Generator) -> str:
    return str(uuid.UUID(bytes=rng.bytes(16), version=4))


def session(customer_id: str, start: datetime, rng: np.random.Generator) -> list[ClickEvent]:
    """One visit: some failed logins now and then, a login, browsing, maybe a purchase."""
    platform = str(rng.choice(("web", "ios", "android"), p=(0.5, 0.3, 0.2)))
    names: list[str] = []
    if rng.random() < 0.1:
        names += ["login_failed"] * int(rng.integers(1, 4))
    names.append("login")
    names += ["page_view"] * int(rng.integers(1, 7))
    if rng.random() < 0.35:
        names += ["add_to_cart", "checkout_started"]
        if rng.random() < 0.7:
            names.append("purchase")
    if rng.random() < 0.3:
        names.append("logout")
    events, at = [], start
    for name in names:
        page = None
        if name == "page_view":
            page = PAGES[int(rng.integers(len(PAGES)))].format(int(rng.integers(1, 500)))
        events.append(ClickEvent(_uuid(rng), customer_id, platform, name, at, page))
        at += timedelta(seconds=float(rng.uniform(3, 90)))
    return events


def log_line(now: datetime, customers: list[str], rng: np.random.Generator) -> tuple[str, bytes]:
    """(service, raw line): mostly info, some errors, and authentication failures, whose bursts on
    one account are what the security rules look for."""
    service = SERVICES[int(rng.integers(len(SERVICES)))]
    account = customers[int(rng.integers(len(customers)))] if customers else "unknown"
    draw = float(rng.random())
    ts = now.isoformat()
    if service == "payments-api":
        record: dict[str, Any] = {"ts": ts, "level": "info", "service": service}
        if draw < 0.03:
            exc, msg = ERRORS[int(rng.integers(len(ERRORS)))]
            record |= {"level": "error", "error.type": exc, "msg": msg.format(account)}
        else:
            ms = round(float(rng.gamma(2.0, 40.0)), 1)
            record |= {"msg": "payment authorised", "customer_id": account, "duration_ms": ms}
        return service, json.dumps(record).encode()
    if service == "auth-service":
        if draw < 0.08:
            line = f'ts={ts} level=warn msg="login failed: invalid password" user={account}'
        else:
            line = f'ts={ts} level=info msg="login succeeded" user={account}'
        return service, line.encode()
    level = "ERROR" if draw < 0.02 else "INFO"
    text = "settlement file rejected by bank" if level == "ERROR" else "settlement batch closed"
    batch = int(rng.integers(1_000_000))
    return service, f"{ts} {level} [settlement-batch] {text} batch={batch}".encode()
