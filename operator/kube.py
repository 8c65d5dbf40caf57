"""A thin async client for the few Kubernetes API calls the operator makes, counting every call.

Credentials come from a kubeconfig or the in-cluster service account through the ``kubernetes``
package's loaders; requests go out over one pooled ``httpx.AsyncClient``.
"""

import json
import ssl
from collections import Counter
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
from kubernetes.client import Configuration

from streamguard.api.common import GROUP, VERSION
from streamguard.api.kinds import KINDS as OWN_KINDS
from streamguard.operator.settings import FIELD_MANAGER

Manifest = dict[str, Any]

WRITE_VERBS = frozenset({"apply", "patch", "create", "delete"})


@dataclass(frozen=True)
class KindInfo:
    group: str
    version: str
    plural: str

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    def path(self, namespace: str | None, name: str | None = None, subresource: str | None = None) -> str:
        """The namespaced path; with ``namespace=None`` the collection across all namespaces."""
        base = f"/apis/{self.group}/{self.version}" if self.group else f"/api/{self.version}"
        path = f"{base}/namespaces/{quote(namespace)}/{self.plural}" if namespace else f"{base}/{self.plural}"
        if name:
            path += f"/{quote(name)}"
        if subresource:
            path += f"/{subresource}"
        return path


KINDS: dict[str, KindInfo] = {
    "ConfigMap": KindInfo("", "v1", "configmaps"),
    "Service": KindInfo("", "v1", "services"),
    "PersistentVolumeClaim": KindInfo("", "v1", "persistentvolumeclaims"),
    "Event": KindInfo("", "v1", "events"),
    "ServiceAccount": KindInfo("", "v1", "serviceaccounts"),
    "Role": KindInfo("rbac.authorization.k8s.io", "v1", "roles"),
    "RoleBinding": KindInfo("rbac.authorization.k8s.io", "v1", "rolebindings"),
    "Deployment": KindInfo("apps", "v1", "deployments"),
    "CronJob": KindInfo("batch", "v1", "cronjobs"),
    "PrometheusRule": KindInfo("monitoring.coreos.com", "v1", "prometheusrules"),
    **{kind.kind: KindInfo(GROUP, VERSION, kind.plural) for kind in OWN_KINDS},
}


class KubeError(Exception):
    """A failed API call; ``status`` is the HTTP status (0 when the server could not be reached)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"HTTP {status}: {message}" if status else message)
        self.status = status
        self.message = message

    @property
    def transient(self) -> bool:
        return self.status == 0 or self.status == 409 or self.status == 429 or self.status >= 500


def _ssl_context(configuration: Configuration) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=configuration.ssl_ca_cert or None)
    if not configuration.verify_ssl:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if configuration.cert_file and configuration.key_file:
        context.load_cert_chain(configuration.cert_file, configuration.key_file)
    return context


class Kube:
    def __init__(self, configuration: Configuration, timeout: float = 30.0) -> None:
        self._configuration = configuration
        self._client = httpx.AsyncClient(
            base_url=configuration.host,
            verify=_ssl_context(configuration),
            timeout=timeout,
            limits=httpx.Limits(max_connections=16, max_keepalive_connections=16),
        )
        self.calls: Counter[tuple[str, str]] = Counter()
        self.written: dict[tuple[str, str, str], str] = {}
        """(kind, namespace, name) -> resourceVersion of the operator's latest apply of that object."""

    async def close(self) -> None:
        await self._client.aclose()

    @property
    def writes(self) -> int:
        return sum(count for (verb, _), count in self.calls.items() if verb in WRITE_VERBS)

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json"}
        auth = self._configuration.auth_settings().get("BearerToken")
        if auth and auth.get("value"):
            headers["Authorization"] = str(auth["value"])
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    async def _request(
        self,
        verb: str,
        kind: str,
        method: str,
        path: str,
        params: dict[str, str] | None = None,
        body: Any = None,
        content_type: str | None = None,
    ) -> Manifest | None:
        self.calls[(verb, kind)] += 1
        try:
            response = await self._client.request(
                method,
                path,
                params=params,
                content=None if body is None else json.dumps(body),
                headers=self._headers(content_type if body is not None else None),
            )
        except httpx.HTTPError as error:
            raise KubeError(0, f"{method} {path}: {error!r}") from error
        if response.status_code == 404 and verb in ("get", "delete"):
            return None
        if response.status_code >= 400:
            try:
                message = response.json().get("message", response.text)
            except ValueError:
                message = response.text
            raise KubeError(response.status_code, f"{method} {path}: {message}")
        result: Manifest = response.json()
        return result

    async def get(self, kind: str, namespace: str, name: str) -> Manifest | None:
        return await self._request("get", kind, "GET", KINDS[kind].path(namespace, name))

    async def select(self, kind: str, namespace: str | None, label_selector: str | None = None) -> list[Manifest]:
        """Objects of ``kind`` in ``namespace`` (``None``: in every namespace)."""
        params = {"labelSelector": label_selector} if label_selector else None
        result = await self._request("list", kind, "GET", KINDS[kind].path(namespace), params=params)
        items: list[Manifest] = (result or {}).get("items", [])
        for item in items:
            item.setdefault("apiVersion", KINDS[kind].api_version)
            item.setdefault("kind", kind)
        return items

    async def apply(self, manifest: Manifest, subresource: str | None = None) -> Manifest:
        """Server-side apply with the operator's field manager, taking ownership of conflicting fields."""
        kind = manifest["kind"]
        meta = manifest["metadata"]
        result = await self._request(
            "apply",
            kind,
            "PATCH",
            KINDS[kind].path(meta["namespace"], meta["name"], subresource),
            params={"fieldManager": FIELD_MANAGER, "force": "true"},
            body=manifest,
            content_type="application/apply-patch+yaml",
        )
        version = ((result or {}).get("metadata") or {}).get("resourceVersion")
        if version and subresource is None:
            self.written[(kind, meta["namespace"], meta["name"])] = version
        return result or {}

    async def json_patch(self, kind: str, namespace: str, name: str, operations: list[Manifest]) -> Manifest:
        result = await self._request(
            "patch",
            kind,
            "PATCH",
            KINDS[kind].path(namespace, name),
            body=operations,
            content_type="application/json-patch+json",
        )
        return result or {}

    async def delete(self, kind: str, namespace: str, name: str, uid: str | None = None) -> None:
        body: Manifest = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
        if uid:
            body["preconditions"] = {"uid": uid}
        await self._request(
            "delete", kind, "DELETE", KINDS[kind].path(namespace, name), body=body, content_type="application/json"
        )

    async def create(self, manifest: Manifest) -> Manifest:
        kind = manifest["kind"]
        result = await self._request(
            "create",
            kind,
            "POST",
            KINDS[kind].path(manifest["metadata"]["namespace"]),
            body=manifest,
            content_type="application/json",
        )
        return result or {}

    async def served(self, kind: str) -> bool:
        """Whether the cluster serves ``kind`` (discovery: readable by every authenticated user)."""
        info = KINDS[kind]
        base = f"/apis/{info.group}/{info.version}" if info.group else f"/api/{info.version}"
        self.calls[("discover", kind)] += 1
        try:
            response = await self._client.get(base, headers=self._headers())
        except httpx.HTTPError as error:
            raise KubeError(0, f"GET {base}: {error!r}") from error
        if response.status_code == 404:
            return False
        if response.status_code >= 400:
            raise KubeError(response.status_code, f"GET {base}: {response.text[:200]}")
        return any(r.get("name") == info.plural for r in response.json().get("resources", []))
