"""The operator started with the chart's own command line and environment reconciles the FinServe examples
(run as a local process: the apiserver here has no kubelet to run the pod)."""

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.supervisor import free_port
from tests.delivery.conftest import CHART, REPO, Helm

Kubectl = Callable[..., subprocess.CompletedProcess[str]]
FINSERVE = REPO / "examples" / "finserve"


def operator_container(helm: Helm, stack: Endpoints, namespace: str) -> dict[str, Any]:
    health = free_port()
    manifest = helm(
        "template", "sg", str(CHART), "--namespace", namespace, "-f", str(CHART / "values-dev.yaml"),
        "--set", "operator.watchNamespaces={" + namespace + "}",
        "--set", f"operator.healthPort={health}", "--set", f"operator.metricsPort={free_port((health,))}",
        "--set", f"connections.kafka.bootstrapServers={stack.kafka_bootstrap}",
        "--set", f"connections.schemaRegistry.url={stack.registry_url}",
    ).stdout
    deployment = next(d for d in yaml.safe_load_all(manifest)
                      if d and d["kind"] == "Deployment" and d["metadata"]["name"].endswith("-operator"))
    container: dict[str, Any] = deployment["spec"]["template"]["spec"]["containers"][0]
    return container


def pod_env(container: dict[str, Any], stack: Endpoints, pod: str) -> dict[str, str]:
    """The container's environment as the kubelet would set it (Secret refs resolved to the stack's Redis)."""
    env = {"PATH": os.environ["PATH"], "KUBECONFIG": stack.kubeconfig, "HOME": os.environ.get("HOME", "/tmp")}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        elif "secretKeyRef" in item.get("valueFrom", {}):
            env[item["name"]] = stack.redis_url
        elif item.get("valueFrom", {}).get("fieldRef", {}).get("fieldPath") == "metadata.name":
            env[item["name"]] = pod
    return env


@pytest.fixture
def chart_operator(helm: Helm, stack: Endpoints, namespace: str, chart_crds: None,
                   tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    container = operator_container(helm, stack, namespace)
    assert container["args"][:2] == ["operator", "run"]
    log = (tmp_path / "operator.log").open("wb")
    process = subprocess.Popen(
        [sys.executable, "-c", "from streamguard.cli import main; main()", *container["args"]],
        env=pod_env(container, stack, f"operator-{namespace}"), stdout=log, stderr=subprocess.STDOUT,
    )
    yield process
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    log.close()


def reconciled(item: dict[str, Any]) -> bool:
    status = item.get("status") or {}
    generation = item["metadata"].get("generation")
    types = {c["type"] for c in status.get("conditions", []) if c.get("observedGeneration") == generation}
    return status.get("observedGeneration") == generation and {"Ready", "Reconciling", "Stalled"} <= types


@pytest.mark.stack
def test_chart_command_reconciles_the_finserve_examples(
    chart_operator: subprocess.Popen[bytes], kubectl: Kubectl, namespace: str, tmp_path: Path
) -> None:
    kubectl("apply", "-n", namespace, "-f", str(FINSERVE))
    kinds = "featureviews,streamingwindows,driftmonitors"
    deadline = time.monotonic() + 120
    items: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        assert chart_operator.poll() is None, (tmp_path / "operator.log").read_text()[-4000:]
        items = json.loads(kubectl("get", kinds, "-n", namespace, "-o", "json").stdout)["items"]
        if items and all(reconciled(i) for i in items):
            break
        time.sleep(2)
    log = (tmp_path / "operator.log").read_text()
    assert items and all(reconciled(i) for i in items), f"not reconciled: {json.dumps(items)[:3000]}\n{log[-3000:]}"
    stalled = [(i["metadata"]["name"], c["reason"], c["message"]) for i in items
               for c in i["status"]["conditions"] if c["type"] == "Stalled" and c["status"] == "True"]
    assert stalled == [], stalled
    deployments = json.loads(kubectl("get", "deployments", "-n", namespace, "-o", "json").stdout)["items"]
    owners = {ref["name"] for d in deployments for ref in d["metadata"].get("ownerReferences", [])}
    windows = {i["metadata"]["name"] for i in items if i["kind"] == "StreamingWindow"}
    assert windows and windows <= owners, "every StreamingWindow got its streaming Deployment"
    kubectl("delete", kinds, "--all", "-n", namespace, "--wait=true", "--timeout=60s")
