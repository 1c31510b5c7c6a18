"""Service settings from the environment, validated once at start and frozen afterwards.

A service subclasses ``ServiceSettings`` and picks its prefix::

    class ClickstreamSettings(ServiceSettings):
        model_config = SettingsConfigDict(env_prefix="VIGIE_CLICKSTREAM_")
        observability: ObservabilitySettings = ObservabilitySettings(service_name="clickstream")

Nested fields use ``__``: ``VIGIE_CLICKSTREAM_KAFKA__BOOTSTRAP_SERVERS=broker:9092``.
"""

from __future__ import annotations

import sys
from typing import Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict, SettingsError

from .backoff import Backoff

Compression = Literal["gzip", "snappy", "lz4", "zstd"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class KafkaSettings(_Frozen):
    bootstrap_servers: str = "127.0.0.1:9092"
    #: consumer group; empty means the service name
    group_id: str = ""
    #: empty: aiokafka's default client id
    client_id: str = ""
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: Literal["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"] | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    #: most records one handler call receives
    batch_max_records: int = Field(default=500, ge=1, le=100_000)
    #: how long getmany waits for records before handing over a partial batch
    batch_timeout_ms: int = Field(default=200, ge=0, le=60_000)
    #: attempts of a failing batch before its messages are tried one by one
    retry_max_attempts: int = Field(default=5, ge=1, le=100)
    retry_backoff_initial_s: float = Field(default=0.1, gt=0)
    retry_backoff_max_s: float = Field(default=30.0, gt=0)
    #: producer: zstd (cramjam) compresses smaller than gzip at a twentieth of its CPU
    compression: Compression | None = "zstd"
    linger_ms: int = Field(default=5, ge=0, le=10_000)
    #: a consumer that polls less often than this leaves its group (long retries pause and poll)
    max_poll_interval_ms: int = Field(default=300_000, ge=1_000)
    session_timeout_ms: int = Field(default=45_000, ge=1_000)

    @model_validator(mode="after")
    def _sane(self) -> KafkaSettings:
        if self.retry_backoff_max_s < self.retry_backoff_initial_s:
            raise ValueError("retry_backoff_max_s must be >= retry_backoff_initial_s")
        if self.security_protocol.startswith("SASL") and self.sasl_mechanism is None:
            raise ValueError(f"security_protocol={self.security_protocol} needs sasl_mechanism")
        return self

    def backoff(self) -> Backoff:
        return Backoff(
            initial=self.retry_backoff_initial_s,
            cap=self.retry_backoff_max_s,
            max_attempts=self.retry_max_attempts,
        )

    def client_options(self) -> dict[str, object]:
        """What every aiokafka client (consumer, producer, admin) of the service shares."""
        options: dict[str, object] = {
            "bootstrap_servers": self.bootstrap_servers,
            "security_protocol": self.security_protocol,
        }
        if self.client_id:
            options["client_id"] = self.client_id
        if self.sasl_mechanism is not None:
            options["sasl_mechanism"] = self.sasl_mechanism
            options["sasl_plain_username"] = self.sasl_username
            if self.sasl_password is not None:
                options["sasl_plain_password"] = self.sasl_password.get_secret_value()
        return options


LogLevel = Literal["debug", "info", "warning", "error", "critical"]


class ObservabilitySettings(_Frozen):
    service_name: str = Field(default="vigie", min_length=1, pattern=r"^[a-z][a-z0-9-]*$")
    #: OTLP/HTTP collector base URL (e.g. http://otel-collector:4318); none: traces stay local
    otlp_endpoint: str | None = Field(default=None, pattern=r"^https?://")
    log_level: LogLevel = "info"
    http_host: str = "0.0.0.0"  # noqa: S104 - the probe endpoint must be reachable in a pod
    http_port: int = Field(default=8080, ge=0, le=65535)


class ServiceSettings(BaseSettings):
    """The settings every service has; subclasses add theirs and set ``env_prefix``."""

    model_config = SettingsConfigDict(
        env_prefix="VIGIE_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
        # VIGIE_X_KAFKA__GROUP_ID alone must not wipe the other defaults of ``kafka``
        nested_model_default_partial_update=True,
    )

    kafka: KafkaSettings = KafkaSettings()
    observability: ObservabilitySettings = ObservabilitySettings()

    @property
    def service_name(self) -> str:
        return self.observability.service_name

    @property
    def group_id(self) -> str:
        return self.kafka.group_id or self.service_name


S = TypeVar("S", bound=ServiceSettings)

_SECRET_HINTS = ("password", "secret", "token", "key")


def env_var_of(cls: type[ServiceSettings], loc: tuple[int | str, ...]) -> str:
    """The environment variable that sets the field at ``loc`` (pydantic's error location)."""
    prefix = str(cls.model_config.get("env_prefix", ""))
    delimiter = str(cls.model_config.get("env_nested_delimiter") or "__")
    return (prefix + delimiter.join(str(part) for part in loc)).upper()


def describe_error(cls: type[ServiceSettings], error: ValidationError) -> str:
    """One paragraph an operator can act on: which variable, what was wrong, what it got."""
    problems = []
    for item in error.errors():
        loc = tuple(item["loc"])
        where = env_var_of(cls, loc) if loc else f"{cls.__name__} (several variables)"
        got = ""
        secret = any(hint in str(part).lower() for part in loc for hint in _SECRET_HINTS)
        if "input" in item and not secret and not isinstance(item["input"], dict):
            got = f" (got {item['input']!r})"
        problems.append(f"{where}: {item['msg']}{got}")
    return (
        f"invalid configuration for {cls.__name__}: " + "; ".join(problems) + ". "
        "Fix the environment and start again."
    )


def load_settings(cls: type[S]) -> S:
    """Read ``cls`` from the environment, or print why not and exit with status 2."""
    try:
        return cls()
    except ValidationError as exc:
        print(describe_error(cls, exc), file=sys.stderr)
        raise SystemExit(2) from None
    except SettingsError as exc:
        # e.g. a complex (JSON) value that does not parse: pydantic-settings says which variable
        print(f"{cls.__name__}: invalid configuration: {exc}", file=sys.stderr)
        raise SystemExit(2) from None
