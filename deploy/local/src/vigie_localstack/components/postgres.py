"""PostgreSQL (Debian package) as the OLTP database, with logical decoding for Debezium."""

from __future__ import annotations

import os
import pwd
import shutil
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from ..build import port_open
from ..component import Context, Program, StackError, apt_install, command_output, run

# The server refuses to run as root; the Debian package creates this account.
OS_USER = "postgres"
#: FerretDB keeps its MongoDB databases here, apart from the OLTP database.
FERRETDB_DATABASE = "ferretdb"

# FerretDB 1.x looks a document up by ``_id`` with jsonb containment (``_jsonb -> '_id' @> $2``),
# which the btree index it creates on ``_id`` cannot serve: every get, guarded upsert and lookup
# by id scanned the whole collection (1 s per lookup at 150k documents, quadratic over a
# replay). A GIN index on the same expression serves it (~0.05 ms). An event trigger gives every
# table FerretDB creates one; ``_index_ferretdb_ids`` adds the missing ones to existing tables.
_ID_INDEX_USING = "USING gin ((_jsonb -> '_id') jsonb_path_ops)"
# Existing tables are indexed concurrently (FerretDB keeps writing); the trigger cannot be.
_ID_INDEX = "CREATE INDEX CONCURRENTLY IF NOT EXISTS {name} ON {table} " + _ID_INDEX_USING
_ID_INDEX_TRIGGER = r"""
-- the index's name, for the trigger and for existing tables alike (within 63 bytes)
CREATE OR REPLACE FUNCTION public.vigie_ferretdb_id_index_name(rel name) RETURNS name
LANGUAGE sql IMMUTABLE AS $$ SELECT (left(rel, 56) || '_id_gin')::name $$;
CREATE OR REPLACE FUNCTION vigie_ferretdb_id_index() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
  obj record;
  rel name;
BEGIN
  FOR obj IN SELECT * FROM pg_event_trigger_ddl_commands() WHERE command_tag = 'CREATE TABLE'
  LOOP
    SELECT relname INTO rel FROM pg_class WHERE oid = obj.objid;
    IF rel NOT LIKE '\_ferretdb%' AND EXISTS (
      SELECT 1 FROM pg_attribute WHERE attrelid = obj.objid AND attname = '_jsonb'
    ) THEN
      EXECUTE format(
        'CREATE INDEX IF NOT EXISTS %I ON %s ' || USING_CLAUSE,
        public.vigie_ferretdb_id_index_name(rel), obj.object_identity
      );
    END IF;
  END LOOP;
END $$;
DROP EVENT TRIGGER IF EXISTS vigie_ferretdb_id_index;
CREATE EVENT TRIGGER vigie_ferretdb_id_index ON ddl_command_end
  WHEN TAG IN ('CREATE TABLE') EXECUTE FUNCTION vigie_ferretdb_id_index();
""".replace("USING_CLAUSE", "'" + _ID_INDEX_USING.replace("'", "''") + "'")


def _bindir() -> Path:
    candidates = sorted(
        Path("/usr/lib/postgresql").glob("*/bin/postgres"), key=lambda p: int(p.parent.parent.name)
    )
    if not candidates:
        raise StackError("PostgreSQL server not installed")
    return candidates[-1].parent


@dataclass
class Postgres:
    name: str = "postgres"
    requires: tuple[str, ...] = ()
    start_timeout: float = 60

    def _datadir(self, ctx: Context) -> Path:
        return ctx.data_dir(self.name) / "pgdata"

    def _sockdir(self, ctx: Context) -> Path:
        return ctx.data_dir(self.name) / "socket"

    def install(self, ctx: Context) -> None:
        try:
            _bindir()
        except StackError:
            apt_install("postgresql")
        _bindir()

    def prepare(self, ctx: Context) -> None:
        root = ctx.data_dir(self.name)
        datadir = self._datadir(ctx)
        user = pwd.getpwnam(OS_USER)
        for path in (root, self._sockdir(ctx)):
            path.mkdir(parents=True, exist_ok=True)
            os.chown(path, user.pw_uid, user.pw_gid)
        if not (datadir / "PG_VERSION").exists():
            if datadir.exists():
                shutil.rmtree(datadir)
            run(
                [
                    str(_bindir() / "initdb"),
                    "-D",
                    str(datadir),
                    "-U",
                    OS_USER,
                    "--auth-local=trust",
                    "--auth-host=scram-sha-256",
                    "--encoding=UTF8",
                    "--locale=C.UTF-8",
                ],
                user=OS_USER,
                log=ctx.paths.logs / "install.log",
            )
        s = ctx.settings
        conf = datadir / "vigie.conf"
        conf.write_text(
            "\n".join(
                [
                    f"listen_addresses = '{s.host}'",
                    f"port = {s.postgres_port}",
                    f"unix_socket_directories = '{self._sockdir(ctx)}'",
                    "wal_level = logical",
                    "max_wal_senders = 10",
                    "max_replication_slots = 10",
                    "shared_buffers = 128MB",
                    "max_connections = 400",
                    "logging_collector = off",
                    "log_min_messages = warning",
                    "",
                ]
            )
        )
        os.chown(conf, user.pw_uid, user.pw_gid)
        main_conf = datadir / "postgresql.conf"
        include = "include = 'vigie.conf'"
        if include not in main_conf.read_text():
            with main_conf.open("a") as fh:
                fh.write(f"\n{include}\n")

    def program(self, ctx: Context) -> Program:
        return Program(
            command=[str(_bindir() / "postgres"), "-D", str(self._datadir(ctx))],
            user=OS_USER,
            stopsignal="INT",  # "fast" shutdown: abort sessions, checkpoint, exit
        )

    def _admin(
        self, ctx: Context, dbname: str = "postgres"
    ) -> psycopg.Connection[tuple[object, ...]]:
        return psycopg.connect(
            host=str(self._sockdir(ctx)),
            port=ctx.settings.postgres_port,
            user=OS_USER,
            dbname=dbname,
            connect_timeout=2,
            autocommit=True,
        )

    def healthy(self, ctx: Context) -> bool:
        if not port_open(ctx.settings.host, ctx.settings.postgres_port):
            return False
        try:
            with self._admin(ctx) as conn:
                conn.execute("SELECT 1")
        except psycopg.Error:
            return False
        return True

    def after_start(self, ctx: Context) -> None:
        s = ctx.settings
        with self._admin(ctx) as conn:
            exists = conn.execute(
                "SELECT 1 FROM pg_roles WHERE rolname = %s", (s.postgres_user,)
            ).fetchone()
            verb = "ALTER" if exists else "CREATE"
            conn.execute(
                sql.SQL(verb + " ROLE {} WITH LOGIN SUPERUSER REPLICATION PASSWORD {}").format(
                    sql.Identifier(s.postgres_user), sql.Literal(s.postgres_password)
                )
            )
            for dbname in (s.postgres_db, FERRETDB_DATABASE):
                if not conn.execute(
                    "SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)
                ).fetchone():
                    conn.execute(
                        sql.SQL("CREATE DATABASE {} OWNER {}").format(
                            sql.Identifier(dbname), sql.Identifier(s.postgres_user)
                        )
                    )
            # FerretDB runs every update as its own transaction; waiting for each WAL flush held
            # it at ~70 updates/s on this disk, ~800/s without. A crash of this dev server can
            # lose the last ~0.6 s of MongoDB-side writes (never corrupt them); the OLTP database
            # keeps full durability.
            conn.execute(
                sql.SQL("ALTER DATABASE {} SET synchronous_commit = off").format(
                    sql.Identifier(FERRETDB_DATABASE)
                )
            )
        self._index_ferretdb_ids(ctx)
        schema = (ctx.local_dir / "sql" / "oltp.sql").read_text()
        with self._admin(ctx, s.postgres_db) as conn:
            conn.execute(sql.SQL("SET ROLE {}").format(sql.Identifier(s.postgres_user)))
            conn.execute(schema.encode())

    def _index_ferretdb_ids(self, ctx: Context) -> None:
        with self._admin(ctx, FERRETDB_DATABASE) as conn:
            conn.execute(_ID_INDEX_TRIGGER.encode())
            tables = conn.execute(
                "SELECT c.oid::regclass::text, public.vigie_ferretdb_id_index_name(c.relname)"
                " FROM pg_class c"
                " JOIN pg_attribute a ON a.attrelid = c.oid AND a.attname = '_jsonb'"
                " WHERE c.relkind = 'r' AND c.relname NOT LIKE '\\_ferretdb%'"
            ).fetchall()
            for table, index in tables:
                conn.execute(
                    sql.SQL(_ID_INDEX).format(
                        name=sql.Identifier(str(index)),
                        table=sql.SQL(str(table)),
                    )
                )

    def version(self, ctx: Context) -> str:
        return command_output([str(_bindir() / "postgres"), "--version"])


COMPONENT = Postgres()
