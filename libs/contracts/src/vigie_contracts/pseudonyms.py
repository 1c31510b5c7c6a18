"""Pseudonyms of personal data: one keyed function shared by every service.

A pseudonym is a *contract*: other teams, and our own services, join on it ("the same e-mail
in ingest-cdc's customers and in the logs"). So there is exactly one way to compute it:

    pseudonym = hex(HMAC-SHA256(key, f"{kind}:{normalised value}" as UTF-8))[:32]

- ``kind`` is one of :class:`PseudonymKind` (``email``, ``phone``, ``ip``...). It is part of the
  message, so the same text under two kinds never gets the same pseudonym.
- the value is normalised per kind first (:func:`normalise`), so spellings of the same thing
  (``A@B.test`` / ``a@b.test``, ``+33 6 12`` / ``+33612``, ``::ffff:1.2.3.4`` / ``1.2.3.4``)
  get the same pseudonym.
- 32 lower-case hex characters: 128 bits, collision-free at any volume we will see, and short
  enough for keys and log lines.

Same key configured, same pseudonym, whichever service computed it. Changing the key, the
normalisation or the format changes every pseudonym: it is a migration, which the golden
vector in the tests exists to make impossible by accident.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import re
from enum import StrEnum

__all__ = [
    "MIN_KEY_BYTES",
    "PSEUDONYM_HEX_CHARS",
    "PseudonymKind",
    "Pseudonymizer",
    "normalise",
]

#: shortest key accepted: below 128 bits a key can be searched for
MIN_KEY_BYTES = 16
#: length of a pseudonym, in lower-case hex characters (128 bits)
PSEUDONYM_HEX_CHARS = 32

_NOT_PHONE_DIGIT = re.compile(r"\D")
_IPV4_ZERO_PADDED = re.compile(r"^\d{1,3}(?:\.\d{1,3}){3}$")


class PseudonymKind(StrEnum):
    """What a value is; part of the pseudonym, so kinds never collide."""

    EMAIL = "email"
    PHONE = "phone"
    IP = "ip"
    NAME = "name"
    BIRTH_DATE = "birth_date"
    ACCOUNT = "account"


def _ip(text: str) -> str:
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        # "010.000.000.001": zero-padded octets, read as decimal (Python refuses them, since
        # they are ambiguous with octal; padded logs mean decimal)
        if not _IPV4_ZERO_PADDED.match(text):
            # not an address: still pseudonymised (never leaked, never an error), as text
            return text.lower()
        octets = [int(octet, 10) for octet in text.split(".")]
        if any(octet > 255 for octet in octets):
            return text.lower()
        address = ipaddress.IPv4Address(".".join(map(str, octets)))
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # a dual-stack socket reports IPv4 clients as ::ffff:a.b.c.d
        return str(address.ipv4_mapped)
    return str(address)  # compressed, lower-case: leading zeros and "::" spellings agree


def normalise(kind: PseudonymKind | str, value: str) -> str:
    """The canonical text of ``value`` as a ``kind``, which the pseudonym is computed over.

    - ``email``: stripped, lower-cased.
    - ``phone``: the digits, with a ``+`` in front if the stripped value starts with one.
    - ``ip``: ``ipaddress``'s canonical form; an IPv4-mapped IPv6 address is its IPv4 address;
      zero-padded IPv4 octets are decimal. Text that is not an address: stripped, lower-cased.
    - anything else: stripped.
    """
    kind = PseudonymKind(kind)
    text = value.strip()
    if kind is PseudonymKind.EMAIL:
        return text.lower()
    if kind is PseudonymKind.PHONE:
        digits = _NOT_PHONE_DIGIT.sub("", text)
        return "+" + digits if text.startswith("+") else digits
    if kind is PseudonymKind.IP:
        return _ip(text)
    return text


class Pseudonymizer:
    """Computes pseudonyms under one key (see the module's docstring for the format).

    >>> p = Pseudonymizer(b"0123456789abcdef")
    >>> p.pseudonym("email", " A@B.test") == p.pseudonym(PseudonymKind.EMAIL, "a@b.test")
    True
    """

    __slots__ = ("_key",)

    def __init__(self, key: bytes) -> None:
        if not isinstance(key, bytes):
            raise TypeError("the pseudonym key must be bytes")
        if len(key) < MIN_KEY_BYTES:
            # the message never shows the key: it ends up in logs
            raise ValueError(f"the pseudonym key must be at least {MIN_KEY_BYTES} bytes")
        self._key = key

    def __repr__(self) -> str:
        return "Pseudonymizer(key=<hidden>)"

    def pseudonym(self, kind: PseudonymKind | str, value: str) -> str:
        """32 lower-case hex characters standing for ``value`` as a ``kind``.

        ``ValueError`` if ``kind`` is not a :class:`PseudonymKind`.
        """
        kind = PseudonymKind(kind)
        message = f"{kind.value}:{normalise(kind, value)}".encode()
        return hmac.new(self._key, message, hashlib.sha256).hexdigest()[:PSEUDONYM_HEX_CHARS]
