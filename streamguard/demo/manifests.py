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
from streamguard.devstack.objectstore import S3Identity, secret_manifest
from streamguard.objectstore import ACCESS_KEY_ENV, S3_SCHEME, SECRET_KEY_ENV
from streamguard.operator.settings import OperatorSettings

Manifest = dict[str, Any]
REDIS_SECRET = "streamguard-redis"
OBJECT_STORE_SECRET = OperatorSettings().object_store_secret_name
DEMO_LABELS = {"app.kubernetes.io/part-of": "streamguard", "app.kubernetes.io/managed-by": "streamguard-demo"}
WORKLOAD_RESOURCES = {
    "materialize": {"requests": {"cpu": "100m", "memory": "512Mi"}, "limits": {"memory": "1Gi"}},
    "stream": {"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}},
    "drift": {"requests": {"cpu": "50m", "memory": "512Mi"}, "limits": {"memory": "1536Mi"}},
}
"""The chart's ``workloads.resources`` for the one 2-core node: with the operator's defaults (250m per
materialization Job, 500m for the stream, 500m for serving) three Jobs and a rolling serving pod left the
stream Pending."""
DEMO_PREFIX = "demo"
"""Everything the demo keeps on the stack's bucket lives under this prefix."""
LOCAL_DATA_ROOT = ".run/"
"""The examples name their offline data under ``.run/data/`` (local paths, development only); the demo puts
``.run/<rest>`` at ``s3://<bucket>/demo/<rest>``."""
OFFLINE_TABLES = ".run/data/finserve/offline"
"""The folder of the examples' offline tables (one per view, named after it)."""


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
    with a loaded 2-core machine (kopf's imports take tens of seconds there), and the Feast registry it keeps
    on the stack's bucket."""
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
            # The Feast registry it keeps on the bucket, written with the keys of the namespace's object-store
            # Secret (the chart fills the operator's AWS_* from it by secretKeyRef).
            "feastRegistry": feast_registry(endpoints, ns),
            "objectStoreSecret": OBJECT_STORE_SECRET,
        },
        # A re-run's stream resumes from its checkpoint: on a PersistentVolumeClaim (the stack's local volumes).
        "workloads": {"checkpointStorage": "1Gi", "resources": WORKLOAD_RESOURCES},
    }


def operator(endpoints: Endpoints, images: ProjectImages, ns: str) -> list[Manifest]:
    """The operator's Deployment, ServiceAccount, metrics Service and RBAC as the chart renders them."""
    return chart.render(operator_release(ns), ns, operator_values(endpoints, images, ns), "operator")


def object_store_secret(ns: str, endpoints: Endpoints) -> Manifest:
    """The stack's object-store Secret copied into the demo namespace under the operator's default name
    (``object_store_secret_name``): the endpoint as pods reach it, the region and the keys (the keys of
    :data:`streamguard.objectstore.SECRET_KEYS`). The workloads the operator renders read it by
    ``secretKeyRef``."""
    access = endpoints.object_store_env()
    if not access:
        raise RuntimeError(f"the stack in {endpoints.run_dir} has no object store (start it with `streamguard dev up`)")
    identity = S3Identity(access[ACCESS_KEY_ENV], access[SECRET_KEY_ENV])
    secret = secret_manifest(ns, identity, endpoints.pod_s3_endpoint, OBJECT_STORE_SECRET)
    secret["metadata"]["labels"] = DEMO_LABELS
    return secret


def feast_registry(endpoints: Endpoints, ns: str) -> str:
    """The Feast registry the demo's operator keeps: one file per namespace (Feast rewrites the whole file on
    each change, so two operators never share one)."""
    return f"{S3_SCHEME}{endpoints.s3_bucket}/{DEMO_PREFIX}/registry/{ns}.db"


def platform(ns: str, redis_url: str, image: str, endpoints: Endpoints) -> list[Manifest]:
    return [namespace(ns), redis_secret(ns, redis_url), object_store_secret(ns, endpoints), *serving(ns, image)]


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


def on_object_store(docs: Iterable[Manifest], bucket: str) -> list[Manifest]:
    """The FinServe resources with their offline data on the stack's bucket: every FeatureView source and
    DriftMonitor reference/current at ``.run/<rest>`` becomes ``s3://<bucket>/demo/<rest>``
    (:func:`offline_location`); a local path elsewhere is refused (no pod could read it)."""
    out: list[Manifest] = []
    for doc in docs:
        doc = copy.deepcopy(doc)
        spec = doc.get("spec") or {}
        kind = doc.get("kind")
        located = [spec.get("source")] if kind == "FeatureView" else (
            [spec.get("reference"), spec.get("current")] if kind == "DriftMonitor" else [])
        for data in located:
            if data and data.get("path"):
                data["path"] = offline_location(data["path"], bucket, f"{kind}/{doc['metadata']['name']}")
        out.append(doc)
    return out


def offline_location(path: str, bucket: str, owner: str = "") -> str:
    """``s3://<bucket>/demo/<rest>`` for the example's local ``.run/<rest>``; an ``s3://`` path as it is."""
    if path.startswith(S3_SCHEME):
        return path
    if not path.startswith(LOCAL_DATA_ROOT):
        raise ValueError(f"{owner}: offline data at {path!r} is outside {LOCAL_DATA_ROOT}, the demo cannot put it "
                         "on the object store")
    return f"{S3_SCHEME}{bucket}/{DEMO_PREFIX}/{path[len(LOCAL_DATA_ROOT):].strip('/')}"


def subject(docs: Iterable[Manifest], namespace: str) -> str:
    """The registry subject of the first StreamingWindow in ``namespace`` ('' without one)."""
    for doc in docs:
        if doc.get("kind") == "StreamingWindow":
            return StreamingWindowSpec.model_validate(doc["spec"]).subject_in(namespace)
    return ""


def topics(docs: Iterable[Manifest]) -> list[str]:
    return sorted({doc["spec"]["source"]["topic"] for doc in docs if doc.get("kind") == "StreamingWindow"})
