"""Enrichment: device / browser / OS families from the user agent, country from the IP.

User agents go through ua-parser (uap-core's maintained rules) behind an LRU cache: a site's
traffic has a few thousand distinct agents, and a cache hit costs a dict lookup where a parse
costs tens of microseconds to milliseconds. The country needs the clear IP, so it is looked up
by the collector before pseudonymisation, and only when a MaxMind-format database is configured.
"""

from __future__ import annotations

import ipaddress
from functools import lru_cache
from pathlib import Path
from types import TracebackType
from typing import Any, NamedTuple, Self

import maxminddb
import ua_parser


class Families(NamedTuple):
    device: str | None
    browser: str | None
    os: str | None


_NONE = Families(None, None, None)


def _family(value: str | None) -> str | None:
    # uap-core says "Other" when no rule matched: that is "unknown", not a family
    return None if value in (None, "", "Other") else value


class UserAgents:
    def __init__(self, cache_size: int) -> None:
        self._parse = lru_cache(maxsize=cache_size)(self._parse_uncached)

    @staticmethod
    def _parse_uncached(user_agent: str) -> Families:
        result = ua_parser.parse(user_agent)
        return Families(
            device=_family(result.device.family) if result.device else None,
            browser=_family(result.user_agent.family) if result.user_agent else None,
            os=_family(result.os.family) if result.os else None,
        )

    def families(self, user_agent: str | None) -> Families:
        if not user_agent:
            return _NONE
        return self._parse(user_agent)

    def cache_info(self) -> Any:
        return self._parse.cache_info()


class Countries:
    """ISO country of an IP from a MaxMind-format database (GeoLite2-Country, DB-IP lite...)."""

    def __init__(self, path: Path | None) -> None:
        self._reader: Any = maxminddb.open_database(str(path)) if path is not None else None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    @property
    def configured(self) -> bool:
        return self._reader is not None

    def country(self, ip: str | None) -> str | None:
        if self._reader is None or not ip:
            return None
        try:
            found = self._reader.get(ipaddress.ip_address(ip))
        except ValueError:
            return None  # not an IP: nothing to say about it
        if not isinstance(found, dict):
            return None
        country = found.get("country") or found.get("registered_country") or {}
        code = country.get("iso_code") if isinstance(country, dict) else None
        return code if isinstance(code, str) and len(code) == 2 else None

    def close(self) -> None:
        if self._reader is not None:
            self._reader.close()
            self._reader = None
