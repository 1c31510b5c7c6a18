"""Redis (Debian package): the online feature store."""

from __future__ import annotations

import shutil
import socket
from dataclasses import dataclass

from ..component import Context, Program, StackError, command_output, require_binary


@dataclass
class Redis:
    name: str = "redis"
    requires: tuple[str, ...] = ()
    start_timeout: float = 30

    def install(self, ctx: Context) -> None:
        require_binary("redis-server", "redis-server")

    def prepare(self, ctx: Context) -> None:
        data = ctx.data_dir(self.name)
        data.mkdir(parents=True, exist_ok=True)
        s = ctx.settings
        (data / "redis.conf").write_text(
            "\n".join(
                [
                    f"bind {s.host}",
                    f"port {s.redis_port}",
                    "protected-mode no",
                    "daemonize no",
                    "supervised no",
                    f"dir {data}",
                    # features survive a restart: append-only file, fsync every second
                    "appendonly yes",
                    "appendfsync everysec",
                    'save ""',
                    "loglevel notice",
                    'logfile ""',
                    "",
                ]
            )
        )

    def program(self, ctx: Context) -> Program:
        binary = shutil.which("redis-server")
        if binary is None:
            raise StackError("redis-server is not installed")
        return Program(command=[binary, str(ctx.data_dir(self.name) / "redis.conf")])

    def healthy(self, ctx: Context) -> bool:
        try:
            with socket.create_connection((ctx.settings.host, ctx.settings.redis_port), 1) as conn:
                conn.sendall(b"PING\r\n")
                return conn.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def after_start(self, ctx: Context) -> None:
        if not self.healthy(ctx):
            raise StackError("redis stopped answering PING")

    def version(self, ctx: Context) -> str:
        # "Redis server v=7.0.15 sha=... malloc=..." → "Redis 7.0.15"
        words = command_output(["redis-server", "--version"]).split()
        found = [w.removeprefix("v=") for w in words if w.startswith("v=")]
        return f"Redis {found[0]}" if found else "?"


COMPONENT = Redis()
