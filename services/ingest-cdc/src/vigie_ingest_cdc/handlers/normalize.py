"""Money, currencies, countries and times as the contracts want them.

- Amounts arrive as exact decimal strings (``decimal.handling.mode=string``) and leave as an
  integer number of the currency's minor unit. PostgreSQL keeps 4 decimals; a fraction of a
  minor unit is rounded half-to-even (banker's rounding, what ledgers use).
- pycountry validates ISO 4217 and ISO 3166 codes but does not carry the minor unit, so the
  currencies whose exponent is not 2 are listed here (ISO 4217 amendment 176, 2024).
- Timestamps (timestamptz) arrive as ISO 8601 strings; dates as days since 1970-01-01.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal, InvalidOperation
from functools import lru_cache
from typing import Any

import pycountry

from ..errors import BadChange

#: ISO 4217 minor units of the currencies whose exponent is not 2
MINOR_UNITS: dict[str, int] = {
    **dict.fromkeys(
        (
            "BIF", "CLP", "DJF", "GNF", "ISK", "JPY", "KMF", "KRW", "PYG", "RWF", "UGX",
            "UYI", "VND", "VUV", "XAF", "XOF", "XPF",
        ),
        0,
    ),
    **dict.fromkeys(("BHD", "IQD", "JOD", "KWD", "LYD", "OMR", "TND"), 3),
    **dict.fromkeys(("CLF", "UYW"), 4),
}  # fmt: skip
#: ISO 4217 codes with no minor unit at all (metals, funds, test codes): not money to pay with
NOT_PAYABLE = frozenset(
    {"XAG", "XAU", "XBA", "XBB", "XBC", "XBD", "XDR", "XPD", "XPT", "XSU", "XTS", "XUA", "XXX"}
)
_EPOCH = date(1970, 1, 1)


@lru_cache(maxsize=512)
def currency(code: Any) -> str:
    """An ISO 4217 alphabetic code (``char(3)`` may come padded), or ``BadChange``."""
    if not isinstance(code, str):
        raise BadChange("bad_currency", f"currency {code!r} is not a string")
    cleaned = code.strip().upper()
    if (
        len(cleaned) != 3
        or cleaned in NOT_PAYABLE
        or pycountry.currencies.get(alpha_3=cleaned) is None
    ):
        raise BadChange("bad_currency", f"{code!r} is not an ISO 4217 currency")
    return cleaned


def exponent(code: str) -> int:
    return MINOR_UNITS.get(code, 2)


def minor_units(amount: Any, code: str, *, allow_zero: bool = True) -> int:
    """``"12.3450"`` EUR → 1235 (half-even); negative (or zero when not allowed) is refused."""
    if isinstance(amount, bool) or not isinstance(amount, str | int):
        raise BadChange("bad_amount", f"amount {amount!r} is not an exact decimal")
    try:
        value = Decimal(amount)
    except InvalidOperation:
        raise BadChange("bad_amount", f"amount {amount!r} is not a decimal") from None
    if not value.is_finite():
        raise BadChange("bad_amount", f"amount {amount!r} is not finite")
    if value < 0:
        raise BadChange("negative_amount", f"amount {amount} {code} is negative")
    if value == 0 and not allow_zero:
        raise BadChange("bad_amount", f"amount {amount} {code} must be positive")
    scaled = value.scaleb(exponent(code)).quantize(Decimal(1), rounding=ROUND_HALF_EVEN)
    minor = int(scaled)
    if minor == 0 and not allow_zero:
        raise BadChange("bad_amount", f"amount {amount} {code} rounds to zero minor units")
    return minor


@lru_cache(maxsize=512)
def country(code: Any) -> str:
    """An ISO 3166-1 alpha-2 code, or ``BadChange``."""
    if not isinstance(code, str):
        raise BadChange("bad_country", f"country {code!r} is not a string")
    cleaned = code.strip().upper()
    if len(cleaned) != 2 or pycountry.countries.get(alpha_2=cleaned) is None:
        raise BadChange("bad_country", f"{code!r} is not an ISO 3166-1 alpha-2 country")
    return cleaned


def timestamp(value: Any, what: str) -> datetime:
    """A Debezium timestamptz (ISO string; or micro/milliseconds as an int) → aware UTC."""
    if isinstance(value, str):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            raise BadChange("bad_timestamp", f"{what} {value!r} is not ISO 8601") from None
        if parsed.tzinfo is None:
            # a ``timestamp without time zone`` column: PostgreSQL stores it as written; UTC
            # is the convention of this database
            parsed = parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)
    if isinstance(value, int) and not isinstance(value, bool):
        # adaptive time precision: µs since epoch for timestamp columns
        return datetime.fromtimestamp(value / 1_000_000, UTC)
    raise BadChange("bad_timestamp", f"{what} is {value!r}")


def optional_timestamp(value: Any, what: str) -> datetime | None:
    return None if value is None else timestamp(value, what)


def from_epoch_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, UTC)


def day(value: Any, what: str) -> date:
    """A Debezium ``date`` (days since epoch) or an ISO date string → ``date``."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _EPOCH + timedelta(days=value)
    if isinstance(value, str):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise BadChange("bad_date", f"{what} is {value!r}")
