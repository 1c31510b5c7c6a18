"""Secrets and PII out of log text before anything is stored or published.

Secrets (bearer tokens, API keys, passwords in URLs and key=value / JSON, PEM private keys,
JWTs) and card numbers become ``[REDACTED:<kind>]``. E-mails, phone numbers and IP addresses
are *pseudonymised* instead (``[email:<pseudonym>]``, ``[phone:<pseudonym>]``, ``ip:<pseudonym>``,
the pseudonym being the shared one of ``vigie_contracts.pseudonyms``): the same address gives the
same pseudonym, so an SRE can still follow one client through the logs without ever seeing it,
join it with the same IP in the clickstream or e-mail in the payments events, and nobody without
the key can reverse it.

One alternation regex scans the text once; the callback decides per match (a Luhn check for
cards, ``ipaddress`` for IPv6 candidates, digit counts for phones) and counts what it replaced.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from vigie_contracts.pseudonyms import Pseudonymizer, PseudonymKind

#: JSON / logfmt keys whose value is a secret whatever it looks like
SENSITIVE_KEY = re.compile(
    r"(?i)^[a-z0-9_.-]*?(?:password|passwd|pwd|passphrase|secret|token|api[_-]?key|apikey"
    r"|access[_-]?key|private[_-]?key|client[_-]?secret|credentials?|authorization|cookie"
    r"|session[_-]?id)s?$"
)

_KEYWORDS = (
    r"password|passwd|pwd|passphrase|secret|token|api[_-]?key|apikey|access[_-]?key"
    r"|private[_-]?key|client[_-]?secret|credentials?|authorization|session[_-]?id"
)

_PATTERNS: tuple[tuple[str, str], ...] = (
    (
        "private_key",
        r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----.*?(?:-----END [A-Z0-9 ]*PRIVATE KEY-----|\Z)",
    ),
    ("bearer", r"\b(?P<scheme>[Bb]earer|[Bb]asic|[Tt]oken)\s+(?P<cred>[A-Za-z0-9._~+/=-]{8,})"),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{4,}\.eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
    (
        "url_password",
        r"\b(?P<scheme_url>[a-zA-Z][a-zA-Z0-9+.-]*://)(?P<user>[^\s:/@\"']+):(?P<pw>[^\s@/\"']+)@",
    ),
    (
        "api_key",
        r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"
        r"|\bgh[pousr]_[A-Za-z0-9]{30,}\b"
        r"|\bgithub_pat_[A-Za-z0-9_]{22,}\b"
        r"|\b(?:sk|rk|pk)_(?:live|test)_[0-9A-Za-z]{10,}\b"
        r"|\bxox[abposr]-[0-9A-Za-z-]{10,}\b"
        r"|\bAIza[0-9A-Za-z_-]{35}\b"
        r"|\bglpat-[0-9A-Za-z_-]{20,}\b",
    ),
    (
        "secret",
        # key=value, key: value, "key": "value" (the key itself stays, for context)
        r"(?P<kv_key>\b(?i:[a-z0-9_.-]*?(?:" + _KEYWORDS + r")s?))"
        r"(?P<kv_sep>[\"']?\s*[:=]\s*)"
        r"(?![Bb]earer\s|[Bb]asic\s|[Tt]oken\s)"  # "Authorization: Bearer x": the bearer rule's
        r"(?P<kv_val>\"[^\"]*\"|'[^']*'|[^\s\"',;&}\]]+)",
    ),
    ("card", r"(?<![\d-])[2-6](?:[ -]?\d){12,18}(?![\d-])"),
    ("email", r"\b[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b"),
    (
        "ipv4",
        r"(?<![\d.])(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}"
        r"(?![\d.]*\d)",
    ),
    (
        "ipv6",
        r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}"
        r"(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9A-Fa-f]{0,4})(?![\w:]|\.\d)",
    ),
    (
        "phone",
        r"(?<![\w+])\+[1-9]\d{7,14}\b"  # E.164
        r"|(?<![\w+])\+[1-9]\d{0,2}(?:[ .-]\(?\d{1,4}\)?){2,5}(?!\d)"  # +44 20 7946 0958
        r"|(?<![\w(])\(\d{3}\)\s?\d{3}[ .-]\d{4}(?!\d)"  # (555) 123-4567
        r"|(?<![\w.-])\d{3}[.-]\d{3}[.-]\d{4}(?![\w.-])"  # 555-123-4567
        r"|(?<![\w.])0[1-9](?:[ .]\d{2}){4}(?![\w.])",  # 06 12 34 56 78
    ),
)

_PATTERN_OF = dict(_PATTERNS)
_DIGIT = re.compile(r"\d")
_API_PREFIX = re.compile(
    r"AKIA|ASIA|gh[pousr]_|github_pat_|[spr]k_(?:live|test)_|xox[abposr]-|AIza|glpat-"
)
_SECRET_WORD = re.compile("(?i:" + _KEYWORDS + ")")


def _kinds_in(text: str) -> frozenset[str]:
    """The kinds worth scanning for: cheap substring tests first, so the alternation (which
    tries every pattern at every position) only runs with the patterns that can match."""
    kinds: list[str] = []
    if "PRIVATE KEY" in text:
        kinds.append("private_key")
    if "earer" in text or "asic " in text or "oken " in text:
        kinds.append("bearer")
    if "eyJ" in text:
        kinds.append("jwt")
    has_at = "@" in text
    if has_at and "://" in text:
        kinds.append("url_password")
    if _API_PREFIX.search(text):
        kinds.append("api_key")
    if ("=" in text or ":" in text) and _SECRET_WORD.search(text):
        kinds.append("secret")
    if _DIGIT.search(text):
        kinds.extend(("card", "ipv4", "phone"))
    if has_at:
        kinds.append("email")
    if text.count(":") >= 2:
        kinds.append("ipv6")
    return frozenset(kinds)


@functools.lru_cache(maxsize=256)
def _scanner(kinds: frozenset[str]) -> re.Pattern[str]:
    return re.compile(
        "|".join(f"(?P<{kind}>{_PATTERN_OF[kind]})" for kind, _ in _PATTERNS if kind in kinds),
        re.DOTALL,
    )


MARKER = "[REDACTED:{}]"
#: kinds that are pseudonymised (same input, same output) rather than removed
PSEUDONYMISED = frozenset({"email", "phone", "ipv4", "ipv6"})
#: the shared pseudonym kind of each pseudonymised match kind
_PSEUDONYM_KIND = {
    "email": PseudonymKind.EMAIL,
    "phone": PseudonymKind.PHONE,
    "ipv4": PseudonymKind.IP,
    "ipv6": PseudonymKind.IP,
}


def luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


@dataclass
class Redactor:
    """Holds the pseudonymisation key; ``redact`` is pure given it."""

    key: bytes
    _pseudonyms: Pseudonymizer = field(init=False, repr=False)
    _cache: dict[str, str] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self._pseudonyms = Pseudonymizer(self.key)  # refuses a key under 16 bytes

    def pseudonym(self, kind: str, value: str) -> str:
        """``<label>:<pseudonym>`` (label ``email``, ``phone`` or ``ip``), the pseudonym being
        the shared one, so it equals what the other services compute for the same value."""
        shared_kind = _PSEUDONYM_KIND[kind]
        cache_key = shared_kind + "\0" + value
        found = self._cache.get(cache_key)
        if found is None:
            found = f"{shared_kind.value}:{self._pseudonyms.pseudonym(shared_kind, value)}"
            if len(self._cache) < 100_000:
                self._cache[cache_key] = found
        return found

    def redact(self, text: str, counts: Counter[str] | None = None) -> str:
        """``text`` without secrets or PII in clear; adds what it replaced to ``counts``."""
        if not text:
            return text
        tally = counts if counts is not None else Counter()
        kinds = _kinds_in(text)
        if not kinds:
            return text
        return _scanner(kinds).sub(self._replacer(tally), text)

    def _replacer(self, counts: Counter[str]) -> Callable[[re.Match[str]], str]:
        def replace(match: re.Match[str]) -> str:
            kind = match.lastgroup or ""
            # lastgroup is the innermost named group that matched last: find the outer kind
            if kind not in _PATTERN_OF:
                kind = next(
                    k for k in match.groupdict() if k in _PATTERN_OF and match.group(k) is not None
                )
            text = match.group(kind)
            if kind == "card":
                digits = re.sub(r"[ -]", "", text)
                if not (13 <= len(digits) <= 19 and luhn(digits)):
                    return text
            elif kind == "ipv6":
                try:
                    ipaddress.IPv6Address(text)
                except ValueError:
                    return text
            elif kind == "phone":
                if not 8 <= sum(c.isdigit() for c in text) <= 15:
                    return text
            counts[kind] += 1
            if kind in PSEUDONYMISED:
                pseudo = self.pseudonym(kind, text)
                return pseudo if kind in ("ipv4", "ipv6") else f"[{pseudo}]"
            if kind == "bearer":
                return f"{match.group('scheme')} {MARKER.format('bearer')}"
            if kind == "url_password":
                return f"{match.group('scheme_url')}{match.group('user')}:{MARKER.format(kind)}@"
            if kind == "secret":
                value = match.group("kv_val")
                if value.startswith("[REDACTED:") or value.strip("\"'").startswith("[REDACTED:"):
                    counts[kind] -= 1  # already replaced by an earlier pass
                    return text
                quote = value[0] if value[:1] in ("'", '"') else ""
                head = match.group("kv_key") + match.group("kv_sep")
                return f"{head}{quote}{MARKER.format(kind)}{quote}"
            return MARKER.format(kind)

        return replace

    def redact_ip(self, value: str, counts: Counter[str]) -> str:
        """An address field (``remote_addr``): its pseudonym, or the text redacted otherwise."""
        try:
            address = ipaddress.ip_address(value.strip())
        except ValueError:
            return self.redact(value, counts)
        kind = "ipv4" if address.version == 4 else "ipv6"
        counts[kind] += 1
        return self.pseudonym(kind, str(address))
