"""The thin shell around the cluster: list live resources, server-side dry-run apply."""

import json
import os
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError as Urllib3Error

from streamguard.api import GROUP, VERSION
from streamguard.api.kinds import PLURALS
from streamguard.delivery.resources import KIND_ORDER, Key, Problem, Resource, normalize_spec
from streamguard.kubeclient import ConfigError, api_client

FIELD_MANAGER = "streamguard-plan"
"""Field manager of the dry-run applies (forced: the plan shows what the folder's values would do)."""


class ClusterUnreachableError(RuntimeError):
    """No kubeconfig, or the apiserver did not answer."""


def connect(kubeconfig: str | None) -> client.ApiClient:
    """An API client for ``kubeconfig`` (default ``$KUBECONFIG`` / ``~/.kube/config``)."""
    path = kubeconfig or os.environ.get("KUBECONFIG") or str(Path.home() / ".kube" / "config")
    if not Path(path.split(os.pathsep)[0]).is_file():
        raise ClusterUnreachableError(f"no kubeconfig at {path} (set KUBECONFIG, or pass --empty to plan "
                                 "against an empty cluster)")
    try:
        api = api_client(path)
        client.VersionApi(api).get_code(_request_timeout=10)
    except (ApiException, Urllib3Error, OSError, ConfigError) as error:
        raise ClusterUnreachableError(f"cannot reach the cluster in {path}: {error}") from error
    return api


def live_resources(api: client.ApiClient, namespaces: set[str]) -> tuple[dict[Key, Resource], list[str]]:
    """StreamGuard resources in ``namespaces``; notes for kinds whose CRD is not installed."""
    objects = client.CustomObjectsApi(api)
    found: dict[Key, Resource] = {}
    notes: list[str] = []
    for kind in KIND_ORDER:
        for namespace in sorted(namespaces):
            try:
                listing: dict[str, Any] = objects.list_namespaced_custom_object(  # type: ignore[assignment]
                    GROUP, VERSION, namespace, PLURALS[kind])
            except ApiException as error:
                if error.status == 404:
                    notes.append(f"the {kind} CRD is not installed in the cluster: everything of that kind "
                                 "would be created (install the chart or `kubectl apply -f crds/` first)")
                    break
                raise ClusterUnreachableError(f"listing {PLURALS[kind]} in {namespace}: {error.reason}") from error
            for item in listing.get("items", []):
                metadata = item.get("metadata", {})
                key = Key(kind, metadata.get("namespace", namespace), metadata["name"])
                found[key] = Resource(key, normalize_spec(kind, item.get("spec") or {}), item)
    return found, notes


def _applied(resource: Resource) -> dict[str, Any]:
    """The document to apply: without status and server-owned metadata."""
    doc = {k: v for k, v in resource.document.items() if k != "status"}
    metadata = {k: v for k, v in (doc.get("metadata") or {}).items()
                if k in ("name", "namespace", "labels", "annotations")}
    return {**doc, "metadata": metadata}


def dry_run_apply(api: client.ApiClient, resource: Resource) -> tuple[list[Problem], list[str]]:
    """Server-side apply with ``dryRun=All``: admission (OpenAPI schema + CEL rules) judges the object."""
    key = resource.key
    try:
        client.CustomObjectsApi(api).patch_namespaced_custom_object(
            GROUP, VERSION, key.namespace, PLURALS[key.kind], key.name, _applied(resource),
            dry_run="All", field_manager=FIELD_MANAGER, force=True, field_validation="Strict",
            _content_type="application/apply-patch+yaml",
        )
    except ApiException as error:
        return _rejections(key, error)
    return [], []


def _rejections(key: Key, error: ApiException) -> tuple[list[Problem], list[str]]:
    try:
        status = json.loads(error.body or "{}")
    except ValueError:
        status = {}
    details = status.get("details") or {}
    if error.status == 404 and details.get("kind") == "namespaces":
        return [], [f"{key}: namespace {key.namespace} does not exist yet, so the apiserver could not judge "
                    "it (validated offline only)"]
    if error.status == 404:
        return [], [f"{key}: the {key.kind} CRD is not installed, so the apiserver could not judge it "
                    "(validated offline only)"]
    causes = details.get("causes") or []
    if causes:
        return [Problem(str(key), c.get("message", "invalid"), _field(c.get("field", "")), "admission")
                for c in causes], []
    return [Problem(str(key), status.get("message") or f"HTTP {error.status} {error.reason}", "", "admission")], []


def _field(path: str) -> str:
    return path if not path or path.startswith(".") else f".{path}"
