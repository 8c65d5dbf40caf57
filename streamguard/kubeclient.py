"""The one way StreamGuard's processes reach the apiserver (the operator's async client builds on the same
configuration), and the one status writer the workloads share.

Order, everywhere: an explicit kubeconfig, then ``$KUBECONFIG``, then the pod's ServiceAccount
(in-cluster), then ``~/.kube/config``.
"""

import os
from typing import Any

from kubernetes import client
from kubernetes import config as kube_config
from kubernetes.client import Configuration

from streamguard.api.common import GROUP, VERSION
from streamguard.api.kinds import Kind

ConfigError = kube_config.ConfigException
IN_CLUSTER_ENV = "KUBERNETES_SERVICE_HOST"


def configured() -> bool:
    """Whether this process was given an apiserver (``$KUBECONFIG`` or a pod's ServiceAccount)."""
    return bool(os.environ.get("KUBECONFIG") or os.environ.get(IN_CLUSTER_ENV))


def load_configuration(kubeconfig: str | None = None, context: str | None = None) -> Configuration:
    """The client configuration, in the order above; raises :data:`ConfigError` when none is found."""
    configuration = Configuration()
    if kubeconfig or os.environ.get("KUBECONFIG") or not os.environ.get(IN_CLUSTER_ENV):
        kube_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=kubeconfig, context=context, client_configuration=configuration
        )
    else:
        kube_config.load_incluster_config(client_configuration=configuration)  # type: ignore[no-untyped-call]
    return configuration


def api_client(kubeconfig: str | None = None) -> client.ApiClient:
    return client.ApiClient(load_configuration(kubeconfig))


def apply_status(api: client.ApiClient, kind: Kind, body: dict[str, Any], field_manager: str) -> Any:
    """Server-side apply of ``body`` (an apply configuration of a StreamGuard object) to its ``status``
    subresource, forcing ``field_manager``'s fields: each writer owns its own fields only."""
    meta = body["metadata"]
    return client.CustomObjectsApi(api).patch_namespaced_custom_object_status(
        GROUP, VERSION, meta["namespace"], kind.plural, meta["name"], body,
        field_manager=field_manager, force=True, _content_type="application/apply-patch+yaml",
    )
