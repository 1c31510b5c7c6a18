"""supervisord as the process supervisor of the stack: one config, one socket, one log folder."""

from __future__ import annotations

import os
import resource
import shlex
import subprocess
import sys
import time
import xmlrpc.client
from collections.abc import Iterable
from typing import Any, cast

from supervisor.xmlrpc import SupervisorTransport

from .component import Component, Context, StackError


def _env_value(value: str) -> str:
    """A value for supervisord's ``environment=`` (its parser takes shell-like quoting)."""
    if '"' in value and "'" in value:
        raise StackError(f"an environment value cannot hold both quote kinds: {value!r}")
    return f"'{value}'" if '"' in value else f'"{value}"'


class Supervisor:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx
        self.conf = ctx.paths.run / "supervisord.conf"
        self.socket = ctx.paths.run / "supervisor.sock"
        self.pidfile = ctx.paths.run / "supervisord.pid"

    def _call(self, method: str, *args: Any) -> Any:
        """One XML-RPC call on a fresh connection, closed afterwards (no leaked sockets)."""
        transport = SupervisorTransport(None, None, f"unix://{self.socket}")
        with xmlrpc.client.ServerProxy("http://127.0.0.1", transport=transport) as proxy:
            return getattr(proxy.supervisor, method)(*args)

    def running(self) -> bool:
        if not self.socket.exists():
            return False
        try:
            self._call("getState")
        except (OSError, xmlrpc.client.Fault):
            return False
        return True

    def write_config(self, components: Iterable[Component]) -> None:
        lines = [
            "[unix_http_server]",
            f"file={self.socket}",
            "chmod=0700",
            "[supervisord]",
            f"logfile={self.ctx.paths.logs / 'supervisord.log'}",
            f"pidfile={self.pidfile}",
            f"directory={self.ctx.paths.run}",
            "childlogdir=" + str(self.ctx.paths.logs),
            "minfds=4096",
            "[rpcinterface:supervisor]",
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface",
        ]
        for comp in components:
            prog = comp.program(self.ctx)
            env = ",".join(f"{k}={_env_value(v)}" for k, v in prog.env.items())
            lines += [
                f"[program:{comp.name}]",
                "command=" + " ".join(shlex.quote(part) for part in prog.command),
                "autostart=false",
                "autorestart=unexpected",
                "startsecs=3",
                "startretries=2",
                f"stopsignal={prog.stopsignal}",
                f"stopwaitsecs={prog.stopwaitsecs}",
                "stopasgroup=true",
                "killasgroup=true",
                "redirect_stderr=true",
                f"stdout_logfile={self.ctx.log_file(comp.name)}",
                "stdout_logfile_maxbytes=50MB",
                "stdout_logfile_backups=2",
            ]
            if env:
                lines.append(f"environment={env}")
            if prog.user:
                lines.append(f"user={prog.user}")
            if prog.directory:
                lines.append(f"directory={prog.directory}")
        # %-signs are interpolation in supervisord's ini; none of ours are meant that way.
        text = "\n".join(line.replace("%", "%%") for line in lines) + "\n"
        self.conf.write_text(text)

    def ensure_started(self) -> None:
        if self.running():
            self._update()
            return
        # Cassandra and Kafka want many open files: give the servers the hard limit.
        _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        result = subprocess.run(  # noqa: S603 - our own interpreter and config
            [sys.executable, "-m", "supervisor.supervisord", "-c", str(self.conf)],
            check=False,
            capture_output=True,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        if result.returncode != 0:
            raise StackError(f"supervisord did not start: {result.stdout}{result.stderr}")
        deadline = time.monotonic() + 20
        while not self.running():
            if time.monotonic() > deadline:
                raise StackError(f"supervisord did not start; see {self.ctx.paths.logs}")
            time.sleep(0.2)

    def _update(self) -> None:
        """Apply a changed config: add new programs, restart changed ones, drop removed ones."""
        added, changed, removed = self._call("reloadConfig")[0]
        for name in removed:
            self._call("stopProcessGroup", name)
            self._call("removeProcessGroup", name)
        for name in changed:
            self._call("stopProcessGroup", name)
            self._call("removeProcessGroup", name)
            self._call("addProcessGroup", name)
        for name in added:
            self._call("addProcessGroup", name)

    def info(self, name: str) -> dict[str, Any] | None:
        if not self.running():
            return None
        try:
            return cast(dict[str, Any], self._call("getProcessInfo", name))
        except xmlrpc.client.Fault:
            return None

    def start(self, name: str) -> None:
        info = self.info(name)
        if info is not None and info["statename"] in ("RUNNING", "STARTING"):
            return
        try:
            self._call("startProcess", name, True)
        except xmlrpc.client.Fault as exc:
            raise StackError(
                f"{name} did not start ({exc.faultString}); see {self.ctx.log_file(name)}"
            ) from exc

    def stop(self, name: str) -> None:
        info = self.info(name)
        if info is None or info["statename"] not in ("RUNNING", "STARTING", "BACKOFF"):
            return
        self._call("stopProcess", name, True)

    def shutdown(self) -> None:
        if not self.running():
            return
        self._call("shutdown")
        deadline = time.monotonic() + 30
        while self.socket.exists() and time.monotonic() < deadline:
            time.sleep(0.2)
