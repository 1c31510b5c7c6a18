"""vigie's own processes (the services and the traffic generator), run by the stack's supervisord.

Each is a ``Component`` like the servers, so ``vigie-stack up <app>`` starts what it needs first and
waits for its readiness endpoint. The services get the stack's addresses through their own settings
(``VIGIE_<SERVICE>_KAFKA__BOOTSTRAP_SERVERS``, ...), and development secrets (pseudonym keys, API
keys) generated once into ``run/dev-secrets.json``: the same key for every service, so pseudonyms
join across them, as the services' settings ask.
"""

from __future__ import annotations

import json
import secrets
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import metadata

from .component import Context, Program, StackError
from .settings import REPO_ROOT, StackSettings

VENV_BIN = REPO_ROOT / ".venv" / "bin"

#: Where the development secrets live (never in git; ``reset`` keeps them in run/).
SECRETS_FILE = "dev-secrets.json"


def dev_secrets(ctx: Context) -> dict[str, str]:
    """Keys for local runs: created on first use, then the same for every run and service."""
    path = ctx.paths.run / SECRETS_FILE
    if path.exists():
        loaded: dict[str, str] = json.loads(path.read_text())
        return loaded
    values = {
        "pseudonym_key": secrets.token_hex(32),
        "card_token_key": secrets.token_hex(32),
        "clickstream_api_key": secrets.token_urlsafe(24),
        "webhook_secret": secrets.token_hex(32),
    }
    path.write_text(json.dumps(values, indent=2))
    path.chmod(0o600)
    return values


@dataclass(frozen=True)
class App:
    """One vigie process: its console script, settings prefix, port and the servers it uses."""

    name: str
    script: str
    env_prefix: str
    #: offset from ``apps_port_base``; None: no HTTP endpoint (health = process running)
    port_offset: int | None
    #: servers it talks to, started first; also which addresses it is given
    requires: tuple[str, ...]
    distribution: str
    #: command-line arguments, from the stack's settings
    args: Callable[[StackSettings], tuple[str, ...]] = lambda _settings: ()
    secrets_env: dict[str, str] = field(default_factory=dict)
    #: variables holding a JSON object {name: secret}: (name, secret key)
    json_secrets_env: dict[str, tuple[str, str]] = field(default_factory=dict)
    extra_env: dict[str, str] = field(default_factory=dict)
    #: writes the data lake's raw zone (into the stack's data folder, not the working directory)
    lake: bool = False
    #: variables naming a folder of its own under the stack's data folder
    data_dirs: dict[str, str] = field(default_factory=dict)
    start_timeout: float = 90

    def port(self, ctx: Context) -> int | None:
        if self.port_offset is None:
            return None
        return ctx.settings.apps_port_base + self.port_offset

    def install(self, ctx: Context) -> None:
        if not (VENV_BIN / self.script).exists():
            raise StackError(
                f"{self.script} is not installed in {VENV_BIN} (run ./vigie up, which syncs the "
                "workspace)"
            )

    def prepare(self, ctx: Context) -> None:
        dev_secrets(ctx)
        (ctx.paths.data / "lake").mkdir(parents=True, exist_ok=True)

    def env(self, ctx: Context) -> dict[str, str]:
        s, p = ctx.settings, self.env_prefix
        env = {"PYTHONUNBUFFERED": "1", f"{p}OBSERVABILITY__LOG_LEVEL": "info"}
        port = self.port(ctx)
        if port is not None:
            env[f"{p}OBSERVABILITY__HTTP_HOST"] = s.host
            env[f"{p}OBSERVABILITY__HTTP_PORT"] = str(port)
        if "kafka" in self.requires:
            env[f"{p}KAFKA__BOOTSTRAP_SERVERS"] = f"{s.host}:{s.kafka_port}"
        if "ferretdb" in self.requires:
            env[f"{p}MONGO__URL"] = f"mongodb://{s.host}:{s.mongo_port}"
        if "cassandra" in self.requires:
            env[f"{p}CASSANDRA__CONTACT_POINTS"] = json.dumps([s.host])
            env[f"{p}CASSANDRA__PORT"] = str(s.cassandra_port)
        if "redis" in self.requires:
            env[f"{p}REDIS__URL"] = f"redis://{s.host}:{s.redis_port}/0"
        if self.lake:
            env[f"{p}LAKE__URL"] = str(ctx.paths.data / "lake")
        keys = dev_secrets(ctx)
        env.update({name: keys[key] for name, key in self.secrets_env.items()})
        for var, (name, key) in self.json_secrets_env.items():
            env[var] = json.dumps({name: keys[key]})
        env.update({var: str(ctx.paths.data / sub) for var, sub in self.data_dirs.items()})
        env.update(self.extra_env)
        return env

    def program(self, ctx: Context) -> Program:
        script = VENV_BIN / self.script
        if not script.exists():
            raise StackError(f"{self.script} is not installed")
        return Program(
            command=[str(script), *self.args(ctx.settings)],
            env=self.env(ctx),
            directory=REPO_ROOT,
            stopwaitsecs=30,
        )

    def healthy(self, ctx: Context) -> bool:
        port = self.port(ctx)
        if port is None:
            # no endpoint to ask (the traffic generator): running is healthy
            from .supervisor import Supervisor

            info = Supervisor(ctx).info(self.name)
            return info is not None and info["statename"] == "RUNNING"
        url = f"http://{ctx.settings.host}:{port}/health/ready"
        try:
            with urllib.request.urlopen(url, timeout=2) as response:  # noqa: S310 - our loopback
                return bool(response.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def after_start(self, ctx: Context) -> None:
        return None

    def version(self, ctx: Context) -> str:
        try:
            return f"{self.distribution} {metadata.version(self.distribution)}"
        except metadata.PackageNotFoundError:
            return "(not installed)"


def _traffic_args(settings: StackSettings) -> tuple[str, ...]:
    return ("--rate", f"{settings.traffic_rate:g}", "--seed", str(settings.traffic_seed))


_PII = {
    "VIGIE_INGEST_CDC_PII__PSEUDONYM_KEY": "pseudonym_key",
    "VIGIE_INGEST_CDC_PII__CARD_TOKEN_KEY": "card_token_key",
}

APPS: tuple[App, ...] = (
    App(
        name="ingest-cdc",
        lake=True,
        script="vigie-ingest-cdc",
        env_prefix="VIGIE_INGEST_CDC_",
        port_offset=1,
        requires=("kafka", "connect", "ferretdb"),
        distribution="vigie-ingest-cdc",
        secrets_env=_PII,
        extra_env={
            "VIGIE_INGEST_CDC_MIRROR_WRITE_MODE": "per_document",
        },
    ),
    App(
        name="clickstream",
        lake=True,
        script="vigie-clickstream",
        env_prefix="VIGIE_CLICKSTREAM_",
        port_offset=2,
        requires=("kafka", "cassandra", "redis"),
        distribution="vigie-clickstream",
        secrets_env={"VIGIE_CLICKSTREAM_COLLECTOR__IP_HMAC_KEY": "pseudonym_key"},
        json_secrets_env={
            "VIGIE_CLICKSTREAM_COLLECTOR__API_KEYS": ("vigie-demo", "clickstream_api_key")
        },
    ),
    App(
        name="logs",
        lake=True,
        script="vigie-logs",
        env_prefix="VIGIE_LOGS_",
        port_offset=3,
        requires=("kafka", "cassandra"),
        distribution="vigie-logs",
        secrets_env={"VIGIE_LOGS_PSEUDONYM_KEY": "pseudonym_key"},
    ),
    App(
        name="features",
        script="vigie-features",
        args=lambda _settings: ("worker",),
        env_prefix="VIGIE_FEATURES_",
        port_offset=4,
        requires=("kafka", "redis"),
        distribution="vigie-features",
        data_dirs={"VIGIE_FEATURES_DATA_DIR": "features"},
        # restarted by supervisord as the same Kafka group member (no rebalance)
        extra_env={"VIGIE_FEATURES_GROUP_INSTANCE_ID": "features-local-0"},
    ),
    App(
        name="features-api",
        script="vigie-features",
        args=lambda _settings: ("api",),
        env_prefix="VIGIE_FEATURES_",
        port_offset=5,
        requires=("redis",),
        distribution="vigie-features",
    ),
    App(
        name="inference",
        script="vigie-inference",
        args=lambda _settings: ("all",),
        env_prefix="VIGIE_INFERENCE_",
        port_offset=6,
        requires=("kafka", "redis", "cassandra", "ferretdb"),
        distribution="vigie-inference",
    ),
    App(
        name="alerting",
        script="vigie-alerting",
        env_prefix="VIGIE_ALERTING_",
        port_offset=7,
        requires=("kafka", "ferretdb"),
        distribution="vigie-alerting",
        extra_env={
            "VIGIE_ALERTING_RULES_PATH": str(REPO_ROOT / "deploy" / "local" / "alerting-rules.yaml")
        },
    ),
    App(
        name="traffic",
        script="vigie-traffic",
        env_prefix="VIGIE_TRAFFIC_",
        port_offset=None,
        # after the pipeline that reads what it writes, so the first rows are not only backlog
        requires=("postgres", "ingest-cdc"),
        distribution="vigie-traffic",
        args=_traffic_args,
        start_timeout=30,
    ),
    App(
        name="activity",
        script="vigie-activity",
        env_prefix="VIGIE_ACTIVITY_",
        port_offset=None,
        requires=("postgres", "kafka", "clickstream", "logs", "traffic"),
        distribution="vigie-traffic",
        secrets_env={"VIGIE_ACTIVITY_API_KEY": "clickstream_api_key"},
        start_timeout=30,
    ),
)

APP_NAMES: tuple[str, ...] = tuple(app.name for app in APPS)


def app(name: str) -> App:
    for candidate in APPS:
        if candidate.name == name:
            return candidate
    raise StackError(f"unknown app {name!r}; known: {', '.join(APP_NAMES)}")
