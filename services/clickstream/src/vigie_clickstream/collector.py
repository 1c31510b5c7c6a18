"""The HTTP collector: ``POST /v1/batch`` for SDKs that do not speak Kafka.

Body: a JSON array of events, or ``{"events": [...]}``; ``Content-Encoding: gzip`` accepted.
Each event is what an SDK knows (``user_id``, ``platform``, ``name``, ``occurred_at``, optional
``event_id`` — send one, so a retried batch is deduplicated —, ``page_url``, ``properties``...).
The app comes from the API key, the IP from the connection (pseudonymised with a keyed HMAC
before anything leaves this process), the user agent from the body or the request.

Answers: 202 ``{"accepted": n, "rejected": [{"index", "event_id", "reasons"}]}`` once Kafka
acknowledged every accepted event; 401 bad key; 413 body too large; 429 (``Retry-After``) over
the app's rate; 400 not a batch; 503 (``Retry-After``) Kafka did not acknowledge — retry the
whole batch, event ids make that safe.
"""

from __future__ import annotations

import asyncio
import hashlib
import math
import time
import uuid
import zlib
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from pydantic import ValidationError as PydanticValidationError

from vigie_contracts import Envelope, Pseudonymizer, PseudonymKind, encode
from vigie_contracts.events import ClickstreamEvent
from vigie_contracts.topics import CLICKSTREAM_RAW
from vigie_runtime import Producer, VigieRuntimeError
from vigie_runtime.headers import envelope_headers

from .adapters.enrich import Countries
from .handlers.events import check_limits
from .handlers.ratelimit import TokenBucket
from .settings import CollectorSettings, ValidationLimits

PRODUCER = "clickstream-collector"
#: fields the collector sets itself; an SDK sending them is told so
SERVER_FIELDS = (
    "app_id",
    "ip_pseudonym",
    "device_family",
    "browser_family",
    "os_family",
    "country_code",
)


class _TooLarge(Exception):
    pass


def pseudonymise_ip(ip: str | None, pseudonyms: Pseudonymizer) -> str | None:
    """The IP's shared pseudonym (``vigie_contracts.pseudonyms``): stable per IP, so it joins
    with the same IP's pseudonym in the logs and the payments events; not reversible."""
    if not ip:
        return None
    return pseudonyms.pseudonym(PseudonymKind.IP, ip)


class Collector:
    def __init__(
        self,
        settings: CollectorSettings,
        limits: ValidationLimits,
        producer: Producer,
        *,
        countries: Countries | None = None,
        topic: str = CLICKSTREAM_RAW.name,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.settings = settings
        self.limits = limits
        self.producer = producer
        self.countries = countries
        self.topic = topic
        self._clock = clock
        self._ips = Pseudonymizer(settings.ip_hmac_key.get_secret_value().encode())
        # look keys up by digest: no per-app string comparison whose timing could leak a key
        self._apps = {
            hashlib.sha256(key.get_secret_value().encode()).digest(): app
            for app, key in settings.api_keys.items()
        }
        self._buckets: dict[str, TokenBucket] = {}
        self.accepted = 0
        self.rejected = 0

    def routes(self, app: FastAPI) -> None:
        router = APIRouter()
        router.add_api_route("/v1/batch", self.post_batch, methods=["POST"], status_code=202)
        app.include_router(router)

    # -- the steps -------------------------------------------------------------------------

    def _app_of(self, request: Request) -> str | None:
        key = request.headers.get("x-api-key")
        if not key:
            return None
        return self._apps.get(hashlib.sha256(key.encode()).digest())

    async def _body(self, request: Request) -> bytes:
        limit = self.settings.max_body_bytes
        declared = request.headers.get("content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            raise _TooLarge(f"body of {declared} bytes (at most {limit})")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            size += len(chunk)
            if size > limit:
                raise _TooLarge(f"body over {limit} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
        encoding = request.headers.get("content-encoding", "identity").lower()
        if encoding == "gzip":
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            cap = self.settings.max_inflated_bytes
            try:
                body = inflater.decompress(body, cap + 1)
            except zlib.error as exc:
                raise ValueError(f"not gzip: {exc}") from exc
            if len(body) > cap or inflater.unconsumed_tail:
                raise _TooLarge(f"body inflates to over {cap} bytes")
        elif encoding not in ("identity", ""):
            raise ValueError(f"unsupported Content-Encoding {encoding!r} (gzip or none)")
        return body

    def _client_ip(self, request: Request) -> str | None:
        if self.settings.trust_forwarded_for:
            forwarded = request.headers.get("x-forwarded-for")
            if forwarded:
                return forwarded.split(",")[0].strip()
        return request.client.host if request.client else None

    def _rate_limited(self, app_id: str, cost: int) -> float:
        now = self._clock()
        bucket = self._buckets.get(app_id)
        if bucket is None:
            bucket = self._buckets[app_id] = TokenBucket.full(
                self.settings.rate_events_per_s, self.settings.rate_burst_events, now
            )
        return bucket.take(cost, now)

    def validate(
        self,
        item: Any,
        *,
        app_id: str,
        ip: str | None,
        user_agent: str | None,
        now: datetime,
    ) -> tuple[Envelope[ClickstreamEvent] | None, list[str]]:
        """One SDK event → its envelope, or why not."""
        if not isinstance(item, dict):
            return None, ["not a JSON object"]
        owned = [f for f in SERVER_FIELDS if f in item]
        if owned:
            return None, [f"{f}: set by the collector, not by the SDK" for f in owned]
        fields = dict(item)
        event_id = fields.pop("event_id", None)
        if event_id is None:
            event_id = str(uuid.uuid4())
        elif (
            not isinstance(event_id, str)
            or not 0 < len(event_id) <= self.limits.max_event_id_length
        ):
            return None, [
                f"event_id: a string of 1 to {self.limits.max_event_id_length} characters"
            ]
        fields["app_id"] = app_id
        fields["ip_pseudonym"] = pseudonymise_ip(ip, self._ips)
        if self.countries is not None:
            fields["country_code"] = self.countries.country(ip)
        fields.setdefault("user_agent", user_agent)
        try:
            payload = ClickstreamEvent.model_validate(fields)
        except PydanticValidationError as exc:
            return None, [_reason(error) for error in exc.errors()]
        if payload.occurred_at.tzinfo is None:
            return None, ["occurred_at: timestamps must be timezone-aware (give an offset or Z)"]
        reasons = check_limits(payload.occurred_at, payload.properties, now, self.limits)
        if reasons:
            return None, reasons
        envelope = Envelope.wrap(
            payload, producer=PRODUCER, event_time=payload.occurred_at, event_id=event_id
        )
        return envelope, []

    # -- the endpoint ----------------------------------------------------------------------

    async def post_batch(self, request: Request) -> JSONResponse:
        app_id = self._app_of(request)
        if app_id is None:
            return _error(401, "missing or unknown X-Api-Key")
        try:
            body = await self._body(request)
        except _TooLarge as exc:
            return _error(413, str(exc))
        except ValueError as exc:
            return _error(400, str(exc))
        try:
            parsed = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            return _error(400, f"body is not JSON: {exc}")
        events = parsed.get("events") if isinstance(parsed, dict) else parsed
        if not isinstance(events, list):
            return _error(400, 'body must be a JSON array of events or {"events": [...]}')
        if len(events) > self.settings.max_events_per_batch:
            return _error(
                413,
                f"{len(events)} events in one batch (at most {self.settings.max_events_per_batch})",
            )
        wait = self._rate_limited(app_id, len(events))
        if wait > 0:
            return _error(
                429,
                f"rate limit of {self.settings.rate_events_per_s:g} events/s for {app_id}",
                headers={"Retry-After": str(max(1, math.ceil(wait)))},
            )
        now = datetime.now(UTC)
        ip = self._client_ip(request)
        agent = request.headers.get("user-agent")
        accepted: list[Envelope[ClickstreamEvent]] = []
        rejected: list[dict[str, Any]] = []
        for index, item in enumerate(events):
            envelope, reasons = self.validate(item, app_id=app_id, ip=ip, user_agent=agent, now=now)
            if envelope is None:
                given = item.get("event_id") if isinstance(item, dict) else None
                rejected.append({"index": index, "event_id": given, "reasons": reasons})
            else:
                accepted.append(envelope)
        try:
            await self._produce(accepted)
        except (VigieRuntimeError, TimeoutError) as exc:
            return _error(
                503, f"events not acknowledged by Kafka: {exc}", headers={"Retry-After": "1"}
            )
        self.accepted += len(accepted)
        self.rejected += len(rejected)
        return JSONResponse({"accepted": len(accepted), "rejected": rejected}, status_code=202)

    async def _produce(self, envelopes: list[Envelope[ClickstreamEvent]]) -> None:
        if not envelopes:
            return
        futures = [
            await self.producer.enqueue(
                self.topic,
                encode(envelope),
                key=envelope.payload.user_id,
                headers=envelope_headers(envelope),
            )
            for envelope in envelopes
        ]
        # answer only once Kafka has every one: a 202 must mean "stored in the raw topic"
        async with asyncio.timeout(self.settings.produce_timeout_s):
            results = await asyncio.gather(*futures, return_exceptions=True)
        failed = [r for r in results if isinstance(r, BaseException)]
        if failed:
            raise VigieRuntimeError(f"{len(failed)} of {len(futures)} sends failed: {failed[0]!r}")


def _reason(error: Any) -> str:
    where = ".".join(str(part) for part in error.get("loc", ())) or "event"
    return f"{where}: {error.get('msg', 'invalid')}"


def _error(status: int, detail: str, headers: dict[str, str] | None = None) -> JSONResponse:
    return JSONResponse({"error": detail}, status_code=status, headers=headers)
