"""Helpers of the node tests: pods pinned to the stack's node, a namespace to deploy the operator's renderings
in (:class:`Cluster`), and the image sizes reported (the images themselves are session fixtures of
tests/conftest.py)."""

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import redis
import yaml
from kubernetes import client

from streamguard.api.featureview import FeatureView, FeatureViewSpec
from streamguard.api.streamingwindow import StreamingWindow, StreamingWindowSpec
from streamguard.demo.manifests import redis_secret
from streamguard.devstack import image, node
from streamguard.devstack.endpoints import Endpoints
from streamguard.operator.settings import OperatorSettings
from tests import incontainer
from tests.conftest import Kubectl
from tests.polling import wait_for

IMAGE_SIZE = "image size"
"""The ``user_properties`` key under which a test records an image's uncompressed size (reported below)."""


def on_node(pod: dict[str, Any]) -> dict[str, Any]:
    """``pod`` pinned to the stack's node (its host holds the files the tests mount)."""
    pod["spec"]["nodeSelector"] = {"kubernetes.io/hostname": node.NODE_NAME}
    return pod


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """Report the image sizes the budget tests measured, whatever the verbosity."""
    sizes = [value for report in terminalreporter.stats.get("passed", []) + terminalreporter.stats.get("failed", [])
             for key, value in getattr(report, "user_properties", []) if key == IMAGE_SIZE]
    if sizes:
        terminalreporter.section("image sizes (uncompressed)")
        for line in sizes:
            terminalreporter.write_line(str(line))


@dataclass
class Cluster:
    stack: Endpoints
    namespace: str
    kubectl: Kubectl
    images: image.ProjectImages
    settings: OperatorSettings
    redis: "redis.Redis"

    def apply(self, *objects: dict[str, Any]) -> None:
        self.kubectl("apply", "--server-side", "-n", self.namespace, "-f", "-",
                     input="".join(json.dumps(o) + "\n" for o in objects))

    def apply_window(self, spec: StreamingWindowSpec, view: FeatureViewSpec, name: str = "activity"
                     ) -> dict[str, Any]:
        """The FeatureView and the StreamingWindow ``name`` applied; the window as the apiserver holds it."""
        self.kubectl("apply", "--server-side", "-n", self.namespace, "-f", "-", input=yaml.safe_dump_all([
            FeatureView(metadata={"name": spec.feature_view, "namespace": self.namespace}, spec=view).wire(),
            StreamingWindow(metadata={"name": name, "namespace": self.namespace}, spec=spec).wire()]))
        window: dict[str, Any] = json.loads(self.kubectl("get", "streamingwindow", name, "-n", self.namespace,
                                                         "-o", "json").stdout)
        return window

    def pod_of(self, workload: dict[str, Any]) -> dict[str, Any]:
        """The Deployment's pod once Ready (the kubelet's readiness probe passed)."""
        selector = ",".join(f"{k}={v}" for k, v in workload["spec"]["selector"]["matchLabels"].items())

        def ready() -> dict[str, Any] | None:
            pods = json.loads(self.kubectl("get", "pods", "-n", self.namespace, "-l", selector, "-o",
                                           "json").stdout)["items"]
            for pod in pods:
                for status in pod["status"].get("containerStatuses", []):
                    waiting = status["state"].get("waiting", {}).get("reason")
                    assert waiting not in ("ErrImageNeverPull", "CreateContainerError",
                                           "CreateContainerConfigError"), status
                conditions = {c["type"]: c["status"] for c in pod["status"].get("conditions", [])}
                if conditions.get("Ready") == "True":
                    return dict(pod)
            return None

        return wait_for(f"a Ready pod {selector} in {self.namespace}", ready, timeout=600, interval=2)

    def inside(self, pod: dict[str, Any]) -> dict[str, str]:
        return incontainer.inside(self.kubectl, self.namespace, pod)


def placed(objects: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rendered objects with every pod template pinned to the stack's node."""
    for obj in objects:
        template = (obj["spec"]["jobTemplate"]["spec"]["template"] if obj["kind"] == "CronJob"
                    else obj["spec"]["template"] if obj["kind"] in ("Deployment", "Job") else None)
        if template is not None:
            on_node(template)
    return objects


@pytest.fixture(scope="module")
def cluster(stack: Endpoints, kube_api: client.ApiClient, kubectl: Kubectl, crds: None,
            project_images: image.ProjectImages) -> Iterator[Cluster]:
    namespace = f"pods-{uuid.uuid4().hex[:8]}"
    core = client.CoreV1Api(kube_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    wait_for("the default ServiceAccount", lambda: core.list_namespaced_service_account(
        namespace, field_selector="metadata.name=default").items, timeout=30)
    settings = OperatorSettings(image=project_images.main.name, spark_image=project_images.spark.name,
                                image_pull_policy="Never", kafka_bootstrap=stack.pod_kafka_bootstrap,
                                registry_url=stack.pod_registry_url, checkpoint_storage=None,
                                probe_initial_delay_seconds=5)
    state = Cluster(stack, namespace, kubectl, project_images, settings, redis.Redis.from_url(stack.redis_url))
    state.apply(redis_secret(namespace, stack.pod_redis_url))
    try:
        yield state
    finally:
        core.delete_namespace(namespace)
