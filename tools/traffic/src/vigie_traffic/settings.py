"""Where the OLTP PostgreSQL listens: the ``VIGIE_*`` variables of the local stack's settings."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class TrafficSettings(BaseSettings):
    # extra="ignore": the VIGIE_ prefix is shared with the stack's and every service's variables.
    model_config = SettingsConfigDict(env_prefix="VIGIE_", frozen=True, extra="ignore")

    host: str = "127.0.0.1"
    postgres_port: int = 5432
    postgres_user: str = "vigie"
    postgres_password: SecretStr = SecretStr("vigie")
    postgres_db: str = "oltp"

    def dsn(self) -> str:
        return (
            f"postgresql://{self.postgres_user}:{self.postgres_password.get_secret_value()}"
            f"@{self.host}:{self.postgres_port}/{self.postgres_db}"
        )
