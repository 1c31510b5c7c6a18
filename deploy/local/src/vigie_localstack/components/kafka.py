"""Apache Kafka in KRaft mode (one broker that is also the controller), from Maven Central jars."""

from __future__ import annotations

import base64
import socket
import struct
import uuid
from pathlib import Path
from string import Template

from ..build import classpath, java, maven_runtime_jars
from ..component import Context, Program, StackError, run

NAME = "kafka"


def jvm_options(heap: str, log4j2_config: Path) -> list[str]:
    """The JVM flags of Kafka's own ``kafka-run-class.sh`` (G1 tuned for low pauses)."""
    return [
        f"-Xmx{heap}",
        f"-Xms{heap}",
        "-XX:+UseG1GC",
        "-XX:MaxGCPauseMillis=20",
        "-XX:InitiatingHeapOccupancyPercent=35",
        "-XX:+ExplicitGCInvokesConcurrent",
        "-XX:MaxInlineLevel=15",
        # An OOM'd JVM limps on; exiting lets supervisord restart it and `status` show it.
        "-XX:+ExitOnOutOfMemoryError",
        "-Djava.awt.headless=true",
        f"-Dlog4j2.configurationFile={log4j2_config}",
    ]


def installed_version(lib: Path, prefix: str) -> str:
    """The version in the file name of ``<prefix><version>.jar`` in ``lib``."""
    jars = sorted(lib.glob(f"{prefix}*.jar"))
    if not jars:
        raise StackError(f"{prefix}*.jar not in {lib}: run `vigie-stack install` first")
    return jars[0].name.removeprefix(prefix).removesuffix(".jar")


def _string(value: str) -> bytes:
    raw = value.encode()
    return struct.pack(">h", len(raw)) + raw


def metadata_brokers(host: str, port: int, timeout: float = 2.0) -> list[int]:
    """The node ids of the brokers a Metadata request (v4, all topics) reports.

    Written against the wire protocol so the stack manager needs no Kafka client library; v4 is the
    oldest Metadata version Kafka 4 still serves and the newest one before the "flexible" encoding.
    """
    header = struct.pack(">hhi", 3, 4, 1) + _string("vigie-stack")
    body = struct.pack(">ib", -1, 0)  # topics: null = all, allow_auto_topic_creation: false
    request = header + body
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.settimeout(timeout)
        sock.sendall(struct.pack(">i", len(request)) + request)
        size = struct.unpack(">i", _recv(sock, 4))[0]
        data = _recv(sock, size)
    correlation_id, _throttle, count = struct.unpack_from(">iii", data, 0)
    if correlation_id != 1:
        raise StackError(f"kafka answered correlation id {correlation_id}, expected 1")
    offset, nodes = 12, []
    for _ in range(count):
        node_id, host_len = struct.unpack_from(">ih", data, offset)
        offset += 6 + host_len + 4  # node id, host, port
        (rack_len,) = struct.unpack_from(">h", data, offset)
        offset += 2 + max(rack_len, 0)
        nodes.append(node_id)
    return nodes


def _recv(sock: socket.socket, size: int) -> bytes:
    chunks, remaining = [], size
    while remaining:
        chunk = sock.recv(remaining)
        if not chunk:
            raise ConnectionError("kafka closed the connection mid-response")
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


class Kafka:
    name = NAME
    requires: tuple[str, ...] = ()
    start_timeout = 120.0

    def _lib(self, ctx: Context) -> Path:
        return ctx.paths.opt / "kafka" / "lib"

    def _pom(self, ctx: Context) -> Path:
        return ctx.local_dir / "maven" / "kafka" / "pom.xml"

    def _log4j2(self, ctx: Context) -> Path:
        return ctx.local_dir / "conf" / "kafka" / "log4j2.yaml"

    def _config(self, ctx: Context) -> Path:
        return ctx.data_dir(NAME) / "server.properties"

    def install(self, ctx: Context) -> None:
        maven_runtime_jars(ctx, self._pom(ctx), self._lib(ctx))

    def prepare(self, ctx: Context) -> None:
        data = ctx.data_dir(NAME)
        data.mkdir(parents=True, exist_ok=True)
        s = ctx.settings
        template = Template((ctx.local_dir / "conf" / "kafka" / "server.properties").read_text())
        self._config(ctx).write_text(template.substitute(
            host=s.host, port=s.kafka_port, controller_port=s.kafka_controller_port, data_dir=data,
        ))
        if (data / "metadata" / "meta.properties").exists():
            return
        # The cluster id is kept so a half-done format is retried with the same id.
        id_file = data / "cluster.id"
        if not id_file.exists():
            # Kafka's Uuid text form: URL-safe base64 of 16 random bytes, unpadded.
            id_file.write_text(cluster_id())
        run(
            [
                java(), "-cp", classpath(self._lib(ctx)),
                f"-Dlog4j2.configurationFile={self._log4j2(ctx)}",
                "kafka.tools.StorageTool", "format",
                # "=" form: an id may start with "-", which argparse would take for an option
                f"--cluster-id={id_file.read_text().strip()}",
                "-c", str(self._config(ctx)),
                "--ignore-formatted",
            ],
            log=ctx.paths.logs / "install.log",
        )

    def program(self, ctx: Context) -> Program:
        return Program(
            command=[
                java(), *jvm_options(ctx.settings.kafka_heap, self._log4j2(ctx)),
                "-cp", classpath(self._lib(ctx)),
                "kafka.Kafka", str(self._config(ctx)),
            ],
            directory=ctx.data_dir(NAME),
        )

    def healthy(self, ctx: Context) -> bool:
        try:
            return 1 in metadata_brokers(ctx.settings.host, ctx.settings.kafka_port)
        except (OSError, struct.error, StackError):
            return False

    def after_start(self, ctx: Context) -> None:
        return None

    def version(self, ctx: Context) -> str:
        return installed_version(self._lib(ctx), "kafka_2.13-")


COMPONENT = Kafka()


def cluster_id() -> str:
    """A random Kafka cluster id (22 URL-safe base64 characters), never starting with "-".

    Kafka's own Uuid.randomUuid() redraws such ids too: tools read them as options.
    """
    while True:
        candidate = base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("=")
        if not candidate.startswith("-"):
            return candidate
