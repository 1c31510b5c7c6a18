"""The helm CLI (from the Go module proxy) and an offline checker of the charts in ``deploy/helm``.

``check_chart`` lints a chart (``--strict``), renders it with its default values and with every
``ci/*-values.yaml`` (the chart-testing convention), and validates each rendered object without a
cluster: against the Kubernetes JSON schemas of ``kubernetes-validate`` in strict mode (unknown
fields are errors), against our own schema for the CRDs that are not in those (ServiceMonitor), and
against vigie's rules (hardened, probed, resourced pods; selectors that select something).

``python -m vigie_localstack.helm [chart ...]`` checks every chart and exits 1 on a problem.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

from . import build
from .component import Context, StackError
from .settings import REPO_ROOT, Paths, StackSettings

HELM_MODULE = "helm.sh/helm/v3/cmd/helm@v3.22.0"
#: The Kubernetes version the charts are linted, rendered and validated for.
KUBE_VERSION = "1.31.0"
NAMESPACE = "vigie"
HELM_DIR = REPO_ROOT / "deploy" / "helm"
#: Schemas of the custom resources the charts render, keyed by (apiVersion, kind).
CUSTOM_SCHEMAS: dict[tuple[str, str], Path] = {
    ("monitoring.coreos.com/v1", "ServiceMonitor"):
        HELM_DIR / "schemas" / "servicemonitor-monitoring-v1.json",
}
#: Labels every object must carry (the library's ``vigie-lib.labels``).
REQUIRED_LABELS = (
    "app.kubernetes.io/name", "app.kubernetes.io/instance", "app.kubernetes.io/managed-by",
    "app.kubernetes.io/part-of", "helm.sh/chart",
)

Manifest = dict[str, Any]


def ensure_helm(ctx: Context) -> Path:
    """The helm binary, built once by ``go install`` into ``opt/bin`` (slow once, then cached)."""
    return build.go_install(ctx, HELM_MODULE, "helm")


def _meta(chart: Path) -> dict[str, Any]:
    meta: dict[str, Any] = yaml.safe_load((chart / "Chart.yaml").read_text())
    return meta


def _chart_type(chart: Path) -> str:
    return str(_meta(chart).get("type") or "application")


def charts(kind: str = "application") -> list[Path]:
    """The charts of ``deploy/helm`` of that type (``application`` or ``library``)."""
    found = (path.parent for path in HELM_DIR.glob("*/Chart.yaml"))
    return sorted(chart for chart in found if _chart_type(chart) == kind)


def _helm(ctx: Context, *args: str | Path) -> subprocess.CompletedProcess[str]:
    home = ctx.paths.cache / "helm"
    # Own config/cache/data homes: no user repositories.yaml, so nothing tries to reach a repo.
    env = {
        "PATH": "/usr/bin:/bin",
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_DATA_HOME": str(home / "data"),
        "KUBECONFIG": "/dev/null",
    }
    cmd = [str(ensure_helm(ctx)), *map(str, args)]
    return subprocess.run(  # noqa: S603 - fixed helm sub-commands on the project's own charts
        cmd, env=env, capture_output=True, text=True, check=False
    )


def _stage(chart: Path, tmp: Path) -> Path:
    """A copy of ``deploy/helm`` in which the chart's ``file://`` dependencies get vendored.

    ``helm dependency update`` packages a ``file://`` dependency from its folder without any
    network, but writes ``charts/*.tgz`` and ``Chart.lock``: doing it in a copy keeps the tree
    clean and always uses the library as it is now, never a stale package.
    """
    staged_root = tmp / "helm"
    shutil.copytree(chart.parent, staged_root,
                    ignore=shutil.ignore_patterns("charts", "Chart.lock", "*.tgz"))
    return staged_root / chart.name


def _problems_of_run(what: str, result: subprocess.CompletedProcess[str]) -> list[str]:
    if result.returncode == 0:
        return []
    return [f"{what} failed ({result.returncode}): {(result.stdout + result.stderr).strip()}"]


def values_files(chart: Path) -> list[Path | None]:
    """The renders to check: default values, then each ``ci/*-values.yaml`` on top of them."""
    return [None, *sorted((chart / "ci").glob("*-values.yaml"))]


def render(ctx: Context, chart: Path, *extra: str | Path) -> list[Manifest]:
    """``helm template`` of ``chart`` (extra args: ``-f file``, ``--set k=v``) as objects."""
    with tempfile.TemporaryDirectory() as tmp:
        staged = _stage(chart, Path(tmp))
        deps = _helm(ctx, "dependency", "update", "--skip-refresh", staged)
        if deps.returncode != 0:
            raise StackError("\n".join(_problems_of_run("helm dependency update", deps)))
        out = _helm(ctx, "template", chart.name, staged, "--namespace", NAMESPACE,
                    "--kube-version", KUBE_VERSION, *extra)
        if out.returncode != 0:
            raise StackError("\n".join(_problems_of_run("helm template", out)))
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def check_chart(ctx: Context, chart: Path) -> list[str]:
    """Every problem of ``chart``: lint, render, schemas, vigie's rules; empty when all is well."""
    problems: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        staged = _stage(chart, Path(tmp))
        if _meta(chart).get("dependencies"):
            deps = _helm(ctx, "dependency", "update", "--skip-refresh", staged)
            problems += _problems_of_run("helm dependency update", deps)
            if problems:
                return problems
        if _chart_type(chart) == "library":
            return _problems_of_run("helm lint", _helm(ctx, "lint", "--strict", staged))
        if not (chart / "values.schema.json").is_file():
            # Without a schema, a mistyped value key is silently ignored by the templates.
            problems.append("no values.schema.json")
        for values in values_files(chart):
            label = values.name if values else "default values"
            args: list[str | Path] = ["--namespace", NAMESPACE, "--kube-version", KUBE_VERSION]
            if values is not None:
                args += ["-f", values]
            lint = _helm(ctx, "lint", "--strict", staged, *args)
            problems += [f"{label}: {p}" for p in _problems_of_run("helm lint --strict", lint)]
            out = _helm(ctx, "template", chart.name, staged, *args)
            if out.returncode != 0:
                problems += [f"{label}: {p}" for p in _problems_of_run("helm template", out)]
                continue
            docs = [doc for doc in yaml.safe_load_all(out.stdout) if doc]
            if not docs:
                problems.append(f"{label}: helm template rendered nothing")
            problems += [f"{label}: {p}" for p in validate_manifests(docs)]
    return problems


def validate_manifests(docs: list[Manifest]) -> list[str]:
    """Problems of a set of rendered objects: each one's schema and rules, then their links."""
    problems: list[str] = []
    for doc in docs:
        where = f"{doc.get('kind', '?')}/{(doc.get('metadata') or {}).get('name', '?')}"
        problems += [f"{where}: {p}" for p in validate_manifest(doc)]
    return problems + _links(docs)


def validate_manifest(doc: Manifest) -> list[str]:
    """Problems of one object: schema (strict), labels, and the pod rules for workloads."""
    problems = _schema_problems(doc)
    labels = (doc.get("metadata") or {}).get("labels") or {}
    problems += [f"missing label {name}" for name in REQUIRED_LABELS if name not in labels]
    pod = _pod_spec(doc)
    if pod is not None:
        problems += _pod_problems(pod, probes=doc.get("kind") not in ("Job", "CronJob"))
    return problems


def _schema_problems(doc: Manifest) -> list[str]:
    key = (str(doc.get("apiVersion")), str(doc.get("kind")))
    if key in CUSTOM_SCHEMAS:
        schema = json.loads(CUSTOM_SCHEMAS[key].read_text())
        validator = jsonschema.Draft202012Validator(schema)
        return [_error_text(err) for err in validator.iter_errors(doc)]
    try:
        kubernetes_validate.validate(doc, KUBE_VERSION, strict=True)
    except kubernetes_validate.ValidationError as err:
        return [_error_text(err)]
    except kubernetes_validate.SchemaNotFoundError as err:
        return [f"no schema for {key[1]} {key[0]} in Kubernetes {KUBE_VERSION}: {err.message}"]
    return []


def _error_text(err: Any) -> str:
    path = ".".join(str(part) for part in err.absolute_path) or "(root)"
    return f"schema: {path}: {err.message}"


def _pod_spec(doc: Manifest) -> Mapping[str, Any] | None:
    spec = doc.get("spec") or {}
    kind = doc.get("kind")
    if kind in ("Deployment", "StatefulSet", "DaemonSet", "ReplicaSet", "Job"):
        return dict((spec.get("template") or {}).get("spec") or {})
    if kind == "CronJob":
        job = (spec.get("jobTemplate") or {}).get("spec") or {}
        return dict((job.get("template") or {}).get("spec") or {})
    return None


def _pod_labels(doc: Manifest) -> Mapping[str, str]:
    spec = doc.get("spec") or {}
    if doc.get("kind") == "CronJob":
        spec = (spec.get("jobTemplate") or {}).get("spec") or {}
    metadata = (spec.get("template") or {}).get("metadata") or {}
    labels: Mapping[str, str] = metadata.get("labels") or {}
    return labels


def _pod_problems(pod: Mapping[str, Any], *, probes: bool) -> list[str]:
    """vigie's pod rules: non-root, read-only root, no capabilities, probes, requests, limits."""
    problems: list[str] = []
    pod_sc = pod.get("securityContext") or {}
    if (pod_sc.get("seccompProfile") or {}).get("type") != "RuntimeDefault":
        problems.append("pod securityContext.seccompProfile.type is not RuntimeDefault")
    for container in [*pod.get("initContainers", []), *pod.get("containers", [])]:
        name = f"container {container.get('name')}"
        sc = container.get("securityContext") or {}
        if not sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot")):
            problems.append(f"{name}: runAsNonRoot is not true")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{name}: readOnlyRootFilesystem is not true")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{name}: allowPrivilegeEscalation is not false")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{name}: capabilities do not drop ALL")
        resources = container.get("resources") or {}
        if not (resources.get("requests") or {}).keys() >= {"cpu", "memory"}:
            problems.append(f"{name}: no cpu and memory requests")
        if "memory" not in (resources.get("limits") or {}):
            problems.append(f"{name}: no memory limit")
    if probes:
        for container in pod.get("containers", []):
            for probe in ("livenessProbe", "readinessProbe"):
                if probe not in container:
                    problems.append(f"container {container.get('name')}: no {probe}")
    return problems


def _selects(selector: Mapping[str, str], labels: Mapping[str, str]) -> bool:
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _links(docs: list[Manifest]) -> list[str]:
    """Selectors and references between the rendered objects point at something rendered."""
    problems: list[str] = []
    pods = [_pod_labels(d) for d in docs if _pod_spec(d) is not None]
    names = {(d.get("kind"), (d.get("metadata") or {}).get("name")) for d in docs}
    services = [d for d in docs if d.get("kind") == "Service"]
    for doc in docs:
        kind, spec = doc.get("kind"), doc.get("spec") or {}
        where = f"{kind}/{(doc.get('metadata') or {}).get('name')}"
        selector: Mapping[str, str] | None = None
        if kind == "Service":
            selector = spec.get("selector") or {}
        elif kind in ("PodDisruptionBudget", "NetworkPolicy"):
            key = "podSelector" if kind == "NetworkPolicy" else "selector"
            selector = (spec.get(key) or {}).get("matchLabels") or {}
        if selector is not None and not any(_selects(selector, labels) for labels in pods):
            problems.append(f"{where}: selector {selector} matches no rendered pod template")
        if kind == "HorizontalPodAutoscaler":
            ref = spec.get("scaleTargetRef") or {}
            if (ref.get("kind"), ref.get("name")) not in names:
                problems.append(f"{where}: scaleTargetRef {ref} is not rendered")
        if kind == "ServiceMonitor":
            wanted = (spec.get("selector") or {}).get("matchLabels") or {}
            matched = [s for s in services
                       if _selects(wanted, (s.get("metadata") or {}).get("labels") or {})]
            if not matched:
                problems.append(f"{where}: selector {wanted} matches no rendered Service")
            ports = {p.get("name") for s in matched for p in (s.get("spec") or {}).get("ports", [])}
            for endpoint in spec.get("endpoints") or []:
                if "port" in endpoint and endpoint["port"] not in ports:
                    problems.append(f"{where}: endpoint port {endpoint['port']!r} not in Service")
    return problems


def _context() -> Context:
    settings = StackSettings()
    paths = Paths(settings.home)
    paths.ensure()
    return Context(settings=settings, paths=paths)


def _all_charts() -> Iterator[Path]:
    yield from charts("library")
    yield from charts("application")


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    ctx = _context()
    started = time.monotonic()
    helm = ensure_helm(ctx)
    print(f"helm: {helm} ({time.monotonic() - started:.1f}s)")
    targets = [Path(arg).resolve() for arg in args] or list(_all_charts())
    failed = 0
    for chart in targets:
        started = time.monotonic()
        problems = check_chart(ctx, chart)
        took = time.monotonic() - started
        print(f"{'FAIL' if problems else 'ok':<4} {chart.name} ({_chart_type(chart)}, "
              f"{len(values_files(chart)) if _chart_type(chart) == 'application' else 0} renders, "
              f"{took:.1f}s)")
        for problem in problems:
            print(f"     - {problem}")
        failed += bool(problems)
    print(f"{len(targets) - failed}/{len(targets)} charts ok (Kubernetes {KUBE_VERSION})")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
