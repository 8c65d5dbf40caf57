"""The catalog follows the FeatureView/StreamingWindow resources of a namespace (real kube-apiserver),
and the rendered serving Deployment/Service are accepted by the apiserver."""

import json
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest
import redis
import yaml

from streamguard.devstack.chart import ServingDeployment, render_serving
from streamguard.devstack.endpoints import Endpoints
from streamguard.serving.catalog import Catalog
from streamguard.serving.sources import ClusterSource
from tests.conftest import Kubectl
from tests.serving.support import (
    BATCH_VIEWS,
    cover,
    finserve_manifests,
    running_server,
    write_finserve_rows,
    write_progress,
)

pytestmark = pytest.mark.stack


def _wait_for(source: ClusterSource, predicate: Callable[[Catalog], bool], what: str) -> Catalog:
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        catalog = source.current()
        if catalog is not None and predicate(catalog):
            return catalog
        time.sleep(0.1)
    raise AssertionError(f"catalog never showed {what}: {source.current()}")


@pytest.mark.usefixtures("crds")
def test_catalog_follows_the_resources(stack: Endpoints, kubectl: Kubectl, namespace: str, project: str) -> None:
    manifests = yaml.safe_dump_all(finserve_manifests(project))
    kubectl("apply", "-n", namespace, "-f", "-", input=manifests)
    source = ClusterSource(namespace, stack.kubeconfig, retry_seconds=0.5)
    source.start()
    try:
        catalog = _wait_for(source, lambda c: len(c.views) == 4, "the four views")
        assert len(catalog.feature_sets["fraud"]) == 22
        assert catalog.views["customer-txn-windows"].windows["1m"].offsets == (("count", 0), ("sum", 1), ("max", 2))

        patch = [{"op": "add", "path": "/spec/features/-", "value": {"name": "email_domain", "dtype": "STRING"}}]
        kubectl("patch", "featureview", "customer-profile", "-n", namespace, "--type=json", f"-p={json.dumps(patch)}")
        _wait_for(source, lambda c: "email_domain" in c.views["customer-profile"].slots, "the added feature")

        kubectl("delete", "featureview", "merchant-profile", "-n", namespace)
        catalog = _wait_for(source, lambda c: "merchant-profile" not in c.views, "the view deleted")
        assert len(catalog.feature_sets["fraud"]) == 16
    finally:
        source.stop()


@pytest.mark.usefixtures("crds")
def test_serve_from_cluster_with_status_freshness(
    stack: Endpoints, kubectl: Kubectl, namespace: str, project: str, redis_client: redis.Redis
) -> None:
    kubectl("apply", "-n", namespace, "-f", "-", input=yaml.safe_dump_all(finserve_manifests(project)))
    cover(redis_client, project, namespace=namespace)  # the keys carry the served namespace
    write_finserve_rows(redis_client, project, 2, time.time(), namespace)
    write_progress(redis_client, project, time.time(), namespace=namespace)
    args = ("--from-cluster", namespace, "--kubeconfig", stack.kubeconfig, "--cache-staleness", "0")
    with running_server(None, stack.redis_url, *args) as base:
        deadline = time.monotonic() + 20
        while not httpx.get(f"{base}/catalog").json()["views"]:
            assert time.monotonic() < deadline, "the served catalog stayed empty"
            time.sleep(0.2)
        response = httpx.post(
            f"{base}/features", json={"features": ["customer-profile:age"], "entities": [{"customer_id": "C00001"}]}
        )
        assert response.status_code == 200
        assert response.json()["results"][0]["statuses"] == ["present"]
        not_ready = httpx.get(f"{base}/readyz")
        assert not_ready.status_code == 503
        assert "FeatureView account-profile: never materialized" in " ".join(not_ready.json()["reasons"])

        # the materializer reports in the FeatureView status: newest row = lastMaterializedAt - freshnessSeconds
        now = datetime.now(UTC).replace(microsecond=0)
        for view in BATCH_VIEWS:
            status = {"status": {"lastMaterializedAt": now.isoformat().replace("+00:00", "Z"), "freshnessSeconds": 120}}
            kubectl(
                "patch",
                "featureview",
                view,
                "-n",
                namespace,
                "--subresource=status",
                "--type=merge",
                f"-p={json.dumps(status)}",
            )
        while (ready := httpx.get(f"{base}/readyz")).status_code != 200:
            assert time.monotonic() < deadline + 20, f"never ready: {ready.text}"
            time.sleep(0.2)
    fresh = {v["view"]: v["freshness_seconds"] for v in ready.json()["views"]}
    assert 120 <= fresh["account-profile"] < 300


def test_rendered_deployment_is_accepted(kubectl: Kubectl, namespace: str) -> None:
    objects = render_serving(ServingDeployment(namespace=namespace, auth_token_secret=None, replicas=1))
    kubectl("apply", "--server-side", "--field-manager=streamguard", "-f", "-", input=yaml.safe_dump_all(objects))

    def get(*args: str) -> Any:
        return json.loads(kubectl("get", "-n", namespace, "-o", "json", *args).stdout)

    deployment = get("deployment", "streamguard-serving")
    pod = deployment["spec"]["template"]["spec"]
    container = pod["containers"][0]
    assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert container["livenessProbe"]["httpGet"]["path"] == "/livez"
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert container["startupProbe"]["httpGet"]["path"] == "/livez"
    assert container["args"][:2] == ["serve", f"--from-cluster={namespace}"]
    service = get("service", "streamguard-serving")
    assert service["spec"]["selector"] == deployment["spec"]["selector"]["matchLabels"]
    # the controller-manager turns the Deployment into a ReplicaSet (no kubelet, so pods stay Pending)
    deadline = time.monotonic() + 30
    while not get("replicasets")["items"]:
        assert time.monotonic() < deadline, "no ReplicaSet was created for the serving Deployment"
        time.sleep(0.5)
    # the pod's service account may watch the resources it serves
    account = f"system:serviceaccount:{namespace}:streamguard-serving"
    allowed = kubectl("auth", "can-i", "watch", "featureviews.streamguard.dev", "-n", namespace, f"--as={account}")
    assert allowed.stdout.strip() == "yes"
