"""Kafka Connect (a distributed worker) running Debezium's PostgreSQL connector on the OLTP db."""

from __future__ import annotations

import time
from pathlib import Path
from string import Template
from typing import Any

import httpx

from ..build import classpath, java, maven_runtime_jars
from ..component import Context, Program, StackError
from .kafka import installed_version, jvm_options

NAME = "connect"
CONNECTOR = "vigie-oltp"
#: The OLTP tables whose changes are captured; topics are ``cdc.public.<table>``.
TABLES = ("customers", "merchants", "terminals", "cards", "transactions", "refunds", "disputes")
#: How long ``up`` waits for the connector and its task to be RUNNING.
RUNNING_TIMEOUT = 120.0


def connector_config(ctx: Context) -> dict[str, str]:
    s = ctx.settings
    return {
        "connector.class": "io.debezium.connector.postgresql.PostgresConnector",
        "tasks.max": "1",  # a Postgres connector reads one replication slot: always one task
        "plugin.name": "pgoutput",  # built into PostgreSQL; decoderbufs would need a server plugin
        "slot.name": "vigie_oltp",
        "publication.name": "vigie_oltp",
        # The connector creates (and keeps in step) a publication of exactly the included tables.
        "publication.autocreate.mode": "filtered",
        "topic.prefix": "cdc",
        "database.hostname": s.host,
        "database.port": str(s.postgres_port),
        "database.user": s.postgres_user,
        "database.password": s.postgres_password,
        "database.dbname": s.postgres_db,
        "schema.include.list": "public",
        "table.include.list": ",".join(f"public.{t}" for t in TABLES),
        # numeric(19,4) money as exact strings ("12.3400"), not base64 bytes or lossy doubles.
        "decimal.handling.mode": "string",
        # Microseconds, PostgreSQL's own precision, for time/timestamp columns ("connect" would cut
        # them to milliseconds); timestamptz columns are ISO-8601 strings in either mode.
        "time.precision.mode": "adaptive_time_microseconds",
        # A delete is a "d" event then a null-valued record, so compacted topics drop the key.
        "tombstones.on.delete": "true",
        # Lets the slot's confirmed LSN advance while the captured tables are idle, so PostgreSQL
        # can recycle WAL written by the other databases and tables.
        "heartbeat.interval.ms": "10000",
        "snapshot.mode": "initial",
        "key.converter": "org.apache.kafka.connect.json.JsonConverter",
        "key.converter.schemas.enable": "false",
        "value.converter": "org.apache.kafka.connect.json.JsonConverter",
        "value.converter.schemas.enable": "false",
        # Connect creates the change topics itself, rather than relying on broker auto-creation.
        "topic.creation.default.replication.factor": "1",
        "topic.creation.default.partitions": "3",
    }


class Connect:
    name = NAME
    requires: tuple[str, ...] = ("kafka", "postgres")
    start_timeout = 120.0

    def _lib(self, ctx: Context) -> Path:
        return ctx.paths.opt / "connect" / "lib"

    def _plugins(self, ctx: Context) -> Path:
        return ctx.paths.opt / "connect" / "plugins"

    def _debezium(self, ctx: Context) -> Path:
        return self._plugins(ctx) / "debezium-connector-postgres"

    def _conf(self, ctx: Context) -> Path:
        return ctx.local_dir / "conf" / NAME

    def _config(self, ctx: Context) -> Path:
        return ctx.data_dir(NAME) / "worker.properties"

    def _url(self, ctx: Context, path: str) -> str:
        return f"http://{ctx.settings.host}:{ctx.settings.connect_port}{path}"

    def install(self, ctx: Context) -> None:
        maven = ctx.local_dir / "maven"
        maven_runtime_jars(ctx, maven / "connect" / "pom.xml", self._lib(ctx))
        maven_runtime_jars(ctx, maven / "debezium" / "pom.xml", self._debezium(ctx))

    def prepare(self, ctx: Context) -> None:
        data = ctx.data_dir(NAME)
        data.mkdir(parents=True, exist_ok=True)
        template = Template((self._conf(ctx) / "worker.properties").read_text())
        self._config(ctx).write_text(template.substitute(
            host=ctx.settings.host, kafka_port=ctx.settings.kafka_port,
            port=ctx.settings.connect_port, plugin_path=self._plugins(ctx),
        ))

    def program(self, ctx: Context) -> Program:
        if not any(self._debezium(ctx).glob("debezium-connector-postgres-*.jar")):
            raise StackError("the Debezium plugin is not installed: run `vigie-stack install`")
        return Program(
            command=[
                java(), *jvm_options(ctx.settings.connect_heap, self._conf(ctx) / "log4j2.yaml"),
                "-cp", classpath(self._lib(ctx)),
                "org.apache.kafka.connect.cli.ConnectDistributed", str(self._config(ctx)),
            ],
            directory=ctx.data_dir(NAME),
        )

    def healthy(self, ctx: Context) -> bool:
        # /health (KIP-1017) answers 200 only once the worker has joined its group and read the
        # config topic, unlike GET /, which answers as soon as the HTTP server listens.
        try:
            response = httpx.get(self._url(ctx, "/health"), timeout=2.0)
        except httpx.HTTPError:
            return False
        return response.status_code == 200

    def after_start(self, ctx: Context) -> None:
        self._register(ctx)
        self._wait_running(ctx)

    def _register(self, ctx: Context) -> None:
        """PUT the config: creates the connector, or updates it when it differs."""
        url = self._url(ctx, f"/connectors/{CONNECTOR}/config")
        wanted = connector_config(ctx)
        deadline = time.monotonic() + 60
        while True:
            try:
                current = httpx.get(url, timeout=10.0)
                # Connect restarts a connector on every PUT, even an identical one: skip it.
                if current.status_code == 200 and {
                    k: v for k, v in current.json().items() if k != "name"
                } == wanted:
                    return
                response = httpx.put(url, json=wanted, timeout=30.0)
            except httpx.HTTPError as exc:
                error = repr(exc)
            else:
                if response.status_code in (200, 201):
                    return
                error = f"HTTP {response.status_code}: {response.text}"
                # 409: the group is rebalancing (the worker just started); anything else is final.
                if response.status_code != 409:
                    raise StackError(f"registering connector {CONNECTOR} failed: {error}")
            if time.monotonic() > deadline:
                raise StackError(f"registering connector {CONNECTOR} failed: {error}")
            time.sleep(1)

    def _wait_running(self, ctx: Context) -> None:
        deadline = time.monotonic() + RUNNING_TIMEOUT
        status: dict[str, Any] = {}
        while time.monotonic() < deadline:
            try:
                response = httpx.get(self._url(ctx, f"/connectors/{CONNECTOR}/status"), timeout=5.0)
            except httpx.HTTPError:
                time.sleep(1)
                continue
            if response.status_code == 200:
                status = response.json()
                states = [status["connector"]] + list(status.get("tasks", []))
                failed = [s for s in states if s.get("state") == "FAILED"]
                if failed:
                    raise StackError(f"connector {CONNECTOR} FAILED:\n{failed[0].get('trace', '')}")
                if len(states) > 1 and all(s.get("state") == "RUNNING" for s in states):
                    return
            time.sleep(1)
        raise StackError(
            f"connector {CONNECTOR} not RUNNING after {RUNNING_TIMEOUT:.0f}s: {status}"
        )

    def version(self, ctx: Context) -> str:
        connect = installed_version(self._lib(ctx), "connect-runtime-")
        debezium = installed_version(self._debezium(ctx), "debezium-connector-postgres-")
        return f"Kafka Connect {connect}, Debezium {debezium}"


COMPONENT = Connect()
