"""Errors (exception type, stable fingerprint) and security / auth / audit events."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping

from vigie_contracts.events.logs import SecurityCategory

# -- error fingerprints ----------------------------------------------------------------------

_NORMALISERS: tuple[tuple[re.Pattern[str], str], ...] = (
    (
        re.compile(r"\[REDACTED:[a-z_]+\]|\[(?:email|phone):[0-9a-f]+\]|\bip:[0-9a-f]{32}\b"),
        "<pii>",
    ),
    (re.compile(r"\"[^\"]*\"|'[^']*'|`[^`]*`"), "<str>"),
    (
        re.compile(
            r"\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b"
        ),
        "<uuid>",
    ),
    (re.compile(r"\b0x[0-9a-fA-F]+\b|\b(?=[0-9a-fA-F]*\d)[0-9a-fA-F]{8,}\b"), "<hex>"),
    (re.compile(r"\b[A-Za-z]+[-_]?\d[\w-]*\b"), "<id>"),  # ord_123, txn-9f8e, user42
    (re.compile(r"\d+(?:\.\d+)?"), "<n>"),
    (re.compile(r"\s+"), " "),
)
# frames: keep where (class / file, function), drop line numbers and memory addresses
_JAVA_FRAME = re.compile(r"^\s*at\s+([\w$.<>/]+)\(")
_PY_FRAME = re.compile(r'^\s*File "([^"]+)", line \d+, in (\S+)')
_MAX_FRAMES = 12


def normalise_message(message: str) -> str:
    text = message.split("\n", 1)[0][:512]
    for pattern, replacement in _NORMALISERS:
        text = pattern.sub(replacement, text)
    return text.strip()


def frames(stack: str) -> list[str]:
    found: list[str] = []
    for line in stack.split("\n"):
        java = _JAVA_FRAME.match(line)
        if java:
            found.append(java.group(1))
            continue
        py = _PY_FRAME.match(line)
        if py:
            path = re.sub(r"^.*?/(site-packages|dist-packages|src)/", "", py.group(1))
            found.append(f"{path}:{py.group(2)}")
    return found[:_MAX_FRAMES]


def fingerprint(service: str, exception_type: str | None, message: str, stack: str | None) -> str:
    """Same error, same fingerprint: across hosts, line numbers, ids, values in the message.

    With a stack trace the frames carry the identity (messages vary with data); without one,
    the normalised message does.
    """
    stack_frames = frames(stack) if stack else []
    parts = [service, exception_type or "", *stack_frames]
    if not stack_frames:
        parts.append(normalise_message(message))
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()[:32]


# -- security events -------------------------------------------------------------------------

_RULES: tuple[tuple[SecurityCategory, re.Pattern[str]], ...] = (
    (
        SecurityCategory.AUTH_FAILURE,
        re.compile(
            r"\b(?:log ?in|sign ?in|logon|auth\w*|password|credential\w*|mfa|2fa|otp)\b[^\n]{0,40}?"
            r"\b(?:fail\w*|invalid|incorrect|wrong|denied|rejected|refused|locked)\b"
            r"|\b(?:fail\w*|invalid|incorrect|wrong|bad)\b[^\n]{0,25}?\b"
            r"(?:log ?ins?|sign ?ins?|logon|"
            r"auth\w*|password|credentials?|token|mfa|2fa|otp)\b"
            r"|\btoo many (?:login|failed|authentication) attempts\b|\baccount locked\b",
            re.I,
        ),
    ),
    (
        SecurityCategory.PRIVILEGE_CHANGE,
        re.compile(
            r"\b(?:role|privilege|permission|admin|sudo|group membership)s?\b[^\n]{0,40}?"
            r"\b(?:grant\w*|revok\w*|chang\w*|assign\w*|added|removed|elevat\w*|escalat\w*|promot\w*)\b"
            r"|\b(?:grant\w*|revok\w*|elevat\w*|escalat\w*|promot\w*|assign\w*)\b[^\n]{0,40}?"
            r"\b(?:role|privilege|permission|admin|sudo)s?\b",
            re.I,
        ),
    ),
    (
        SecurityCategory.ACCESS_DENIED,
        re.compile(
            r"\b(?:access|permission|authori[sz]ation)\s+denied\b"
            r"|\bforbidden\b|\bnot authori[sz]ed\b"
            r"|\bunauthori[sz]ed\b|\binsufficient (?:permissions|privileges|scope)\b",
            re.I,
        ),
    ),
    (
        SecurityCategory.AUTH_SUCCESS,
        re.compile(
            r"\b(?:log ?in|sign ?in|logon|authenticat\w*|password)\b[^\n]{0,30}?"
            r"\b(?:succe\w*|ok|accepted|granted)\b"
            r"|\blogged (?:in|on)\b|\baccepted (?:password|publickey)\b"
            r"|\bsuccessful(?:ly)? (?:log ?in|sign ?in|authenticat\w*)",
            re.I,
        ),
    ),
)
_AUDIT = re.compile(r"\baudit\b", re.I)
_LOGIN_PATH = re.compile(r"/(?:log-?in|sign-?in|auth|oauth2?/token|session)s?\b", re.I)
_ACCOUNT_KEYS = (
    "account",
    "account_id",
    "user",
    "username",
    "user_id",
    "userId",
    "principal",
    "actor",
    "subject",
    "usr.id",
    "user.id",
    "user.name",
    "enduser.id",
    "customer_id",
)
_ACCOUNT_IN_TEXT = re.compile(
    r"\b(?:user(?:name)?|account|principal|for(?: invalid)?(?: user)?)"
    r"[=: ]+['\"]?(\[[a-z]+:[0-9a-f]+\]|[\w.@-]{2,64})",
    re.I,
)
_CATEGORY_KEYS = ("event.category", "category", "event_type", "event.action", "audit", "type")


def security_category(
    message: str,
    logger: str | None,
    attributes: Mapping[str, str],
    http_path: str | None,
    http_status: int | None,
) -> SecurityCategory | None:
    """What kind of security event a record is, or None. Failures are checked before successes
    ("login failed" mentions login too)."""
    for category, pattern in _RULES:
        if pattern.search(message):
            return category
    if http_path and _LOGIN_PATH.search(http_path) and http_status in (401, 403, 429):
        return SecurityCategory.AUTH_FAILURE
    if http_status == 403:
        return SecurityCategory.ACCESS_DENIED
    marks = " ".join(str(attributes.get(k, "")) for k in _CATEGORY_KEYS)
    if _AUDIT.search(logger or "") or _AUDIT.search(marks) or message.lower().startswith("audit"):
        return SecurityCategory.AUDIT
    return None


def account_of(message: str, attributes: Mapping[str, str]) -> str | None:
    for key in _ACCOUNT_KEYS:
        value = attributes.get(key)
        if value:
            return value[:256]
    match = _ACCOUNT_IN_TEXT.search(message)
    if match and match.group(1).lower() not in ("user", "the", "a", "an"):
        return match.group(1)[:256]
    return None
