"""The Helm charts lint, render and validate offline; the validator itself catches broken objects.

Needs no server, only the helm binary (``go install``-ed into the stack's opt/bin on first use).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from vigie_localstack import helm
from vigie_localstack.component import Context, StackError
from vigie_localstack.settings import Paths, StackSettings

# The first test may build helm with `go install` (over 4 minutes on 2 busy cores).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

EXAMPLE = helm.HELM_DIR / "example-service"


@pytest.fixture(scope="module")
def ctx() -> Context:
    settings = StackSettings()
    paths = Paths(settings.home)
    paths.ensure()
    context = Context(settings=settings, paths=paths)
    helm.ensure_helm(context)
    return context


@pytest.fixture(scope="module")
def example(ctx: Context) -> list[dict[str, Any]]:
    return helm.render(ctx, EXAMPLE)


def _one(docs: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [doc for doc in docs if doc["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, got {[d['kind'] for d in docs]}"
    return found[0]


def test_charts_are_found() -> None:
    assert EXAMPLE in helm.charts()
    assert helm.HELM_DIR / "vigie-lib" in helm.charts("library")
    assert helm.HELM_DIR / "vigie-lib" not in helm.charts()


@pytest.mark.parametrize("chart", [*helm.charts(), *helm.charts("library")], ids=lambda p: p.name)
def test_chart_has_no_problems(ctx: Context, chart: Path) -> None:
    assert helm.check_chart(ctx, chart) == []


def test_example_renders_every_object(example: list[dict[str, Any]]) -> None:
    kinds = sorted(doc["kind"] for doc in example)
    assert kinds == sorted([
        "ConfigMap", "Deployment", "HorizontalPodAutoscaler", "NetworkPolicy",
        "PodDisruptionBudget", "Secret", "Service", "ServiceAccount", "ServiceMonitor",
    ])


def test_deployment_is_hardened_and_probed(example: list[dict[str, Any]]) -> None:
    pod = _one(example, "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert {"name": "tmp", "mountPath": "/tmp"} in container["volumeMounts"]  # noqa: S108
    assert {"configMapRef": {"name": "example-service-config"}} in container["envFrom"]
    assert {"secretRef": {"name": "example-service-secret"}} in container["envFrom"]
    annotations = _one(example, "Deployment")["spec"]["template"]["metadata"]["annotations"]
    assert len(annotations["checksum/config"]) == 64


def test_hpa_scales_on_cpu_and_kafka_lag(example: list[dict[str, Any]]) -> None:
    hpa = _one(example, "HorizontalPodAutoscaler")
    assert hpa["apiVersion"] == "autoscaling/v2"
    metrics = {m["type"]: m for m in hpa["spec"]["metrics"]}
    assert metrics["Resource"]["resource"]["name"] == "cpu"
    lag = metrics["External"]["external"]
    assert lag["metric"]["name"] == "kafka_consumergroup_lag"
    assert lag["target"] == {"type": "AverageValue", "averageValue": "1000"}
    assert "replicas" not in _one(example, "Deployment")["spec"]


def test_config_change_changes_checksum(ctx: Context, example: list[dict[str, Any]]) -> None:
    changed = helm.render(ctx, EXAMPLE, "--set", "config.VIGIE_LOG_LEVEL=DEBUG")
    key = "checksum/config"
    before = _one(example, "Deployment")["spec"]["template"]["metadata"]["annotations"][key]
    after = _one(changed, "Deployment")["spec"]["template"]["metadata"]["annotations"][key]
    assert before != after


def test_validator_catches_schema_errors(example: list[dict[str, Any]]) -> None:
    assert helm.validate_manifests(example) == []
    broken = copy.deepcopy(_one(example, "Deployment"))
    container = broken["spec"]["template"]["spec"]["containers"][0]
    container["ports"][0]["containerPort"] = "http"  # must be an integer
    container["imagePullPolcy"] = "Always"  # typo: an unknown field in strict mode
    problems = helm.validate_manifest(broken)
    assert any("containerPort" in p for p in problems), problems
    broken["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"] = 8080
    assert any("imagePullPolcy" in p for p in helm.validate_manifest(broken))


def test_validator_catches_broken_service_monitor(example: list[dict[str, Any]]) -> None:
    monitor = copy.deepcopy(_one(example, "ServiceMonitor"))
    monitor["spec"]["endpoints"][0]["interval"] = "30 seconds"
    del monitor["spec"]["selector"]
    problems = helm.validate_manifest(monitor)
    assert any("interval" in p for p in problems), problems
    assert any("selector" in p for p in problems), problems


def test_validator_catches_insecure_pod(example: list[dict[str, Any]]) -> None:
    deployment = copy.deepcopy(_one(example, "Deployment"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["securityContext"]["readOnlyRootFilesystem"] = False
    del container["readinessProbe"]
    problems = helm.validate_manifest(deployment)
    assert "container example-service: readOnlyRootFilesystem is not true" in problems
    assert "container example-service: no readinessProbe" in problems


def test_validator_catches_dangling_selector(example: list[dict[str, Any]]) -> None:
    docs = copy.deepcopy(example)
    _one(docs, "Service")["spec"]["selector"] = {"app.kubernetes.io/name": "nothing"}
    assert any("matches no rendered pod" in p for p in helm.validate_manifests(docs))


def test_values_schema_rejects_bad_values(ctx: Context) -> None:
    # helm itself validates values against values.schema.json before rendering.
    with pytest.raises(StackError, match="probes"):
        helm.render(ctx, EXAMPLE, "--set", "probes.liveness.path=health")
    with pytest.raises(StackError, match="replicaCont"):
        helm.render(ctx, EXAMPLE, "--set", "replicaCont=3")
