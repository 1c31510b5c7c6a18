"""The heartbeat every running service instance publishes to ``ops.heartbeats``.

alerting raises "service not heartbeating" when a service's heartbeats stop. A heartbeat says
which instance is alive and whether it is ready (its consumer loops run and its dependencies
answer). Sending is best effort: a heartbeat that Kafka does not take in time is logged and
skipped, never a reason for the service to fail or to stop late.

Configured from the service's own environment prefix, as if it were a nested field of its
settings: ``VIGIE_LOGS_HEARTBEAT__INTERVAL_S=5``, ``VIGIE_LOGS_HEARTBEAT__ENABLED=false``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from importlib import metadata

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

from vigie_contracts import Envelope
from vigie_contracts.events import ServiceHeartbeat
from vigie_contracts.topics import HEARTBEATS

from .logging import get_logger
from .producer import Producer
from .settings import ServiceSettings

_log = get_logger(__name__)

#: returns whether the instance is ready now
ReadyProbe = Callable[[], Awaitable[bool]]


class HeartbeatSettings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="VIGIE_HEARTBEAT__", frozen=True, extra="forbid", env_ignore_empty=True
    )

    enabled: bool = True
    interval_s: float = Field(default=5.0, gt=0, le=300)
    topic: str = Field(default=HEARTBEATS.name, min_length=1)
    #: empty: the pod name (``VIGIE_POD_NAME``), else ``<hostname>-<pid>``
    instance: str = ""
    #: a heartbeat not acknowledged within this is skipped (the next one follows anyway)
    send_timeout_s: float = Field(default=2.0, gt=0, le=60)

    @classmethod
    def of(cls, settings: ServiceSettings) -> HeartbeatSettings:
        """Read with the service's prefix: ``<PREFIX>HEARTBEAT__<FIELD>``."""
        prefix = str(settings.model_config.get("env_prefix", "VIGIE_"))
        return cls(_env_prefix=f"{prefix}HEARTBEAT__")  # type: ignore[call-arg]

    def instance_name(self) -> str:
        return (
            self.instance
            or os.environ.get("VIGIE_POD_NAME", "")
            or f"{socket.gethostname()}-{os.getpid()}"
        )


def _version(service: str) -> str:
    try:
        return metadata.version(f"vigie-{service}")
    except metadata.PackageNotFoundError:
        return "unknown"


class Heartbeat:
    """Sends one ``ServiceHeartbeat`` every ``interval_s`` while running."""

    def __init__(
        self,
        settings: HeartbeatSettings,
        producer: Producer,
        *,
        service: str,
        ready: ReadyProbe,
    ) -> None:
        self.settings = settings
        self.service = service
        self.instance = settings.instance_name()
        self.version = _version(service)
        self.sent = 0
        self._producer = producer
        self._ready = ready

    def envelope(self, *, ready: bool, state: str) -> Envelope[ServiceHeartbeat]:
        now = datetime.now(UTC)
        payload = ServiceHeartbeat(
            service=self.service,
            instance=self.instance,
            version=self.version,
            ready=ready,
            sent_at=now,
            details={"state": state, "interval_s": f"{self.settings.interval_s:g}"},
        )
        return Envelope.wrap(payload, producer=f"{self.service}/{self.instance}", event_time=now)

    async def beat(self, state: str = "running") -> bool:
        """Send one heartbeat; False (and a log line) when it did not go out."""
        try:
            async with asyncio.timeout(self.settings.send_timeout_s):
                ready = state == "running" and await self._ready()
                await self._producer.send(
                    self.settings.topic,
                    self.envelope(ready=ready, state=state),
                    key=self.service,
                )
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            _log.warning("heartbeat not sent", error=str(exc), error_type=type(exc).__name__)
            return False
        self.sent += 1
        return True

    async def run(self) -> None:
        while True:
            await self.beat()
            await asyncio.sleep(self.settings.interval_s)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[None]:
        """Beat in the background; on exit stop, and say once that this instance stops."""
        if not self.settings.enabled:
            yield
            return
        task = asyncio.create_task(self.run(), name=f"heartbeat-{self.service}")
        try:
            yield
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
            await self.beat("stopping")
