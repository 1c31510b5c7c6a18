"""Apache Cassandra 5.0, one node, from Maven Central jars, run on the JDK like `bin/cassandra`."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path
from string import Template

from ..build import classpath, java, maven_runtime_jars, port_open
from ..component import Context, Program, StackError

NAME = "cassandra"
_JAR_PREFIX = "cassandra-all-"


def mebibytes(size: str) -> int:
    """A JVM size (``1G``, ``768m``, ``1048576k``) in MiB."""
    match = re.fullmatch(r"(\d+)([kKmMgG])", size.strip())
    if not match:
        raise StackError(f"cassandra_heap must look like 1G or 768m, not {size!r}")
    value, unit = int(match[1]), match[2].lower()
    return {"k": value // 1024, "m": value, "g": value * 1024}[unit]


def young_gen_mib(heap: str) -> int:
    """cassandra-env.sh's young generation: min(100 MiB per core, a quarter of the heap)."""
    return min(100 * (os.cpu_count() or 1), mebibytes(heap) // 4)


def static_jvm_options(options_file: Path) -> list[str]:
    """The flags of a Cassandra-style ``jvm*.options`` file: lines starting with ``-``."""
    lines = (line.strip() for line in options_file.read_text().splitlines())
    return [line for line in lines if line.startswith("-")]


def release_version(host: str, port: int, timeout: float = 2.0) -> str | None:
    """``release_version`` of the node at ``host:port`` over CQL (cassandra-driver); None if it
    does not answer."""
    # Imported here: only health checks need the driver, and importing it costs ~0.2 s.
    from cassandra import DriverException, ProtocolVersion
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile, NoHostAvailable
    from cassandra.policies import WhiteListRoundRobinPolicy
    from cassandra.protocol import ErrorMessage

    profile = ExecutionProfile(
        load_balancing_policy=WhiteListRoundRobinPolicy([host]), request_timeout=timeout
    )
    cluster = Cluster(
        [host],
        port=port,
        protocol_version=ProtocolVersion.V5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        connect_timeout=timeout,
        control_connection_timeout=timeout,
        # A health probe needs neither the schema nor the token ring: skip fetching them.
        schema_metadata_enabled=False,
        token_metadata_enabled=False,
    )
    try:
        session = cluster.connect()
        row = session.execute("SELECT release_version FROM system.local").one()
    except (NoHostAvailable, DriverException, ErrorMessage, OSError):
        return None
    finally:
        cluster.shutdown()
    return str(row.release_version) if row is not None else None


class Cassandra:
    name = NAME
    requires: tuple[str, ...] = ()
    # First start creates the system keyspaces and compiles a lot on 2 shared cores.
    start_timeout = 180.0

    def _lib(self, ctx: Context) -> Path:
        return ctx.paths.opt / NAME / "lib"

    def _conf_dir(self, ctx: Context) -> Path:
        return ctx.data_dir(NAME) / "conf"

    def install(self, ctx: Context) -> None:
        maven_runtime_jars(ctx, ctx.local_dir / "maven" / NAME / "pom.xml", self._lib(ctx))

    def prepare(self, ctx: Context) -> None:
        data = ctx.data_dir(NAME)
        conf = self._conf_dir(ctx)
        conf.mkdir(parents=True, exist_ok=True)
        # Cassandra looks for trigger jars here (and warns on every schema change when absent).
        (data / "triggers").mkdir(exist_ok=True)
        s = ctx.settings
        template = Template((ctx.local_dir / "conf" / NAME / "cassandra.yaml").read_text())
        (conf / "cassandra.yaml").write_text(template.substitute(
            host=s.host,
            native_port=s.cassandra_port,
            storage_port=s.cassandra_storage_port,
            data_dir=data,
        ))
        shutil.copyfile(ctx.local_dir / "conf" / NAME / "logback.xml", conf / "logback.xml")

    def program(self, ctx: Context) -> Program:
        lib = self._lib(ctx)
        jamm = sorted(lib.glob("jamm-*.jar"))
        if not jamm:
            raise StackError(f"jamm not in {lib}: run `vigie-stack install {NAME}` first")
        heap = ctx.settings.cassandra_heap
        data, conf = ctx.data_dir(NAME), self._conf_dir(ctx)
        return Program(
            command=[
                java(),
                *static_jvm_options(ctx.local_dir / "conf" / NAME / "jvm-server.options"),
                # Upstream pins -Xms to -Xmx, but the daemon mlockall()s what is mapped at start
                # (unconditionally, and as root it succeeds): a full initial heap would stay
                # resident on this shared machine whether used or not. A quarter grows on demand.
                f"-Xms{mebibytes(heap) // 4}m",
                f"-Xmx{heap}",
                f"-Xmn{young_gen_mib(heap)}m",
                # As bin/cassandra: jamm measures object sizes for memtable and cache accounting.
                f"-javaagent:{jamm[0]}",
                # Local-only JMX (nodetool), bound to the loopback interface by Cassandra itself.
                f"-Dcassandra.jmx.local.port={ctx.settings.cassandra_jmx_port}",
                f"-Dcassandra.config={(conf / 'cassandra.yaml').as_uri()}",
                f"-Dlogback.configurationFile={conf / 'logback.xml'}",
                # Without it the daemon closes stdout/stderr, and supervisord would log nothing.
                "-Dcassandra-foreground=yes",
                f"-Dcassandra.storagedir={data}",
                f"-Dcassandra.logdir={ctx.paths.logs}",
                f"-Dcassandra.triggers_dir={data / 'triggers'}",
                "-cp", classpath(lib),
                "org.apache.cassandra.service.CassandraDaemon",
            ],
            directory=data,
            # Drain (flush memtables) on TERM takes a while on a loaded node.
            stopwaitsecs=90,
        )

    def healthy(self, ctx: Context) -> bool:
        host, port = ctx.settings.host, ctx.settings.cassandra_port
        # The port check is cheap and keeps the driver (and its warnings) out of the start-up loop.
        if not port_open(host, port, timeout=0.5):
            return False
        return release_version(host, port) is not None

    def after_start(self, ctx: Context) -> None:
        return None

    def version(self, ctx: Context) -> str:
        jars = sorted(self._lib(ctx).glob(f"{_JAR_PREFIX}*.jar"))
        if not jars:
            raise StackError(f"no {_JAR_PREFIX}*.jar in {self._lib(ctx)}: run vigie-stack install")
        return jars[0].name.removeprefix(_JAR_PREFIX).removesuffix(".jar")


COMPONENT = Cassandra()
