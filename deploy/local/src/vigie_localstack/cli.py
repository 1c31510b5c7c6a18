"""``vigie-stack install|up|down|status|reset|logs``: the local stack in one command each."""

from __future__ import annotations

import argparse
import fcntl
import shutil
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .apps import APP_NAMES
from .component import Component, Context, StackError
from .registry import EVERYTHING, NAMES, closure, load
from .settings import Paths, StackSettings
from .supervisor import Supervisor


def _context() -> Context:
    settings = StackSettings()
    paths = Paths(settings.home)
    paths.ensure()
    return Context(settings=settings, paths=paths)


def _say(msg: str) -> None:
    print(f"[vigie-stack] {msg}", flush=True)


def install(ctx: Context, comps: list[Component]) -> None:
    started = time.monotonic()
    with ThreadPoolExecutor(max_workers=len(comps)) as pool:
        futures = {c.name: pool.submit(c.install, ctx) for c in comps}
        for name, fut in futures.items():
            fut.result()
            _say(f"installed {name}")
    _say(f"install done in {time.monotonic() - started:.1f}s")


def _tail(path: Path, lines: int = 30) -> str:
    if not path.exists():
        return "(no log)"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


def up(ctx: Context, comps: list[Component]) -> None:
    install(ctx, comps)
    for comp in comps:
        comp.prepare(ctx)
    sup = Supervisor(ctx)
    sup.write_config(_configurable(ctx))
    sup.ensure_started()
    started = time.monotonic()
    healthy: set[str] = set()
    launched: dict[str, float] = {}
    names = {c.name for c in comps}
    while len(healthy) < len(comps):
        for comp in comps:
            if comp.name in launched:
                continue
            if all(dep in healthy or dep not in names for dep in comp.requires):
                sup.start(comp.name)
                launched[comp.name] = time.monotonic()
        for comp in comps:
            if comp.name in healthy or comp.name not in launched:
                continue
            info = sup.info(comp.name)
            state = info["statename"] if info else "UNKNOWN"
            if state in ("FATAL", "EXITED", "BACKOFF", "STOPPED"):
                raise StackError(
                    f"{comp.name} is {state}; last lines of {ctx.log_file(comp.name)}:\n"
                    + _tail(ctx.log_file(comp.name))
                )
            if comp.healthy(ctx):
                comp.after_start(ctx)
                healthy.add(comp.name)
                _say(f"{comp.name} healthy after {time.monotonic() - launched[comp.name]:.1f}s")
            elif time.monotonic() - launched[comp.name] > comp.start_timeout:
                raise StackError(
                    f"{comp.name} not healthy after {comp.start_timeout:.0f}s; last lines of "
                    f"{ctx.log_file(comp.name)}:\n" + _tail(ctx.log_file(comp.name))
                )
        time.sleep(0.5)
    _say(f"up: {', '.join(c.name for c in comps)} in {time.monotonic() - started:.1f}s")


def _configurable(ctx: Context) -> list[Component]:
    """Every component whose program can be described now (installed ones)."""
    out = []
    for name in EVERYTHING:
        try:
            comp = load(name)
            comp.program(ctx)
        except (StackError, ImportError):
            continue
        out.append(comp)
    return out


def _configured(ctx: Context, comp: Component) -> bool:
    return Supervisor(ctx).info(comp.name) is not None


def down(ctx: Context, comps: list[Component], everything: bool) -> None:
    sup = Supervisor(ctx)
    if not sup.running():
        _say("down: supervisord is not running")
        return
    for comp in reversed(comps):
        sup.stop(comp.name)
        _say(f"stopped {comp.name}")
    if everything:
        sup.shutdown()
        _say("supervisord stopped")


def _rss_mib(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def status(ctx: Context, comps: list[Component]) -> int:
    sup = Supervisor(ctx)
    bad = 0
    print(f"{'component':<12} {'state':<9} {'pid':>7} {'rss MiB':>8} {'health':<8} version")
    for comp in comps:
        info = sup.info(comp.name)
        state = info["statename"] if info else "DOWN"
        pid = int(info["pid"]) if info and info["pid"] else 0
        rss = _rss_mib(pid) if pid else None
        ok = comp.healthy(ctx) if state == "RUNNING" else False
        # a server must be up; an app only counts when it should be running
        idle = comp.name not in NAMES and state != "RUNNING"
        bad += 0 if ok or idle else 1
        try:
            version = comp.version(ctx)
        except (StackError, OSError):
            version = "(not installed)"
        health = "ok" if ok else ("-" if idle else "FAIL")
        rss_txt = f"{rss:.0f}" if rss is not None else "-"
        print(
            f"{comp.name:<12} {state:<9} {pid:>7} {rss_txt:>8} {health:<8} {version}"
        )
    return 1 if bad else 0


def reset(ctx: Context) -> None:
    down(ctx, closure(EVERYTHING), everything=True)
    for path in (ctx.paths.data, ctx.paths.logs):
        shutil.rmtree(path, ignore_errors=True)
    ctx.paths.ensure()
    _say("reset: data and logs removed (downloads kept in cache/ and opt/)")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="vigie-stack", description=__doc__)
    sub = parser.add_subparsers(dest="cmd", required=True)
    for cmd, text in [
        ("install", "download and build the servers into the cache"),
        ("up", "install if needed, start and wait until healthy (idempotent)"),
        ("down", "stop the servers (and supervisord when all are stopped)"),
        (
            "status",
            "state, pid, memory, health and version of each server; exit 1 if any is unhealthy",
        ),
    ]:
        p = sub.add_parser(cmd, help=text)
        p.add_argument(
            "components",
            nargs="*",
            help=f"servers ({', '.join(NAMES)}; the default) or apps ({', '.join(APP_NAMES)})",
        )
        p.add_argument(
            "--apps",
            action="store_true",
            help="also vigie's services and the traffic generator (status, down: always included)",
        )
    sub.add_parser("reset", help="stop everything and delete data and logs (keeps downloads)")
    sub.add_parser("helm-check", help="lint, render and validate the Helm charts offline")
    args = parser.parse_args(argv)
    if args.cmd == "helm-check":
        # Imported here: dev tooling (kubernetes-validate); no stack lock needed.
        from . import helm

        return helm.main([])
    ctx = _context()
    # One stack command at a time: concurrent `up`s would race on supervisord's config and socket.
    lock = (ctx.paths.run / "stack.lock").open("w")
    fcntl.flock(lock, fcntl.LOCK_EX)
    try:
        if args.cmd == "reset":
            reset(ctx)
            return 0
        comps = closure(args.components or (EVERYTHING if args.apps else NAMES))
        if args.cmd in ("down", "status") and not args.components:
            # apps stop before the servers they use; status shows the apps that are configured
            comps = [c for c in closure(EVERYTHING) if c.name in NAMES or _configured(ctx, c)]
        if args.cmd == "install":
            install(ctx, comps)
        elif args.cmd == "up":
            up(ctx, comps)
        elif args.cmd == "down":
            named = [load(name) for name in args.components] if args.components else comps
            down(ctx, named, everything=not args.components)
        elif args.cmd == "status":
            return status(ctx, comps)
    except StackError as exc:
        print(f"[vigie-stack] error: {exc}", file=sys.stderr)
        return 1
    finally:
        lock.close()
    return 0
