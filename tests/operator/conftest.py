"""The operator as a real process (``streamguard operator run``) against the stack's apiserver and registry."""

import json
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamguard.contracts.registry import RegistryRejectedError, SchemaRegistry
from streamguard.devstack.endpoints import Endpoints
from tests.operator.process import OperatorProcess, operator_env
from tests.polling import wait_for

HERE = Path(__file__).resolve().parent
Kubectl = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def prometheus_rule_crd(prometheus_crds: Path) -> None:
    """The real PrometheusRule CRD, so the operator renders and applies its drift alerts."""


@pytest.fixture
def start_operator(
    stack: Endpoints, crds: None, prometheus_rule_crd: None, namespace: str, tmp_path: Path, kubectl: Kubectl
) -> Iterator[Callable[..., OperatorProcess]]:
    """Start (and at the end stop) operator processes watching the test's namespace."""
    started: list[OperatorProcess] = []

    def start(
        kubeconfig: str | None = None, peering: tuple[str, int] | None = None, **settings: str
    ) -> OperatorProcess:
        log = tmp_path / f"operator-{len(started)}.log"
        handle = OperatorProcess(namespace, operator_env(stack, **settings), log, kubeconfig, peering).start()
        started.append(handle)
        return handle

    yield start
    for handle in started:
        handle.stop()
    # A test that failed half-way may leave a StreamingWindow holding the registry-subject finalizer with no
    # operator left to release it: use the documented escape hatch so the namespace can go.
    for item in json.loads(kubectl("get", "streamingwindows", "-n", namespace, "-o", "json").stdout)["items"]:
        if item["metadata"].get("finalizers"):
            kubectl(
                "patch",
                "streamingwindow",
                item["metadata"]["name"],
                "-n",
                namespace,
                "--type=merge",
                "-p",
                '{"metadata":{"finalizers":null}}',
                check=False,
            )


@pytest.fixture
def operator(start_operator: Callable[..., OperatorProcess]) -> OperatorProcess:
    return start_operator()


def delete_behind_the_operators_back(registry_url: str, subject: str, timeout: float = 60.0,
                                     forgotten: int | None = None) -> None:
    """Soft- then hard-delete ``subject`` as someone other than the operator would. The operator's resync may
    register it again between the two (the hard delete then answers 409): delete again until a hard delete
    of the subject went through. With ``forgotten``, also wait until the registry no longer resolves that
    schema id: Apicurio keeps serving an id it was asked for from a cache for about 30 s after its subject is
    deleted (measured: 25-30 s)."""
    def hard_deleted() -> bool:
        with SchemaRegistry(registry_url) as registry:
            try:
                return registry.delete_subject(subject, permanent=True)
            except RegistryRejectedError:
                return False
    wait_for(f"subject {subject} deleted behind the operator's back", hard_deleted, timeout)
    if forgotten is not None:
        with SchemaRegistry(registry_url) as registry:
            wait_for(f"schema id {forgotten} unknown to the registry", lambda: registry.schema_by_id(forgotten) is None,
                     timeout)


class Cluster:
    """kubectl in one namespace, with JSON results."""

    def __init__(self, kubectl: Kubectl, namespace: str) -> None:
        self.kubectl = kubectl
        self.namespace = namespace

    def apply(self, *manifests: dict[str, Any]) -> None:
        self.kubectl("apply", "-n", self.namespace, "-f", "-", input=yaml.safe_dump_all(manifests))

    def get(self, kind: str, name: str | None = None, selector: str | None = None) -> Any:
        args = ["get", kind, "-n", self.namespace, "-o", "json"]
        if name:
            args.insert(2, name)
        if selector:
            args += ["-l", selector]
        result = self.kubectl(*args, check=False)
        if result.returncode != 0:
            if "NotFound" in result.stderr:
                return None
            raise AssertionError(result.stderr)
        return json.loads(result.stdout)

    def items(self, kind: str, selector: str | None = None) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = self.get(kind, selector=selector)["items"]
        return items

    def wait(self, condition: str, *targets: str, timeout: int = 60) -> None:
        self.kubectl("wait", "-n", self.namespace, f"--for={condition}", f"--timeout={timeout}s", *targets)

    def condition(self, kind: str, name: str, cond_type: str) -> dict[str, Any] | None:
        body = self.get(kind, name) or {}
        for cond in (body.get("status") or {}).get("conditions") or []:
            if cond["type"] == cond_type:
                found: dict[str, Any] = cond
                return found
        return None

    def wait_for(self, predicate: Callable[[], Any], timeout: float = 60, what: str = "condition") -> Any:
        return wait_for(what, predicate, timeout)


@pytest.fixture
def cluster(kubectl: Kubectl, namespace: str) -> Cluster:
    return Cluster(kubectl, namespace)
