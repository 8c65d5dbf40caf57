"""`helm install` of charts/streamguard on the stack's real node, `helm test`, `helm uninstall`.

The chart's operator and serving run as containers of the project's images; the kubelet runs their probes.
The operator reconciles a FeatureView to its status conditions; the chart's test pod reaches serving
through its Service's ClusterIP (kube-proxy's rules on the node) and looks the view up; with serving
scaled to zero the same hook fails. Nothing of the release is left after `helm uninstall`."""

import ipaddress
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamguard.demo.manifests import redis_secret
from streamguard.devstack import image, node
from streamguard.devstack.endpoints import Endpoints
from streamguard.finserve.resources import EXAMPLES_DIR
from tests.conftest import CHART, Helm, Kubectl
from tests.polling import wait_for

pytestmark = [pytest.mark.stack, pytest.mark.timeout(900)]

VIEW = "customer-profile"
"""The FeatureView the chart's operator reconciles (the FinServe example, never materialized here)."""


def node_values(stack: Endpoints, images: image.ProjectImages, namespace: str) -> dict[str, Any]:
    """Values installing the chart on the stack's node: the locally built images (never pulled, so pinned to
    the node that holds them), the stack's services at the addresses pods reach, one namespace watched, small requests
    (two shared cores) and probes patient with a loaded machine."""
    tags = {ref.name.rsplit(":", 1)[1] for _, ref in images.each()}
    assert len(tags) == 1, f"the two images carry one digest tag: {tags}"
    placement = {"nodeSelector": {"kubernetes.io/hostname": node.NODE_NAME}}
    small = {"requests": {"cpu": "50m", "memory": "128Mi"}, "limits": {"memory": "768Mi"}}
    return {
        "image": {"repository": image.REPOSITORY, "sparkRepository": image.SPARK_REPOSITORY, "tag": tags.pop(),
                  "pullPolicy": "Never"},
        "connections": {"kafka": {"bootstrapServers": stack.pod_kafka_bootstrap},
                        "schemaRegistry": {"url": stack.pod_registry_url}},
        "operator": {"watchNamespaces": [namespace], "workers": 2, "resources": small,
                     "livenessProbe": {"initialDelaySeconds": 30, "periodSeconds": 20, "timeoutSeconds": 5,
                                       "failureThreshold": 6},
                     **placement},
        "workloads": {"checkpointStorage": ""},
        # The example view is never materialized here: advisory, so its staleness keeps serving Ready.
        "serving": {"replicas": 1, "workers": 1, "advisoryViews": [VIEW], "resources": small, **placement},
        "monitoring": {"dashboard": {"enabled": False}},
        "tests": {"readyTimeoutSeconds": 15},
    }


def reconciled(item: dict[str, Any]) -> bool:
    status = item.get("status") or {}
    generation = item["metadata"].get("generation")
    types = {c["type"] for c in status.get("conditions", []) if c.get("observedGeneration") == generation}
    return status.get("observedGeneration") == generation and {"Ready", "Reconciling", "Stalled"} <= types


def lookups(metrics: str) -> float:
    """Lookups serving answered with 200, from its Prometheus text."""
    for line in metrics.splitlines():
        if line.startswith("streamguard_serving_request_duration_seconds_count{") and 'code="200"' in line \
                and 'endpoint="/features"' in line:
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def release_objects(kubectl: Kubectl, namespace: str, release: str) -> list[str]:
    """Every object labelled as the release's, namespaced (in ``namespace``) and cluster-wide."""
    selector = f"app.kubernetes.io/instance={release}"
    kinds = ("deployments,replicasets,pods,services,endpointslices,configmaps,secrets,serviceaccounts,roles,"
             "rolebindings,poddisruptionbudgets")
    names = kubectl("get", kinds, "-n", namespace, "-l", selector, "-o", "name").stdout.split()
    names += kubectl("get", "clusterroles,clusterrolebindings,clusterkopfpeerings", "-l", selector, "-o",
                     "name").stdout.split()
    return names


def test_helm_install_then_helm_test_on_the_node(helm: Helm, kubectl: Kubectl, stack: Endpoints, namespace: str,
                                                 chart_crds: None, project_images: image.ProjectImages,
                                                 tmp_path: Path) -> None:
    release = f"sg{uuid.uuid4().hex[:6]}"
    kubectl("apply", "--server-side", "-f", "-", input=json.dumps(redis_secret(namespace, stack.pod_redis_url)))
    values = tmp_path / "values-node.yaml"
    values.write_text(yaml.safe_dump(node_values(stack, project_images, namespace)))
    # --wait: every Deployment has its pods Ready, i.e. the kubelet's probes passed.
    helm("install", release, str(CHART), "-n", namespace, "-f", str(values), "--wait", "--timeout", "6m")
    deployments = json.loads(kubectl("get", "deployments", "-n", namespace, "-l",
                                     f"app.kubernetes.io/instance={release}", "-o", "json").stdout)["items"]
    assert sorted(d["metadata"]["labels"]["app.kubernetes.io/component"] for d in deployments) == [
        "operator", "serving"]
    for deployment in deployments:
        assert deployment["status"].get("readyReplicas") == deployment["spec"]["replicas"], deployment["status"]
    pods = json.loads(kubectl("get", "pods", "-n", namespace, "-l", f"app.kubernetes.io/instance={release}",
                              "-o", "json").stdout)["items"]
    assert {p["spec"]["nodeName"] for p in pods} == {node.NODE_NAME}
    assert {c["image"] for p in pods for c in p["spec"]["containers"]} == {project_images.main.name}

    # The operator, a container with the chart's ServiceAccount and RBAC, reconciles a FeatureView.
    manifest = yaml.safe_load((EXAMPLES_DIR / f"{VIEW}.yaml").read_text())
    manifest["metadata"]["namespace"] = namespace
    manifest["spec"]["project"] = f"helm{release}"
    manifest["spec"]["materialization"]["schedule"] = "0 0 1 1 *"  # never due during the test
    kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(manifest))

    def view() -> dict[str, Any] | None:
        item = json.loads(kubectl("get", "featureview", VIEW, "-n", namespace, "-o", "json").stdout)
        return item if reconciled(item) else None

    status = wait_for(f"FeatureView {VIEW} reconciled by the chart's operator", view, timeout=180, interval=2)["status"]
    stalled = [c for c in status["conditions"] if c["type"] == "Stalled" and c["status"] == "True"]
    assert stalled == [], stalled
    # Serving (watching the namespace) serves the view before the hook looks it up.
    serving = next(d["metadata"]["name"] for d in deployments if d["metadata"]["name"].endswith("-serving"))

    def from_serving(path: str) -> str:
        """GET ``path`` from inside serving's pod, with the first token of the Secret the chart mounted."""
        script = ("import urllib.request as u; t = open('/var/run/streamguard/serving-auth/tokens').read().split()[0]; "
                  f"print(u.urlopen(u.Request('http://127.0.0.1:8080{path}', "
                  "headers={'Authorization': 'Bearer ' + t})).read().decode())")
        return kubectl("exec", "-n", namespace, f"deploy/{serving}", "--", "python", "-c", script, check=False).stdout

    wait_for(f"serving's catalog to hold {VIEW}",
             lambda: VIEW in json.loads(from_serving("/catalog") or "{}").get("views", {}), timeout=60, interval=2)
    assert lookups(from_serving("/metrics")) == 0

    # The hook's pod is deleted once it succeeds (so `--logs` has nothing to show): serving's own metrics
    # show its lookup.
    out = helm("test", release, "-n", namespace, "--timeout", "3m").stdout
    assert "Phase:          Succeeded" in out or "Phase: Succeeded" in " ".join(out.split()), out
    assert lookups(from_serving("/metrics")) == 1  # one view served, one lookup, answered 200

    # The hook is meaningful: with serving down, it fails.
    kubectl("scale", "deployment", serving, "-n", namespace, "--replicas=0")
    wait_for("serving's pods gone", lambda: not kubectl(
        "get", "pods", "-n", namespace, "-l", "app.kubernetes.io/component=serving", "-o", "name").stdout.strip(),
        timeout=120, interval=2)
    # A failed hook's pod stays, with its logs (`helm test --logs`): it dialled the Service's ClusterIP.
    failed = helm("test", release, "-n", namespace, "--logs", "--timeout", "3m", check=False)
    cluster_ip = json.loads(kubectl("get", "service", serving, "-n", namespace, "-o", "json").stdout)["spec"][
        "clusterIP"]
    assert ipaddress.ip_address(cluster_ip) in ipaddress.ip_network(node.SERVICE_CIDR)
    assert failed.returncode != 0 and f"FAIL http://{cluster_ip}:80/readyz" in failed.stdout, failed

    # The operator handles the view's deletion (its finalizer) before the release goes.
    kubectl("delete", "featureview", VIEW, "-n", namespace, "--wait=true", "--timeout=120s")
    # Foreground: the Deployments are gone only once their pods are.
    helm("uninstall", release, "-n", namespace, "--wait", "--cascade=foreground", "--timeout", "3m")
    # Helm leaves test pods to their delete policy: the failed run's is removed by hand.
    kubectl("delete", "pod", f"{release}-streamguard-smoke-test", "-n", namespace, "--wait=true")
    # Only serving's generated token Secret stays (helm.sh/resource-policy: keep): a reinstall keeps the
    # tokens clients already hold.
    assert release_objects(kubectl, namespace, release) == [f"secret/{release}-streamguard-serving-auth"]
    assert helm("list", "-n", namespace, "-a", "-q").stdout.strip() == ""
