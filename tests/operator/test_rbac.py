"""The operator runs as its ServiceAccount with only the ClusterRole from `streamguard operator rbac`."""

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from streamguard.devstack.endpoints import Endpoints
from streamguard.operator.rbac import cluster_role
from tests.operator import manifests
from tests.operator.conftest import Cluster
from tests.operator.process import OperatorProcess

pytestmark = pytest.mark.stack


@pytest.fixture
def service_account_kubeconfig(stack: Endpoints, cluster: Cluster, tmp_path: Path) -> Iterator[str]:
    """A kubeconfig holding a TokenRequest token of a ServiceAccount bound to the operator's ClusterRole."""
    name = f"streamguard-operator-{cluster.namespace}"
    role = cluster_role(name)
    binding = {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": name},
        "subjects": [{"kind": "ServiceAccount", "name": "streamguard-operator", "namespace": cluster.namespace}],
    }
    cluster.kubectl("create", "serviceaccount", "streamguard-operator", "-n", cluster.namespace)
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump_all([role, binding]))
    token = cluster.kubectl(
        "create", "token", "streamguard-operator", "-n", cluster.namespace, "--duration=1h"
    ).stdout.strip()
    admin = yaml.safe_load(Path(stack.kubeconfig).read_text())
    context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
    server = next(c for c in admin["clusters"] if c["name"] == context["cluster"])
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [server],
        "users": [{"name": "operator", "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": server["name"], "user": "operator"}}],
        "current-context": "operator",
    }
    path = tmp_path / "operator.kubeconfig"
    path.write_text(yaml.safe_dump(config))
    yield str(path)
    cluster.kubectl("delete", "clusterrolebinding", name, "clusterrole", name, "--ignore-not-found")


def test_operator_works_with_least_privilege(
    start_operator: Callable[..., OperatorProcess],
    service_account_kubeconfig: str,
    cluster: Cluster,
    registry_url: str,
) -> None:
    whoami = cluster.kubectl(
        "auth", "whoami", f"--kubeconfig={service_account_kubeconfig}", "-o", "jsonpath={.status.userInfo.username}"
    )
    assert whoami.stdout == f"system:serviceaccount:{cluster.namespace}:streamguard-operator"
    cannot = cluster.kubectl(
        "auth",
        "can-i",
        "get",
        "secrets",
        "-n",
        cluster.namespace,
        f"--kubeconfig={service_account_kubeconfig}",
        check=False,
    )
    assert cannot.stdout.strip() == "no"

    operator = start_operator(kubeconfig=service_account_kubeconfig)
    subject = f"t-{uuid.uuid4().hex[:8]}-rbac-value"
    cluster.apply(
        manifests.feature_view(),
        manifests.streaming_window(subject=subject, deletion_policy="Delete"),
        manifests.drift_monitor(),
    )
    cluster.wait(
        "condition=Ready", "featureview/customer-txn", "streamingwindow/customer-txn", "driftmonitor/customer-drift"
    )
    assert cluster.get("prometheusrule", "customer-drift-drift") is not None
    assert cluster.get("cronjob", "customer-txn-materialize") is not None
    assert [e for e in cluster.items("events") if e["reason"] == "ChildrenApplied"]
    assert_workloads_limited_to_their_own_status(cluster)

    cluster.apply(manifests.feature_view(source=False))
    cluster.wait_for(lambda: cluster.get("cronjob", "customer-txn-materialize") is None, what="prune as the SA")
    cluster.kubectl("delete", "-n", cluster.namespace, "streamingwindow/customer-txn", "--timeout=60s")
    assert httpx.get(f"{registry_url}/subjects/{subject}/versions").status_code == 404
    operator.wait_idle()
    log = operator.log_text()
    assert "HTTP/1.1 403" not in log and "forbidden" not in log.lower(), log[-4000:]


def can_i(cluster: Cluster, account: str, verb: str, resource: str, *flags: str) -> bool:
    """What the apiserver's authorizer answers for ServiceAccount ``account`` of the test's namespace."""
    answer = cluster.kubectl(
        "auth", "can-i", verb, resource, "-n", cluster.namespace,
        f"--as=system:serviceaccount:{cluster.namespace}:{account}", *flags, check=False,
    ).stdout.strip()
    assert answer in ("yes", "no"), answer
    return answer == "yes"


def assert_workloads_limited_to_their_own_status(cluster: Cluster) -> None:
    """Each workload's ServiceAccount (created by the operator running with only its ClusterRole, so the
    apiserver's escalation check passed) may read its own resource and patch that one's status: nothing else."""
    cluster.apply(manifests.feature_view(name="other-txn", source=False))
    for account, plural, own in (
        ("customer-txn-materialize", "featureviews", "customer-txn"),
        ("customer-txn-stream", "streamingwindows", "customer-txn"),
        ("customer-drift-drift", "driftmonitors", "customer-drift"),
    ):
        assert cluster.get("serviceaccount", account) is not None
        resource = f"{plural}.streamguard.dev"
        assert can_i(cluster, account, "patch", f"{resource}/{own}", "--subresource=status")
        assert can_i(cluster, account, "get", f"{resource}/{own}")
        assert not can_i(cluster, account, "patch", f"{resource}/other-txn", "--subresource=status"), account
        assert not can_i(cluster, account, "patch", f"{resource}/{own}"), "the spec is not the workload's"
        assert not can_i(cluster, account, "list", resource)
        assert not can_i(cluster, account, "get", "secrets")
    # The same name under another kind is another object: the materializer cannot write the window's status.
    assert not can_i(
        cluster, "customer-txn-materialize", "patch", "streamingwindows.streamguard.dev/customer-txn",
        "--subresource=status",
    )
