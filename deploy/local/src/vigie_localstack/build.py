"""Fetch and build from the package registries into the cache: Maven Central, the Go proxy.

Every build is keyed by a hash of its inputs, so a second install is a no-op and works offline.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import threading
from pathlib import Path

from .component import Context, StackError, run

# Concurrent Maven runs sharing one local repository can corrupt downloads.
_MAVEN_LOCK = threading.Lock()


def _fingerprint(*inputs: Path | str) -> str:
    digest = hashlib.sha256()
    for item in inputs:
        if isinstance(item, Path):
            for path in sorted(item.rglob("*")) if item.is_dir() else [item]:
                if path.is_file():
                    digest.update(path.name.encode())
                    digest.update(path.read_bytes())
        else:
            digest.update(item.encode())
    return digest.hexdigest()[:16]


def _done(marker: Path, fingerprint: str) -> bool:
    return marker.exists() and marker.read_text().strip() == fingerprint


def maven_runtime_jars(ctx: Context, pom: Path, dest: Path) -> Path:
    """Resolve ``pom``'s runtime dependencies (jars included) into ``dest``; returns ``dest``."""
    marker = dest / ".installed"
    fingerprint = _fingerprint(pom)
    if _done(marker, fingerprint):
        return dest
    with _MAVEN_LOCK:
        if dest.exists():
            shutil.rmtree(dest)
        dest.mkdir(parents=True)
        run(
            [
                "mvn",
                "-B",
                "-q",
                "-f",
                str(pom),
                f"-Dmaven.repo.local={ctx.paths.cache / 'm2'}",
                "dependency:copy-dependencies",
                f"-DoutputDirectory={dest}",
                "-DincludeScope=runtime",
            ],
            log=ctx.paths.logs / "install.log",
        )
    if not any(dest.glob("*.jar")):
        raise StackError(f"maven resolved no jars for {pom}")
    marker.write_text(fingerprint)
    return dest


def go_env(ctx: Context) -> dict[str, str]:
    cache = ctx.paths.cache / "go"
    return {
        **os.environ,
        "GOMODCACHE": str(cache / "mod"),
        "GOCACHE": str(cache / "build"),
        "GOFLAGS": "-buildvcs=false -mod=mod",
        "CGO_ENABLED": "0",
    }


def go_build(ctx: Context, module_dir: Path, package: str, output: Path) -> Path:
    """``go build`` ``package`` inside our own wrapper module ``module_dir`` into ``output``."""
    marker = output.with_name(output.name + ".installed")
    fingerprint = _fingerprint(module_dir, package)
    if output.exists() and _done(marker, fingerprint):
        return output
    output.parent.mkdir(parents=True, exist_ok=True)
    run(
        ["go", "build", "-trimpath", "-o", str(output), package],
        cwd=module_dir,
        env=go_env(ctx),
        log=ctx.paths.logs / "install.log",
    )
    marker.write_text(fingerprint)
    return output


def go_install(ctx: Context, module_at_version: str, binary: str) -> Path:
    """``go install module@version`` with GOBIN in the stack's ``opt/bin``."""
    output = ctx.paths.bin / binary
    marker = output.with_name(binary + ".installed")
    if output.exists() and _done(marker, module_at_version):
        return output
    env = {**go_env(ctx), "GOBIN": str(ctx.paths.bin)}
    env["GOFLAGS"] = "-buildvcs=false"
    run(
        ["go", "install", "-trimpath", module_at_version],
        env=env,
        log=ctx.paths.logs / "install.log",
    )
    marker.write_text(module_at_version)
    return output


def java() -> str:
    found = shutil.which("java")
    if not found:
        raise StackError("java not found: install a JDK 17 (Debian: openjdk-17-jre-headless)")
    return found


def classpath(lib: Path) -> str:
    jars = sorted(lib.glob("*.jar"))
    if not jars:
        raise StackError(f"no jars in {lib}: run `vigie-stack install` first")
    return ":".join(str(jar) for jar in jars)


def port_open(host: str, port: int, timeout: float = 1.0) -> bool:
    import socket

    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False
