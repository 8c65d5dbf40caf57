"""The chart's admission policy confines a StreamingWindow's Spark driver to its own executors.

Real apiserver: the policy and binding as ``helm template`` renders them, and the driver's ServiceAccount
(impersonated) holding exactly the Role the operator renders for a window with executors. Every request
is a server-side dry run: admission decides, nothing is created or deleted."""

import json
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml

from streamguard.operator.render.executors import DRIVER_RULES
from tests.conftest import Helm, Kubectl
from tests.polling import wait_for
from tests.sparkdrivers import spark_driver_policy

pytestmark = pytest.mark.stack

SPARK_IMAGE = "registry.example/streamguard-spark:1.2.3"
WINDOW = "activity"


@pytest.fixture
def driver(helm: Helm, kubectl: Kubectl, namespace: str) -> Iterator[str]:
    """The account ``<window>-stream`` with the driver's rules, under the policy of a release watching
    ``namespace``."""
    account = f"{WINDOW}-stream"
    policy = yaml.safe_dump_all(spark_driver_policy(helm, namespace, SPARK_IMAGE))
    rbac = [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": account, "namespace": namespace}},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
         "metadata": {"name": account, "namespace": namespace}, "rules": DRIVER_RULES},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
         "metadata": {"name": account, "namespace": namespace},
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": account},
         "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": namespace}]},
    ]
    kubectl("apply", "-f", "-", input=policy + "\n---\n" + yaml.safe_dump_all(rbac))
    yield f"system:serviceaccount:{namespace}:{account}"
    kubectl("delete", "-f", "-", "--ignore-not-found", input=policy)


def executor(name: str = "activity-stream-exec-1", **changes: Any) -> dict[str, Any]:
    """An executor pod as Spark creates it from the operator's template (the fields the policy reads)."""
    pod: dict[str, Any] = {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "labels": {"spark-role": "executor", "spark-app-selector": "spark-1",
                                              "app.kubernetes.io/instance": WINDOW}},
        "spec": {"automountServiceAccountToken": False,
                 "containers": [{"name": "executor", "image": SPARK_IMAGE, "args": ["executor"]}]},
    }
    for path, value in changes.items():
        *parents, last = path.split("__")
        target = pod
        for key in parents:
            target = target[key]
        target[last] = value
    return pod


def create(kubectl: Kubectl, namespace: str, who: str, obj: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    return kubectl("create", "-n", namespace, "-f", "-", f"--as={who}", "--dry-run=server", input=json.dumps(obj),
                   check=False)


def test_the_driver_creates_only_its_own_hardened_executors(driver: str, kubectl: Kubectl, namespace: str) -> None:
    # The policy is loaded asynchronously: wait until it refuses a pod that is no executor.
    plain = executor(metadata={"name": "not-an-executor", "labels": {"app": "x"}})
    wait_for("the policy to refuse a plain pod", lambda: create(kubectl, namespace, driver, plain).returncode != 0,
             timeout=30)
    refused = create(kubectl, namespace, driver, plain)
    assert "activity-stream is the Spark driver of StreamingWindow activity" in refused.stderr, refused.stderr

    allowed = create(kubectl, namespace, driver, executor())
    assert allowed.returncode == 0, allowed.stderr

    others = executor(metadata={"name": "payments-stream-exec-1",
                                "labels": {"spark-role": "executor", "app.kubernetes.io/instance": "payments"}})
    assert "may manage only its executor pods" in create(kubectl, namespace, driver, others).stderr

    hardened = "must run the Spark image"
    for unsafe in (
        executor(spec={"automountServiceAccountToken": True, "containers": executor()["spec"]["containers"]}),
        executor(spec__hostNetwork=True),
        executor(spec__volumes=[{"name": "root", "hostPath": {"path": "/"}}]),
        executor(spec__containers=[{"name": "executor", "image": "attacker/tools:latest"}]),
        executor(spec__containers=[{"name": "executor", "image": SPARK_IMAGE,
                                    "securityContext": {"privileged": True}}]),
    ):
        result = create(kubectl, namespace, driver, unsafe)
        assert result.returncode != 0 and hardened in result.stderr, (unsafe["spec"], result.stderr)


def test_the_driver_deletes_only_its_executors_and_their_configuration(driver: str, kubectl: Kubectl,
                                                                        namespace: str) -> None:
    victims = [{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "job-config"}, "data": {"a": "b"}},
               {"apiVersion": "v1", "kind": "ConfigMap",
                "metadata": {"name": "spark-exec-1-conf-map", "labels": {"spark-role": "executor"}}}]
    kubectl("create", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(victims))

    def delete(name: str) -> subprocess.CompletedProcess[str]:
        return kubectl("delete", "configmap", name, "-n", namespace, f"--as={driver}", "--dry-run=server",
                       check=False)

    wait_for("the policy to refuse deleting another ConfigMap", lambda: delete("job-config").returncode != 0,
             timeout=30)
    assert "may manage only its executors' configuration" in delete("job-config").stderr
    assert delete("spark-exec-1-conf-map").returncode == 0
    plain = create(kubectl, namespace, driver, {"apiVersion": "v1", "kind": "ConfigMap",
                                                "metadata": {"name": "anything"}})
    assert plain.returncode != 0 and "spark-role=executor" in plain.stderr
