"""What every server of the local stack provides to the stack manager."""

from __future__ import annotations

import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from .settings import LOCAL_DIR, Paths, StackSettings


class StackError(Exception):
    """A step of install / up / down failed; the message says which and why."""


@dataclass(frozen=True)
class Context:
    settings: StackSettings
    paths: Paths
    local_dir: Path = LOCAL_DIR

    def data_dir(self, name: str) -> Path:
        return self.paths.data / name

    def log_file(self, name: str) -> Path:
        return self.paths.logs / f"{name}.log"


@dataclass(frozen=True)
class Program:
    """A long-running process, as supervisord will run it (never daemonizing itself)."""

    command: list[str]
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    directory: Path | None = None
    stopsignal: str = "TERM"
    stopwaitsecs: int = 60


class Component(Protocol):
    """One server. Each step is idempotent: running it twice does no more than running it once."""

    @property
    def name(self) -> str: ...

    @property
    def requires(self) -> tuple[str, ...]: ...

    @property
    def start_timeout(self) -> float:
        """How long ``up`` waits for the first healthy answer."""

    def install(self, ctx: Context) -> None:
        """Download / build into the cache; fast and offline when already done."""

    def prepare(self, ctx: Context) -> None:
        """Write configuration and initialise the data directory (once)."""

    def program(self, ctx: Context) -> Program:
        """The command supervisord runs."""

    def healthy(self, ctx: Context) -> bool:
        """A quick real check that the server answers its protocol."""

    def after_start(self, ctx: Context) -> None:
        """Work that needs the running server (schema, connector registration)."""

    def version(self, ctx: Context) -> str:
        """The installed version, for ``status``."""


def run(
    cmd: list[str],
    *,
    cwd: Path | None = None,
    env: dict[str, str] | None = None,
    user: str | None = None,
    log: Path | None = None,
) -> None:
    """Run an install/prepare command; on failure raise with the tail of its output."""
    if user is not None:
        cmd = ["runuser", "-u", user, "--", *cmd]
    result = subprocess.run(  # noqa: S603 - commands are built by this package, not from input
        cmd, cwd=cwd, env=env, capture_output=True, text=True, check=False
    )
    if log is not None:
        with log.open("a") as fh:
            fh.write(f"$ {' '.join(cmd)}\n{result.stdout}{result.stderr}\n")
    if result.returncode != 0:
        tail = (result.stdout + result.stderr).strip().splitlines()[-25:]
        raise StackError(
            f"command failed ({result.returncode}): {' '.join(cmd)}\n" + "\n".join(tail)
        )


def require_binary(name: str, apt_package: str) -> str:
    """The path of a system binary, installing its Debian package when it is missing."""
    found = shutil.which(name)
    if found:
        return found
    apt_install(apt_package)
    found = shutil.which(name)
    if not found:
        raise StackError(f"{name} not found after installing the Debian package {apt_package}")
    return found


def apt_install(*packages: str) -> None:
    env = {"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
    run(["apt-get", "update", "-q"], env=env)
    run(["apt-get", "install", "-y", "-q", "--no-install-recommends", *packages], env=env)


def command_output(cmd: list[str]) -> str:
    """The first line a ``--version``-like command prints."""
    result = subprocess.run(cmd, capture_output=True, text=True, check=False)  # noqa: S603
    return (
        (result.stdout or result.stderr).strip().splitlines()[0] if result.returncode == 0 else "?"
    )
