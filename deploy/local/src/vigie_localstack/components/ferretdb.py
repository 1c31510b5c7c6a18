"""FerretDB 1.x: a MongoDB wire-protocol server on PostgreSQL, built from the Go module proxy.

The real mongod is not on any registry we may use, so the stack speaks the MongoDB protocol through
FerretDB. vigie's MongoDB code must stay within the subset FerretDB 1.x supports (see STACK-NOTES).

FerretDB's own ``cmd/ferretdb``, built from the module download, panics at start (upstream issue
#2982: the generated ``build/version/version.txt`` is missing), also when built from a wrapper
module, because Go still records FerretDB as the main module of that binary. So
``deploy/local/go/ferretdb`` is a small main of our own around FerretDB's embeddable ``ferretdb``
package, pinned by its go.mod/go.sum. That package keeps its state in memory and never runs
telemetry or the HTTP debug listener: no ``--state-dir``, ``--telemetry`` or ``--debug-addr``.

Back end: PostgreSQL (database ``ferretdb`` of the stack's server), FerretDB 1.x's primary one.
The SQLite back end was tried first and dropped: guarded updates ran at 50-150/s, and after a burst
of concurrent updates ``listDatabases`` hung until FerretDB was restarted (seen here, 2026-11-26).
"""

from __future__ import annotations

import subprocess
from pathlib import Path

from pymongo import MongoClient
from pymongo.errors import PyMongoError

from ..build import go_build, port_open
from ..component import Context, Program, StackError
from .postgres import FERRETDB_DATABASE


class FerretDB:
    name = "ferretdb"
    requires: tuple[str, ...] = ("postgres",)
    # Pure Go: it listens within a second or two.
    start_timeout = 60.0

    def _binary(self, ctx: Context) -> Path:
        return ctx.paths.bin / "ferretdb"

    def _module_dir(self, ctx: Context) -> Path:
        return ctx.local_dir / "go" / "ferretdb"

    def install(self, ctx: Context) -> None:
        go_build(ctx, self._module_dir(ctx), ".", self._binary(ctx))

    def prepare(self, ctx: Context) -> None:
        # Its data lives in PostgreSQL (the postgres component creates the database); this folder
        # is only the process's working directory.
        ctx.data_dir(self.name).mkdir(parents=True, exist_ok=True)

    def program(self, ctx: Context) -> Program:
        binary = self._binary(ctx)
        if not binary.exists():
            raise StackError(f"{binary} is missing: run `vigie-stack install {self.name}`")
        data = ctx.data_dir(self.name)
        s = ctx.settings
        return Program(
            command=[
                str(binary),
                f"--listen-addr={s.host}:{s.mongo_port}",
                "--handler=postgresql",
                f"--postgresql-url={s.postgres_dsn(FERRETDB_DATABASE)}?pool_max_conns=300",
                "--log-level=info",
            ],
            directory=data,
            stopwaitsecs=30,
        )

    def healthy(self, ctx: Context) -> bool:
        s = ctx.settings
        if not port_open(s.host, s.mongo_port):
            return False
        # A real round trip over the wire protocol; directConnection skips replica-set discovery.
        client: MongoClient[dict[str, object]] = MongoClient(
            s.host, s.mongo_port, directConnection=True,
            serverSelectionTimeoutMS=1500, connectTimeoutMS=1500, socketTimeoutMS=1500,
        )
        try:
            return client.admin.command("ping").get("ok") == 1.0
        except PyMongoError:
            return False
        finally:
            client.close()

    def after_start(self, ctx: Context) -> None:
        """Nothing to do: databases and collections are created on first write."""

    def version(self, ctx: Context) -> str:
        binary = self._binary(ctx)
        if not binary.exists():
            raise StackError("ferretdb is not installed")
        # Our main prints the FerretDB module version from the binary's build information.
        result = subprocess.run(  # noqa: S603 - fixed command on our own binary
            [str(binary), "--version"], capture_output=True, text=True, check=False, timeout=10,
        )
        if result.returncode != 0 or not result.stdout.startswith("FerretDB "):
            raise StackError(f"{binary} --version failed: {result.stderr.strip()}")
        return f"{result.stdout.strip()} (MongoDB wire protocol, PostgreSQL back end)"


COMPONENT = FerretDB()
