"""What the demo puts into the cluster besides the FinServe resources (pure renderers)."""

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from streamguard.api.streamingwindow import StreamingWindowSpec
from streamguard.devstack import chart
from streamguard.devstack.chart import ServingDeployment, render_serving
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.image import ProjectImages
from streamguard.devstack.node import NODE_NAME

Manifest = dict[str, Any]
REDIS_SECRET = "streamguard-redis"
DEMO_LABELS = {"app.kubernetes.io/part-of": "streamguard", "app.kubernetes.io/managed-by": "streamguard-demo"}
DATA_VOLUME = "demo-offline-data"
PLACEMENT_KINDS = ("MutatingAdmissionPolicy", "MutatingAdmissionPolicyBinding")
WORKLOAD_RESOURCES = {
    "materialize": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
    "stream": {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
    "drift": {"requests": {"cpu": "50m", "memory": "512Mi"}, "limits": {"memory": "1536Mi"}},
}
"""The chart's ``workloads.resources`` for the one 2-core node: with the operator's defaults (250m per
materialization Job, 500m for the stream, 500m for serving) three Jobs and a rolling serving pod left the
stream Pending."""
POD_WORKDIR = "/home/streamguard"
"""The images' WORKDIR: the FeatureViews' relative ``source.path``s (``.run/data/...``) resolve under it."""


def namespace(name: str) -> Manifest:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": DEMO_LABELS}}


def redis_secret(ns: str, redis_url: str) -> Manifest:
    """The Secret the operator's and serving's pods read ``STREAMGUARD_REDIS_URL`` from."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": REDIS_SECRET, "namespace": ns, "labels": DEMO_LABELS},
            "stringData": {"url": redis_url}}


def serving(ns: str, image: str) -> list[Manifest]:
    """One serving replica of the project image (already on the node: never pulled), as the chart renders it
    with values-dev.yaml (its startup probe lets Feast's imports take minutes on a loaded node)."""
    return render_serving(ServingDeployment(namespace=ns, image=image, image_pull_policy="Never",
                                            auth_token_secret=None))


def operator_release(ns: str) -> str:
    """The Helm release name of the demo's operator in ``ns``: its ClusterRoles and ClusterRoleBindings are
    cluster-wide, so two demo namespaces on one stack need two names."""
    return f"streamguard-{ns}"


def operator_values(endpoints: Endpoints, images: ProjectImages, ns: str) -> dict[str, Any]:
    """Every setting of the demo's operator, layered over ``values-dev.yaml``: the images built here (on the
    node already: never pulled), Kafka and the registry at the addresses pods reach, Redis through the
    namespace's Secret, ``ns`` alone watched, the workloads' requests scaled to the node, and probes patient
    with a loaded 2-core machine (kopf's imports take tens of seconds there)."""
    repository, tag = chart.split_image(images.main.name)
    spark_repository, spark_tag = chart.split_image(images.spark.name)
    if tag != spark_tag:
        raise ValueError(f"the chart gives both images one tag: {images.main.name}, {images.spark.name}")
    return {
        "image": {"repository": repository, "sparkRepository": spark_repository, "tag": tag, "pullPolicy": "Never"},
        "connections": {"kafka": {"bootstrapServers": endpoints.pod_kafka_bootstrap},
                        "schemaRegistry": {"url": endpoints.pod_registry_url},
                        "redis": {"existingSecret": REDIS_SECRET, "secretKey": "url"}},
        "devRedis": {"enabled": False},
        "serving": {"enabled": False},
        "monitoring": {"dashboard": {"enabled": False}},
        "tests": {"enabled": False},
        "operator": {
            "watchNamespaces": [ns],
            "workers": 2,
            "livenessProbe": {"initialDelaySeconds": 30, "periodSeconds": 20, "timeoutSeconds": 10,
                              "failureThreshold": 6},
            "readinessProbe": {"periodSeconds": 5, "timeoutSeconds": 10, "failureThreshold": 3},
        },
        # A re-run's stream resumes from its checkpoint: on a PersistentVolumeClaim (the stack's local volumes).
        "workloads": {"checkpointStorage": "1Gi", "resources": WORKLOAD_RESOURCES},
    }


def operator(endpoints: Endpoints, images: ProjectImages, ns: str) -> list[Manifest]:
    """The operator's Deployment, ServiceAccount, metrics Service and RBAC as the chart renders them."""
    return chart.render(operator_release(ns), ns, operator_values(endpoints, images, ns), "operator")


def placement_policy(ns: str, data_dir: Path) -> list[Manifest]:
    """A MutatingAdmissionPolicy (and its binding) for the demo namespace only, DEVELOPMENT ONLY: every pod
    created there selects the stack's node (the one whose host holds the data), and every container gets the
    host folder ``data_dir`` (the sample data and offline tables) mounted read-only at
    ``<WORKDIR>/.run/data``, where the FeatureViews' relative source paths resolve. It stands in for object
    storage until the offline data moves there; the operator's rendering is left as a cluster would see it."""
    name = f"streamguard-demo-{ns}"
    mount = (f'Object.spec.containers.volumeMounts{{name: "{DATA_VOLUME}", mountPath: "{POD_WORKDIR}/.run/data", '
             "readOnly: true}")
    node = f'{{"kubernetes.io/hostname": "{NODE_NAME}"}}'
    select = f'[JSONPatch{{op: "add", path: "/spec/nodeSelector", value: {node}}}]'
    host_path = f'Object.spec.volumes.hostPath{{path: "{data_dir}", type: "Directory"}}'
    volume = f'Object.spec.volumes{{name: "{DATA_VOLUME}", hostPath: {host_path}}}'
    place = (f"Object{{spec: Object.spec{{volumes: [{volume}], "
             f"containers: object.spec.containers.map(c, Object.spec.containers{{name: c.name, "
             f"volumeMounts: [{mount}]}})}}}}")
    meta = {"name": name, "labels": DEMO_LABELS}
    return [
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicy", "metadata": meta,
         "spec": {"failurePolicy": "Fail", "reinvocationPolicy": "Never",
                  "matchConstraints": {"resourceRules": [{"apiGroups": [""], "apiVersions": ["v1"],
                                                          "operations": ["CREATE"], "resources": ["pods"]}]},
                  "mutations": [{"patchType": "JSONPatch", "jsonPatch": {"expression": select}},
                                {"patchType": "ApplyConfiguration", "applyConfiguration": {"expression": place}}]}},
        {"apiVersion": "admissionregistration.k8s.io/v1", "kind": "MutatingAdmissionPolicyBinding",
         "metadata": meta,
         "spec": {"policyName": name, "matchResources": {"namespaceSelector": {"matchLabels": {
             "kubernetes.io/metadata.name": ns}}}}},
    ]


def platform(ns: str, redis_url: str, image: str, data_dir: Path) -> list[Manifest]:
    return [namespace(ns), *placement_policy(ns, data_dir), redis_secret(ns, redis_url),
            *serving(ns, image)]


def load_examples(folder: Path) -> list[Manifest]:
    docs: list[Manifest] = []
    for path in sorted(folder.glob("*.yaml")):
        docs += [doc for doc in yaml.safe_load_all(path.read_text()) if isinstance(doc, dict)]
    return docs


def isolate(docs: Iterable[Manifest], suffix: str) -> list[Manifest]:
    """The FinServe resources made unique for one test run: Feast project, Kafka topic and registry
    subject get ``suffix``, so runs sharing Kafka, the registry and Redis never see each other's data."""
    out: list[Manifest] = []
    for doc in docs:
        doc = copy.deepcopy(doc)
        spec = doc.get("spec") or {}
        if doc.get("kind") == "FeatureView" and "project" in spec:
            spec["project"] = f"{spec['project']}{suffix.replace('-', '_')}"
        if doc.get("kind") == "StreamingWindow":
            spec["source"]["topic"] = f"{spec['source']['topic']}-{suffix}"
            contract = spec.get("contract") or {}
            if contract.get("subject"):
                contract["subject"] = f"{spec['source']['topic']}-value"
        out.append(doc)
    return out


def subject(docs: Iterable[Manifest], namespace: str) -> str:
    """The registry subject of the first StreamingWindow in ``namespace`` ('' without one)."""
    for doc in docs:
        if doc.get("kind") == "StreamingWindow":
            return StreamingWindowSpec.model_validate(doc["spec"]).subject_in(namespace)
    return ""


def topics(docs: Iterable[Manifest]) -> list[str]:
    return sorted({doc["spec"]["source"]["topic"] for doc in docs if doc.get("kind") == "StreamingWindow"})
