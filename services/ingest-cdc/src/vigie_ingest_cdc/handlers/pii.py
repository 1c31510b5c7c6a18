"""Card numbers and personal data replaced before anything leaves the service.

- A card number (PAN) becomes ``card_token`` (HMAC-SHA256 under the card key: the same card always
  gets the same token, nobody without the key can test a guess), ``card_bin`` (first 8 digits of a
  16-19 digit PAN, first 6 otherwise, as the schemes assign them since 2022) and ``card_last4``.
- E-mails, phones, IPs, names and birth dates become ``<column>_pseudonym``: the shared pseudonym
  of ``vigie_contracts.pseudonyms`` (keyed HMAC of the normalised value, per kind), so joins on
  "same e-mail" or "same IP" work here and across services (the logs, the clickstream).
- ``scrub`` removes anything that looks like a PAN or an e-mail from bytes that could not be
  parsed, before they go to the dead-letter topic.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable
from datetime import date, timedelta
from typing import Any

from vigie_contracts.pseudonyms import Pseudonymizer as SharedPseudonymizer
from vigie_contracts.pseudonyms import PseudonymKind

from ..errors import BadChange
from .changes import Change, Row

PAN_COLUMN = "pan"
_NON_DIGITS = re.compile(r"[\s-]")
_PAN_LIKE = re.compile(rb"(?<![0-9])(?:[0-9][ -]?){12,18}[0-9](?![0-9])")
_EMAIL_LIKE = re.compile(rb"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}")
_EPOCH = date(1970, 1, 1)

#: the pseudonym kind of each OLTP column (a column named after a kind is that kind)
COLUMN_KINDS: dict[str, PseudonymKind] = {
    "ip_address": PseudonymKind.IP,
    "full_name": PseudonymKind.NAME,
    "date_of_birth": PseudonymKind.BIRTH_DATE,
    **{kind.value: kind for kind in PseudonymKind},
}


def kind_of(column: str) -> PseudonymKind:
    """The shared pseudonym kind of a pseudonymised column; ``ValueError`` if it has none."""
    try:
        return COLUMN_KINDS[column]
    except KeyError:
        known = ", ".join(sorted(COLUMN_KINDS))
        raise ValueError(f"no pseudonym kind for column {column!r} (known: {known})") from None


class Pseudonymizer:
    def __init__(self, card_key: bytes, pseudonym_key: bytes, columns: Iterable[str] = ()) -> None:
        if card_key == pseudonym_key:
            # a pseudonym of a number that is also a PAN would then equal its card token
            raise ValueError("the card token key and the pseudonym key must differ")
        self._card_key = card_key
        self._pseudonyms = SharedPseudonymizer(pseudonym_key)
        self.columns = frozenset(columns)
        # a configured column without a kind is a configuration error: refuse it at start-up
        self._kinds = {column: kind_of(column) for column in self.columns}

    def card(self, pan: Any) -> tuple[str, str, str]:
        """(token, BIN, last four) of a PAN; ``BadChange`` if it is not one."""
        digits = _NON_DIGITS.sub("", pan) if isinstance(pan, str) else ""
        if not digits.isdigit() or not 12 <= len(digits) <= 19:
            # the message says nothing of the value: it goes to logs and the DLQ
            raise BadChange("bad_pan", "card number is not 12 to 19 digits")
        token = hmac.new(self._card_key, digits.encode(), hashlib.sha256).hexdigest()
        bin_length = 8 if len(digits) >= 16 else 6
        return token, digits[:bin_length], digits[-4:]

    def pseudonym(self, column: str, value: Any) -> str | None:
        """The shared pseudonym of ``value`` as the kind of ``column`` (``None`` stays ``None``)."""
        if value is None:
            return None
        kind = self._kinds.get(column) or kind_of(column)
        if (
            kind is PseudonymKind.BIRTH_DATE
            and isinstance(value, int)
            and not isinstance(value, bool)
        ):
            # Debezium sends a ``date`` as days since the epoch: pseudonymise the ISO date, as
            # any other service holding "1990-05-17" would
            value = (_EPOCH + timedelta(days=value)).isoformat()
        return self._pseudonyms.pseudonym(kind, str(value))

    def row(self, row: Row | None) -> Row | None:
        """The row with its PAN tokenised and its personal columns pseudonymised."""
        if row is None:
            return None
        out: Row = {}
        for column, value in row.items():
            if column == PAN_COLUMN:
                if value is None:
                    out.update(card_token=None, card_bin=None, card_last4=None)
                else:
                    token, bin_, last4 = self.card(value)
                    out.update(card_token=token, card_bin=bin_, card_last4=last4)
            elif column in self.columns:
                out[f"{column}_pseudonym"] = self.pseudonym(column, value)
            else:
                out[column] = value
        return out

    def change(self, change: Change) -> Change:
        """The same change with both images redacted (what the lake, mirrors and events see)."""
        return Change(
            table=change.table,
            op=change.op,
            before=self.row(change.before),
            after=self.row(change.after),
            lsn=change.lsn,
            tx_id=change.tx_id,
            source_ts_ms=change.source_ts_ms,
            ts_ms=change.ts_ms,
            snapshot=change.snapshot,
            source=change.source,
        )

    def redact_rows_quietly(self, change: Change) -> Change:
        """Like ``change``, but a value that cannot be tokenised is dropped, not refused: for
        dead letters, which must never carry the clear value they failed on."""
        return Change(
            table=change.table,
            op=change.op,
            before=self._quiet(change.before),
            after=self._quiet(change.after),
            lsn=change.lsn,
            tx_id=change.tx_id,
            source_ts_ms=change.source_ts_ms,
            ts_ms=change.ts_ms,
            snapshot=change.snapshot,
            source=change.source,
        )

    def _quiet(self, row: Row | None) -> Row | None:
        if row is None:
            return None
        try:
            return self.row(row)
        except BadChange:
            return self.row(
                {
                    k: ("[redacted]" if k == PAN_COLUMN else v)
                    for k, v in row.items()
                    if k != PAN_COLUMN
                }
            )


def scrub(raw: bytes) -> bytes:
    """Bytes with PAN-like digit runs and e-mail addresses masked (for unparseable input)."""
    return _EMAIL_LIKE.sub(b"[email]", _PAN_LIKE.sub(b"[pan]", raw))
