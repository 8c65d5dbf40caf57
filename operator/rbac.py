"""The least-privilege ClusterRole of the operator, rendered from the calls the code makes."""

from typing import Any

import yaml

from streamguard.api.common import GROUP
from streamguard.api.kinds import FEATURE_VIEW, KINDS, STREAMING_WINDOW
from streamguard.operator.render.executors import DRIVER_RULES

ROLE_NAME = "streamguard-operator"
_CHILD_VERBS = ["get", "list", "watch", "create", "patch", "delete"]
"""Children are listed by label, read by name before their first apply (an object of that name the operator
does not own is a conflict, never taken over), applied (create on first apply) and pruned."""


def rules() -> list[dict[str, Any]]:
    """The operator's rules. It creates each workload's Role, and the apiserver lets it grant only what it
    holds itself (no ``escalate``/``bind``): hence ``get`` on the status subresources it never reads."""
    return [
        {
            "apiGroups": [GROUP],
            "resources": [kind.plural for kind in KINDS],
            "verbs": ["get", "list", "watch"],
        },
        # The metadata the operator keeps on its resources: the Feast-registry finalizer of FeatureViews, the
        # registration record and the subject finalizer of StreamingWindows.
        {"apiGroups": [GROUP], "resources": [FEATURE_VIEW.plural, STREAMING_WINDOW.plural], "verbs": ["patch"]},
        {
            "apiGroups": [GROUP],
            "resources": [f"{kind.plural}/status" for kind in KINDS],
            "verbs": ["get", "patch"],
        },
        {
            "apiGroups": [GROUP],
            "resources": [f"{kind.plural}/finalizers" for kind in KINDS],
            "verbs": ["update"],
        },
        {
            "apiGroups": [""],
            "resources": ["configmaps", "services", "persistentvolumeclaims", "serviceaccounts"],
            "verbs": _CHILD_VERBS,
        },
        {"apiGroups": ["rbac.authorization.k8s.io"], "resources": ["roles", "rolebindings"], "verbs": _CHILD_VERBS},
        # Held only to be granted: the Role of a StreamingWindow with executors lets its Spark driver manage
        # its executor pods and their ConfigMap (the operator itself never touches a pod).
        *DRIVER_RULES,
        {"apiGroups": ["apps"], "resources": ["deployments"], "verbs": _CHILD_VERBS},
        {"apiGroups": ["batch"], "resources": ["cronjobs"], "verbs": _CHILD_VERBS},
        {
            "apiGroups": ["monitoring.coreos.com"],
            "resources": ["prometheusrules"],
            "verbs": ["get", "list", "create", "patch", "delete"],
        },
        {"apiGroups": [""], "resources": ["events"], "verbs": ["create"]},
        {"apiGroups": ["events.k8s.io"], "resources": ["events"], "verbs": ["create"]},
        {"apiGroups": ["apiextensions.k8s.io"], "resources": ["customresourcedefinitions"], "verbs": ["list", "watch"]},
        {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["list", "watch"]},
        {
            "apiGroups": ["kopf.dev"],
            "resources": ["kopfpeerings", "clusterkopfpeerings"],
            "verbs": ["get", "list", "watch", "patch"],
        },
    ]


def cluster_role(name: str = ROLE_NAME) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {
            "name": name,
            "labels": {"app.kubernetes.io/part-of": "streamguard", "app.kubernetes.io/component": "operator"},
        },
        "rules": rules(),
    }


def cluster_role_yaml(name: str = ROLE_NAME) -> str:
    return yaml.safe_dump(cluster_role(name), sort_keys=False)
