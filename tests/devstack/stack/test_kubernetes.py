"""The control plane is real: CRDs with schema validation, RBAC, and kube-controller-manager's GC."""

import uuid

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.conftest import Kubectl
from tests.polling import wait_for

WIDGET_CRD = """
apiVersion: apiextensions.k8s.io/v1
kind: CustomResourceDefinition
metadata:
  name: widgets.stacktest.streamguard.dev
spec:
  group: stacktest.streamguard.dev
  scope: Namespaced
  names: {kind: Widget, plural: widgets, singular: widget}
  versions:
  - name: v1
    served: true
    storage: true
    schema:
      openAPIV3Schema:
        type: object
        properties:
          spec:
            type: object
            required: [size]
            properties:
              size: {type: integer, minimum: 1, maximum: 10}
"""


@pytest.fixture(scope="module")
def widget_crd(kubectl: Kubectl) -> None:
    kubectl("apply", "-f", "-", input=WIDGET_CRD)
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd/widgets.stacktest.streamguard.dev")


def _widget(namespace: str, name: str, size: int) -> str:
    return (f"apiVersion: stacktest.streamguard.dev/v1\nkind: Widget\n"
            f"metadata: {{name: {name}, namespace: {namespace}}}\nspec: {{size: {size}}}\n")


def test_custom_object_round_trip_with_kubectl(widget_crd: None, kubectl: Kubectl, namespace: str) -> None:
    kubectl("apply", "-f", "-", input=_widget(namespace, "small", 3))
    got = kubectl("get", "widget", "small", "-n", namespace, "-o", "jsonpath={.spec.size}")
    assert got.stdout == "3"


def test_schema_violation_is_refused(widget_crd: None, kubectl: Kubectl, namespace: str) -> None:
    refused = kubectl("apply", "-f", "-", input=_widget(namespace, "huge", 99), check=False)
    assert refused.returncode != 0
    assert "spec.size" in refused.stderr
    assert "less than or equal to 10" in refused.stderr


def test_rbac_is_enforced_for_service_accounts(kubectl: Kubectl, namespace: str) -> None:
    kubectl("create", "serviceaccount", "reader", "-n", namespace)
    who = f"--as=system:serviceaccount:{namespace}:reader"
    denied = kubectl("get", "configmaps", "-n", namespace, who, check=False)
    assert denied.returncode != 0
    assert "forbidden" in denied.stderr.lower()
    kubectl("create", "role", "cm-reader", "--verb=get,list", "--resource=configmaps", "-n", namespace)
    kubectl("create", "rolebinding", "cm-reader", "--role=cm-reader",
            f"--serviceaccount={namespace}:reader", "-n", namespace)
    allowed = kubectl("get", "configmaps", "-n", namespace, who, check=False)
    assert allowed.returncode == 0, allowed.stderr
    still_denied = kubectl("get", "secrets", "-n", namespace, who, check=False)
    assert still_denied.returncode != 0


def test_garbage_collector_deletes_owned_deployment(kube_api: client.ApiClient, namespace: str) -> None:
    core, apps = client.CoreV1Api(kube_api), client.AppsV1Api(kube_api)
    owner_name = f"owner-{uuid.uuid4().hex[:6]}"
    owner = core.create_namespaced_config_map(
        namespace, client.V1ConfigMap(metadata=client.V1ObjectMeta(name=owner_name)))
    assert owner.metadata is not None
    reference = client.V1OwnerReference(api_version="v1", kind="ConfigMap", name=owner_name,
                                        uid=owner.metadata.uid, block_owner_deletion=True, controller=True)
    labels = {"app": "gc-probe"}
    apps.create_namespaced_deployment(namespace, client.V1Deployment(
        metadata=client.V1ObjectMeta(name="owned", owner_references=[reference]),
        spec=client.V1DeploymentSpec(
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")])))))
    core.delete_namespaced_config_map(owner_name, namespace)

    def deployment_gone() -> bool:
        try:
            apps.read_namespaced_deployment("owned", namespace)
        except ApiException as error:
            assert error.status == 404
            return True
        return False

    wait_for("garbage collection of the owned Deployment", deployment_gone)


def test_deployment_controller_creates_replica_set(kube_api: client.ApiClient, namespace: str) -> None:
    apps = client.AppsV1Api(kube_api)
    labels = {"app": "rs-probe"}
    apps.create_namespaced_deployment(namespace, client.V1Deployment(
        metadata=client.V1ObjectMeta(name="probe"),
        spec=client.V1DeploymentSpec(
            selector=client.V1LabelSelector(match_labels=labels),
            template=client.V1PodTemplateSpec(
                metadata=client.V1ObjectMeta(labels=labels),
                spec=client.V1PodSpec(containers=[client.V1Container(name="c", image="busybox")])))))
    wait_for("the Deployment controller's ReplicaSet",
             lambda: apps.list_namespaced_replica_set(namespace, label_selector="app=rs-probe").items)
