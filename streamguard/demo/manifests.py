"""What the demo puts into the cluster besides the FinServe resources (pure renderers)."""

import copy
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import yaml

from streamguard.api.common import GROUP
from streamguard.api.kinds import PLURALS
from streamguard.api.streamingwindow import StreamingWindowSpec
from streamguard.serving.manifests import ServingDeployment
from streamguard.serving.manifests import render as render_serving

Manifest = dict[str, Any]
WORKLOAD_ACCOUNT = "streamguard-workload"
REDIS_SECRET = "streamguard-redis"
DEMO_LABELS = {"app.kubernetes.io/part-of": "streamguard", "app.kubernetes.io/managed-by": "streamguard-demo"}


def namespace(name: str) -> Manifest:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": DEMO_LABELS}}


def redis_secret(ns: str, redis_url: str) -> Manifest:
    """The Secret the operator's and serving's pods read ``STREAMGUARD_REDIS_URL`` from."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": REDIS_SECRET, "namespace": ns, "labels": DEMO_LABELS},
            "stringData": {"url": redis_url}}


def workload_identity(ns: str) -> list[Manifest]:
    """The ServiceAccount workload pods run as, allowed to read the resources and write their status."""
    meta = {"name": WORKLOAD_ACCOUNT, "namespace": ns, "labels": DEMO_LABELS}
    resources = list(PLURALS.values())
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": meta},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": meta,
         "rules": [{"apiGroups": [GROUP], "resources": resources, "verbs": ["get", "list", "watch"]},
                   {"apiGroups": [GROUP], "resources": [f"{r}/status" for r in resources],
                    "verbs": ["get", "patch", "update"]},
                   {"apiGroups": [""], "resources": ["events"], "verbs": ["create", "patch"]}]},
        {"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": meta,
         "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": WORKLOAD_ACCOUNT},
         "subjects": [{"kind": "ServiceAccount", "name": WORKLOAD_ACCOUNT, "namespace": ns}]},
    ]


def serving(ns: str, port: int) -> list[Manifest]:
    """One serving replica listening on ``port`` (devkubelet keeps a free port as declared)."""
    return render_serving(ServingDeployment(namespace=ns, auth_token_secret=None, replicas=1, port=port, workers=1))


def platform(ns: str, redis_url: str, serving_port: int) -> list[Manifest]:
    return [namespace(ns), redis_secret(ns, redis_url), *workload_identity(ns), *serving(ns, serving_port)]


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
