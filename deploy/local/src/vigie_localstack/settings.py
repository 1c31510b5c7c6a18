"""Ports, heap sizes and locations of the local stack, from ``VIGIE_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parents[4]
LOCAL_DIR = REPO_ROOT / "deploy" / "local"


class StackSettings(BaseSettings):
    """Everything about the local stack that a developer may want to change.

    Defaults are the servers' usual ports, so clients work without configuration.
    """

    model_config = SettingsConfigDict(env_prefix="VIGIE_", frozen=True, extra="ignore")

    home: Path = Field(default=REPO_ROOT / ".vigie", description="cache, data, logs, run state")
    host: str = "127.0.0.1"
    kafka_port: int = 9092
    kafka_controller_port: int = 9093
    connect_port: int = 8083
    postgres_port: int = 5432
    cassandra_port: int = 9042
    cassandra_storage_port: int = 7000
    cassandra_jmx_port: int = 7199
    mongo_port: int = 27017
    redis_port: int = 6379
    #: vigie's services listen on base + 1, + 2, ... (see apps.py)
    apps_port_base: int = 8100
    #: the traffic generator of ``./vigie up``: transactions per wall second, and its world's seed
    traffic_rate: float = 50.0
    traffic_seed: int = 0
    kafka_heap: str = "768m"
    connect_heap: str = "512m"
    cassandra_heap: str = "1G"
    postgres_user: str = "vigie"
    postgres_password: str = "vigie"  # noqa: S105 - loopback-only development server
    postgres_db: str = "oltp"

    def postgres_dsn(self, database: str | None = None) -> str:
        """A libpq / pgx URL for the stack's PostgreSQL (the OLTP database unless named)."""
        return (
            f"postgresql://{self.postgres_user}:{self.postgres_password}"
            f"@{self.host}:{self.postgres_port}/{database or self.postgres_db}"
        )


class Paths:
    """The layout of ``$VIGIE_HOME``: ``cache/`` survives ``reset``; ``data/``, ``logs/`` do not."""

    def __init__(self, home: Path) -> None:
        self.home = home
        self.cache = home / "cache"
        self.opt = home / "opt"
        self.data = home / "data"
        self.logs = home / "logs"
        self.run = home / "run"
        self.bin = self.opt / "bin"

    def ensure(self) -> None:
        for path in (self.cache, self.opt, self.data, self.logs, self.run, self.bin):
            path.mkdir(parents=True, exist_ok=True)
