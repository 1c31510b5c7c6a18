"""Log lines → ``Parsed``: JSON (shipper envelopes and app JSON), logfmt, and plain text.

Plain text covers what services actually print: Python ``logging`` formats, logback / Spring
Boot lines, nginx / Apache access logs, and Java or Python stack traces spread over several
lines of one record. Every function here is pure.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from .record import (
    FLAG_CONTROL_CHARS,
    FLAG_INVALID_UTF8,
    FLAG_TRUNCATED,
    FLAG_UNPARSED_JSON,
    Parsed,
)

# -- bytes → text ----------------------------------------------------------------------------

_TEXT_BYTES = bytes(range(32, 256)) + b"\t\n\r"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def is_binary(raw: bytes) -> bool:
    """Mostly non-text bytes (an image, a compressed blob): not a log line."""
    sample = raw[:4096]
    if not sample:
        return False
    # C-speed counts: this runs on every record, before anything else
    control = len(sample.translate(None, _TEXT_BYTES))
    if control > len(sample) * 0.30 or (b"\x00" in sample and control > len(sample) // 16):
        return True
    if sample.isascii():
        return False
    decoded = sample.decode("utf-8", errors="replace")
    return decoded.count("\ufffd") > len(decoded) * 0.3


def decode_bytes(raw: bytes, max_bytes: int) -> tuple[str, frozenset[str]]:
    """UTF-8 text of at most ``max_bytes``; flags say what had to change."""
    flags: set[str] = set()
    if len(raw) > max_bytes:
        raw = raw[:max_bytes]
        flags.add(FLAG_TRUNCATED)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        # a cut in the middle of a multi-byte character is the truncation, not bad input
        if FLAG_TRUNCATED in flags and exc.start >= len(raw) - 3:
            text = raw[: exc.start].decode("utf-8", errors="replace")
        else:
            text = raw.decode("utf-8", errors="replace")
        if "\ufffd" in text:
            flags.add(FLAG_INVALID_UTF8)
    if _CONTROL.search(text):
        # colour codes of a terminal logger go whole, not leaving "[31m" behind
        text = _CONTROL.sub("", _ANSI.sub("", text))
        flags.add(FLAG_CONTROL_CHARS)
    return text.rstrip("\r\n"), frozenset(flags)


# -- levels and times ------------------------------------------------------------------------

_LEVEL_NAMES = {
    "trace": "trace",
    "finest": "trace",
    "finer": "trace",
    "debug": "debug",
    "dbug": "debug",
    "fine": "debug",
    "config": "debug",
    "info": "info",
    "information": "info",
    "informational": "info",
    "notice": "notice",
    "warn": "warning",
    "warning": "warning",
    "wrn": "warning",
    "error": "error",
    "err": "error",
    "eror": "error",
    "severe": "error",
    "crit": "critical",
    "critical": "critical",
    "fatal": "critical",
    "panic": "critical",
    "alert": "critical",
    "emerg": "critical",
    "emergency": "critical",
}
# bunyan / pino numeric levels
_NUMERIC_LEVELS = {10: "trace", 20: "debug", 30: "info", 40: "warning", 50: "error", 60: "critical"}


def normalise_level(value: Any) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _NUMERIC_LEVELS.get(int(value))
    text = str(value).strip().lower()
    if text.isdigit():
        return _NUMERIC_LEVELS.get(int(text))
    return _LEVEL_NAMES.get(text)


_MONTHS = {
    m: i
    for i, m in enumerate(
        ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1
    )
}
# 26/Nov/2026:13:21:24 +0000 (nginx / Apache)
_CLF_TIME = re.compile(
    r"^(\d{1,2})/([A-Za-z]{3})/(\d{4}):(\d{2}):(\d{2}):(\d{2})(?:\s*([+-]\d{4}))?$"
)
# Nov 26 13:21:24 (syslog, no year)
_SYSLOG_TIME = re.compile(r"^([A-Za-z]{3})\s+(\d{1,2})\s+(\d{2}):(\d{2}):(\d{2})$")


def parse_time(value: Any, now: datetime) -> datetime | None:
    """A timestamp as logs write it → an aware UTC datetime; None when it cannot be read.

    Naive times are taken as UTC (services in vigie log in UTC; a shipper adds the zone when
    they do not). Epoch numbers in s, ms, µs or ns are told apart by magnitude.
    """
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return _from_epoch(float(value))
    text = str(value).strip()
    if not text:
        return None
    if re.fullmatch(r"\d{9,19}(?:\.\d+)?", text):
        return _from_epoch(float(text))
    iso = (
        text.replace(",", ".", 1)
        if re.match(r"^\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d,", text)
        else text
    )
    if iso.endswith(("Z", "z")):
        iso = iso[:-1] + "+00:00"
    # more than 6 fractional digits (ns, as Go and Fluent Bit write) → µs
    iso = re.sub(r"(\.\d{6})\d+", r"\1", iso)
    parsed: datetime | None
    try:
        parsed = datetime.fromisoformat(iso)
    except ValueError:
        parsed = _other_formats(text, now)
    if parsed is None:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    result = parsed.astimezone(UTC)
    if not 1990 <= result.year <= 2200:
        return None
    return result


def _from_epoch(number: float) -> datetime | None:
    for scale in (1.0, 1e3, 1e6, 1e9):
        seconds = number / scale
        if 6e8 <= seconds <= 7.3e9:  # 1989 … 2200
            return datetime.fromtimestamp(seconds, UTC)
    return None


def _other_formats(text: str, now: datetime) -> datetime | None:
    match = _CLF_TIME.match(text)
    if match:
        day, mon, year, hh, mm, ss, offset = match.groups()
        month = _MONTHS.get(mon.lower())
        if month is None:
            return None
        try:
            naive = datetime(int(year), month, int(day), int(hh), int(mm), int(ss))
        except ValueError:
            return None
        delta = timedelta(0)
        if offset:
            sign = 1 if offset[0] == "+" else -1
            delta = sign * timedelta(hours=int(offset[1:3]), minutes=int(offset[3:5]))
        return (naive - delta).replace(tzinfo=UTC)
    match = _SYSLOG_TIME.match(text)
    if match:
        mon, day, hh, mm, ss = match.groups()
        month = _MONTHS.get(mon.lower())
        if month is None:
            return None
        try:
            stamp = datetime(now.year, month, int(day), int(hh), int(mm), int(ss), tzinfo=UTC)
        except ValueError:
            return None
        # a December line read in January belongs to last year
        return stamp.replace(year=now.year - 1) if stamp - now > timedelta(days=2) else stamp
    return None


# -- stack traces ----------------------------------------------------------------------------

_JAVA_EXC = re.compile(
    r"^(?:Exception in thread \"[^\"]*\" )?(?P<type>(?:[a-zA-Z_$][\w$]*\.)+[A-Z][\w$]*"
    r"(?:Exception|Error|Throwable|Failure))(?::\s?(?P<msg>.*))?$"
)
_JAVA_FRAME = re.compile(r"^\s+at\s+\S+\(.*\)\s*$|^\s+\.\.\. \d+ (?:more|common frames omitted)")
_PY_TB = "Traceback (most recent call last):"
_PY_EXC = re.compile(
    r"^(?P<type>[A-Za-z_][\w.]*(?:Error|Exception|Exit|Interrupt|Warning|Fault|Timeout)|[A-Za-z_][\w]*\.[A-Za-z_][\w.]*):?\s?(?P<msg>.*)$"
)
_PY_GENERIC_EXC = re.compile(r"^(?P<type>[A-Za-z_][\w.]*)(?::\s?(?P<msg>.*))?$")


def split_stack(text: str) -> tuple[str, str | None, str | None]:
    """(message, stack trace, exception type) of a multi-line record."""
    if "\n" not in text:
        match = _JAVA_EXC.match(text.strip())
        return text, None, match.group("type") if match else None
    lines = text.split("\n")
    # Python: "Traceback (most recent call last):" … the last non-indented line is the error
    for index, line in enumerate(lines):
        if line.strip() == _PY_TB:
            message = "\n".join(lines[:index]).strip() or lines[-1].strip()
            stack = "\n".join(lines[index:])
            exc_type = None
            for tail in reversed(lines[index + 1 :]):
                if tail and not tail[0].isspace():
                    match = _PY_GENERIC_EXC.match(tail.strip())
                    if match:
                        exc_type = match.group("type")
                    break
            return message, stack, exc_type
    # Java: an exception line followed by "\tat ..." frames
    for index, line in enumerate(lines):
        match = _JAVA_EXC.match(line.strip())
        if match and any(_JAVA_FRAME.match(x) for x in lines[index + 1 : index + 4]):
            message = "\n".join(lines[:index]).strip() or line.strip()
            return message, "\n".join(lines[index:]), match.group("type")
    if any(_JAVA_FRAME.match(x) for x in lines[1:]):
        return lines[0], "\n".join(lines[1:]), None
    return text, None, None


# -- JSON ------------------------------------------------------------------------------------

# where shippers and logging libraries put each field (first found wins)
_MESSAGE_KEYS = ("message", "msg", "log", "text", "event", "short_message")
_TIME_KEYS = ("time", "timestamp", "@timestamp", "ts", "datetime", "date", "asctime", "t")
_LEVEL_KEYS = ("level", "severity", "levelname", "log.level", "lvl", "loglevel", "status_level")
_LOGGER_KEYS = ("logger", "logger_name", "name", "log.logger", "loggerName", "category")
_SERVICE_KEYS = ("service", "service_name", "service.name", "app", "application")
_HOST_KEYS = ("host", "hostname", "host.name", "pod", "pod_name", "instance")
_TRACE_KEYS = ("trace_id", "traceId", "trace.id", "traceid", "otelTraceID", "dd.trace_id")
_SPAN_KEYS = ("span_id", "spanId", "span.id", "spanid", "otelSpanID", "dd.span_id")
_STACK_KEYS = ("stack_trace", "stacktrace", "stack", "exc_info", "exception", "error.stack_trace")
_EXC_TYPE_KEYS = ("exception_type", "exc_type", "error.type", "error_type", "exception.type")
_HTTP_KEYS = {
    "method": ("method", "http_method", "request_method", "http.method", "http.request.method"),
    "path": (
        "path",
        "url",
        "uri",
        "request_uri",
        "http.path",
        "url.path",
        "http.url",
        "http.target",
    ),
    "status": (
        "status",
        "status_code",
        "statusCode",
        "http_status",
        "http.status",
        "http.status_code",
        "http.response.status_code",
        "response_status",
    ),
    "duration": (
        "duration_ms",
        "duration",
        "latency",
        "latency_ms",
        "elapsed_ms",
        "response_time",
        "request_time",
        "took",
        "http.duration_ms",
        "event.duration",
    ),
    "remote": (
        "remote_addr",
        "remote_ip",
        "client_ip",
        "clientip",
        "ip",
        "source.ip",
        "client.address",
        "http.client_ip",
        "x_forwarded_for",
    ),
    "user_agent": ("user_agent", "http_user_agent", "user_agent.original", "useragent", "ua"),
}
_REQUEST = re.compile(r"^(?P<method>[A-Z]{3,10}) (?P<path>\S+)(?: HTTP/[\d.]+)?$")


def _flatten(
    value: dict[str, Any], prefix: str = "", out: dict[str, Any] | None = None
) -> dict[str, Any]:
    found: dict[str, Any] = {} if out is None else out
    for key, item in value.items():
        name = f"{prefix}{key}"
        if isinstance(item, dict) and item:
            _flatten(item, name + ".", found)
        else:
            found[name] = item
    return found


def _take(flat: dict[str, Any], keys: tuple[str, ...]) -> Any:
    for key in keys:
        if key in flat and flat[key] not in (None, ""):
            return flat.pop(key)
    return None


def _stack_text(value: Any) -> str | None:
    if value is None or value is False or value is True:
        return None
    if isinstance(value, list):
        return "\n".join(str(v) for v in value)
    return str(value)


def parse_json(obj: dict[str, Any]) -> Parsed:
    """An app JSON log or a shipper envelope (Fluent Bit ``log`` / Vector ``message``)."""
    flat = _flatten(obj)
    shipper = any(k.startswith(("kubernetes.", "docker.", "source_type", "stream")) for k in flat)
    inner_text = flat.get("log") if isinstance(flat.get("log"), str) else None
    if inner_text is None and shipper and isinstance(flat.get("message"), str):
        inner_text = flat["message"]
    if inner_text is not None:
        # the shipper's envelope around the application's own line: parse the line, then add
        # what the shipper knows (its time only when the line has none)
        flat.pop("log", None) if "log" in flat else flat.pop("message", None)
        inner = parse_line(inner_text.rstrip("\n"))
        return _merge_shipper(inner, flat)
    return _from_flat(flat, "json")


def _merge_shipper(inner: Parsed, flat: dict[str, Any]) -> Parsed:
    meta = _from_flat(flat, inner.format, message="")
    attributes = {**meta.attributes, **inner.attributes}
    return Parsed(
        format=inner.format,
        message=inner.message,
        time=inner.time if inner.time is not None else meta.time,
        level=inner.level or meta.level,
        logger=inner.logger or meta.logger,
        service=inner.service or meta.service,
        host=inner.host or meta.host,
        trace_id=inner.trace_id or meta.trace_id,
        span_id=inner.span_id or meta.span_id,
        http={**meta.http, **inner.http},
        attributes=attributes,
        stack=inner.stack,
        exception_type=inner.exception_type,
        flags=inner.flags | meta.flags,
    )


def _from_flat(flat: dict[str, Any], fmt: str, message: str | None = None) -> Parsed:
    text = message if message is not None else _take(flat, _MESSAGE_KEYS)
    time = _take(flat, _TIME_KEYS)
    level = _take(flat, _LEVEL_KEYS)
    logger = _take(flat, _LOGGER_KEYS)
    service = _take(flat, _SERVICE_KEYS)
    host = _take(flat, _HOST_KEYS)
    # kubernetes metadata as shippers add it
    service = service or _take(
        flat,
        (
            "kubernetes.labels.app.kubernetes.io/name",
            "kubernetes.labels.app",
            "kubernetes.container_name",
        ),
    )
    host = host or _take(flat, ("kubernetes.pod_name", "kubernetes.host"))
    trace_id = _take(flat, _TRACE_KEYS)
    span_id = _take(flat, _SPAN_KEYS)
    stack = _stack_text(_take(flat, _STACK_KEYS))
    exc_type = _take(flat, _EXC_TYPE_KEYS)
    error_message = _take(flat, ("error.message", "error", "err"))
    http: dict[str, Any] = {}
    for name, keys in _HTTP_KEYS.items():
        key = next((k for k in keys if flat.get(k) not in (None, "")), None)
        if key is None:
            continue
        value = flat.pop(key)
        if name == "duration":
            value = duration_ms(key, value)
            if value is None:
                continue
        http[name] = value
    request = _take(flat, ("request",))
    if isinstance(request, str):
        match = _REQUEST.match(request)
        if match:
            http.setdefault("method", match.group("method"))
            http.setdefault("path", match.group("path"))
        else:
            flat["request"] = request
    if isinstance(http.get("path"), str) and "://" in http["path"]:
        http["path"] = re.sub(r"^[a-zA-Z][\w+.-]*://[^/]*", "", http["path"]) or "/"
    text_str = (
        "" if text is None else (text if isinstance(text, str) else orjson.dumps(text).decode())
    )
    if error_message is not None:
        err_text = (
            error_message
            if isinstance(error_message, str)
            else orjson.dumps(error_message).decode()
        )
        if not text_str:
            text_str = err_text
        else:
            flat["error.message"] = err_text
    if stack is None and "\n" in text_str:
        text_str, stack, found_type = split_stack(text_str)
        exc_type = exc_type or found_type
    elif stack is not None and exc_type is None:
        _, _, exc_type = split_stack(stack if "\n" in stack else stack)
    return Parsed(
        format=fmt,
        message=text_str,
        time=time if isinstance(time, str | int | float) else None,
        level=None if level is None else str(level),
        logger=None if logger is None else str(logger),
        service=None if service is None else str(service),
        host=None if host is None else str(host),
        trace_id=None if trace_id is None else str(trace_id),
        span_id=None if span_id is None else str(span_id),
        http=http,
        attributes=flat,
        stack=stack,
        exception_type=None if exc_type is None else str(exc_type),
    )


_DURATION = re.compile(r"^(?P<n>\d+(?:\.\d+)?)\s*(?P<unit>ns|us|µs|ms|s|m)?$")
_UNIT_MS = {"ns": 1e-6, "us": 1e-3, "µs": 1e-3, "ms": 1.0, "s": 1000.0, "m": 60_000.0}


def duration_ms(key: str, value: Any) -> float | None:
    """A duration in milliseconds. Units: the value's suffix ("12ms", "1.5s"), else the key's
    convention (nginx ``request_time``: s; ECS ``event.duration``: ns), else ms."""
    if isinstance(value, bool):
        return None
    unit = (
        "s"
        if key in ("request_time", "response_time")
        else "ns"
        if key == "event.duration"
        else "ms"
    )
    if isinstance(value, int | float):
        return float(value) * _UNIT_MS[unit]
    match = _DURATION.match(str(value).strip())
    if match is None:
        return None
    return float(match.group("n")) * _UNIT_MS[match.group("unit") or unit]


# -- logfmt ----------------------------------------------------------------------------------

_LOGFMT_PAIR = re.compile(r'([^\s=]+)=("(?:[^"\\]|\\.)*"|\S*)')
_LOGFMT_START = re.compile(r"^[\w.@-]+=")


def looks_like_logfmt(line: str) -> bool:
    first = line.split("\n", 1)[0]
    return bool(_LOGFMT_START.match(first)) and len(_LOGFMT_PAIR.findall(first)) >= 2


def parse_logfmt(text: str) -> Parsed:
    first, _, rest = text.partition("\n")
    pairs: dict[str, Any] = {}
    for key, value in _LOGFMT_PAIR.findall(first):
        if value.startswith('"') and value.endswith('"') and len(value) >= 2:
            value = re.sub(r"\\(.)", r"\1", value[1:-1])
        pairs[key] = value
    parsed = _from_flat(pairs, "logfmt")
    if rest:  # a stack trace appended on the next lines of the same record
        stack_msg, stack, exc_type = split_stack(parsed.message + "\n" + rest)
        return Parsed(
            **{
                **_as_dict(parsed),
                "message": stack_msg,
                "stack": stack,
                "exception_type": parsed.exception_type or exc_type,
            }
        )
    return parsed


def _as_dict(parsed: Parsed) -> dict[str, Any]:
    return {name: getattr(parsed, name) for name in Parsed.__slots__}


# -- plain text ------------------------------------------------------------------------------

_LVL = r"(?P<level>TRACE|DEBUG|INFO|NOTICE|WARN(?:ING)?|ERROR|ERR|CRITICAL|FATAL|SEVERE|PANIC)"
_TS = r"(?P<time>\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d(?:[.,]\d+)?(?:Z|[+-]\d\d:?\d\d)?)"

_ACCESS = re.compile(
    r'^(?P<remote>\S+) \S+ (?P<user>\S+) \[(?P<time>[^\]]+)\] "(?P<request>[^"]*)" '
    r"(?P<status>\d{3}) (?P<bytes>\d+|-)"
    r'(?: "(?P<referer>[^"]*)" "(?P<agent>[^"]*)")?(?: (?P<rt>\d+(?:\.\d+)?))?(?P<rest>.*)$'
)
_TEXT_FORMATS: tuple[tuple[str, re.Pattern[str]], ...] = (
    # Spring Boot: 2026-11-26T13:21:24.123Z ERROR 1234 --- [main] c.f.Bar : message
    (
        "spring",
        re.compile(
            _TS
            + r"\s+"
            + _LVL
            + r"\s+\d+\s+---\s+\[[^\]]*\]\s+(?P<logger>\S+)\s*:\s(?P<message>.*)$",
            re.S,
        ),
    ),
    # logback: 2026-11-26 13:21:24.123 [main] ERROR com.foo.Bar - message
    (
        "logback",
        re.compile(
            _TS
            + r"\s+\[(?P<thread>[^\]]*)\]\s+"
            + _LVL
            + r"\s+(?P<logger>\S+)\s+-\s(?P<message>.*)$",
            re.S,
        ),
    ),
    # Python: 2026-11-26 13:21:24,123 - app.db - ERROR - message
    (
        "python",
        re.compile(_TS + r"\s+-\s+(?P<logger>\S+)\s+-\s+" + _LVL + r"\s+-\s(?P<message>.*)$", re.S),
    ),
    # Python / generic: 2026-11-26 13:21:24,123 ERROR app.db: message  |  ... [ERROR] logger: msg
    (
        "python",
        re.compile(
            _TS
            + r"\s+\[?"
            + _LVL
            + r"\]?\s+(?:(?P<logger>[\w.$-]+(?:\[\d+\])?):\s)?(?P<message>.*)$",
            re.S,
        ),
    ),
    # Flask: [2026-11-26 13:21:24,123] ERROR in app: message
    (
        "python",
        re.compile(
            r"^\[" + _TS + r"\]\s+" + _LVL + r"\s+in\s+(?P<logger>\S+):\s(?P<message>.*)$", re.S
        ),
    ),
    # Python basicConfig: ERROR:app.db:message
    ("python", re.compile(r"^" + _LVL + r":(?P<logger>[\w.$-]+):(?P<message>.*)$", re.S)),
    # uvicorn: INFO:     127.0.0.1:50000 - "GET / HTTP/1.1" 200 OK
    ("python", re.compile(r"^" + _LVL + r":\s+(?P<message>.*)$", re.S)),
    # syslog: Nov 26 13:21:24 host prog[123]: message
    (
        "syslog",
        re.compile(
            r"^(?P<time>[A-Z][a-z]{2}\s+\d{1,2}\s\d\d:\d\d:\d\d)\s(?P<host>\S+)\s(?P<logger>[\w./-]+)(?:\[\d+\])?:\s(?P<message>.*)$",
            re.S,
        ),
    ),
)


def parse_text(text: str) -> Parsed:
    first = text.split("\n", 1)[0]
    match = _ACCESS.match(first)
    if match and "\n" not in text:
        return _access(match)
    for fmt, pattern in _TEXT_FORMATS:
        found = pattern.match(text)
        if found:
            groups = found.groupdict()
            message, stack, exc_type = split_stack(groups["message"])
            return Parsed(
                format=fmt,
                message=message,
                time=groups.get("time"),
                level=groups.get("level"),
                logger=groups.get("logger"),
                host=groups.get("host"),
                attributes={"thread": groups["thread"]} if groups.get("thread") else {},
                stack=stack,
                exception_type=exc_type,
            )
    message, stack, exc_type = split_stack(text)
    # a bare stack trace (Java's "Exception in thread ..." or a Python traceback) is an error
    level = "error" if stack is not None and exc_type is not None else None
    return Parsed(format="text", message=message, level=level, stack=stack, exception_type=exc_type)


def _access(match: re.Match[str]) -> Parsed:
    g = match.groupdict()
    http: dict[str, Any] = {"remote": g["remote"], "status": int(g["status"])}
    request = _REQUEST.match(g["request"])
    if request:
        http["method"] = request.group("method")
        http["path"] = request.group("path")
    if g.get("agent"):
        http["user_agent"] = g["agent"]
    if g.get("rt"):
        http["duration"] = float(g["rt"]) * 1000.0  # nginx $request_time is in seconds
    attributes: dict[str, Any] = {}
    if g["bytes"] != "-":
        attributes["bytes_sent"] = g["bytes"]
    if g.get("referer") and g["referer"] != "-":
        attributes["referer"] = g["referer"]
    if g["user"] != "-":
        attributes["user"] = g["user"]
    if g.get("rest", "").strip():
        attributes["extra"] = g["rest"].strip()
    status = http["status"]
    level = "error" if status >= 500 else "warning" if status >= 400 else "info"
    return Parsed(
        format="access",
        message=g["request"] or "-",
        time=g["time"],
        level=level,
        http=http,
        attributes=attributes,
    )


# -- dispatch --------------------------------------------------------------------------------


_SALVAGE = {
    name: re.compile(r'"(?:' + "|".join(re.escape(k) for k in keys) + r')"\s*:\s*"([^"]{1,64})"')
    for name, keys in (("level", _LEVEL_KEYS), ("time", _TIME_KEYS), ("logger", _LOGGER_KEYS))
}


def parse_line(text: str) -> Parsed:
    """Any one record's text → ``Parsed`` (JSON, logfmt, or text)."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        try:
            obj = orjson.loads(stripped)
        except orjson.JSONDecodeError:
            obj = None
        if isinstance(obj, dict):
            return parse_json(obj)
        parsed = parse_text(text)
        # a cut (truncated) JSON record: keep the fields its head still shows
        salvaged = {
            name: found.group(1)
            for name, pattern in _SALVAGE.items()
            if (found := pattern.search(stripped[:4096])) is not None
        }
        return Parsed(
            **{
                **_as_dict(parsed),
                "level": parsed.level or salvaged.get("level"),
                "time": parsed.time or salvaged.get("time"),
                "logger": parsed.logger or salvaged.get("logger"),
                "flags": parsed.flags | {FLAG_UNPARSED_JSON},
            }
        )
    if looks_like_logfmt(stripped):
        return parse_logfmt(stripped)
    return parse_text(text)
