"""kopf's peering resources, for running several operator replicas with one active (``--peering NAME``).

kopf keeps the replicas' heartbeats in the status of a ``KopfPeering`` (one per watched namespace) or a
``ClusterKopfPeering`` (cluster-wide operator); the replica with the highest ``--priority`` acts, the others
pause their watches until it is gone. The CRDs and the named object must exist before the replicas start.
"""

from typing import Any

import yaml

GROUP = "kopf.dev"


def _crd(kind: str, plural: str, scope: str) -> dict[str, Any]:
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}"},
        "spec": {
            "scope": scope,
            "group": GROUP,
            "names": {"kind": kind, "plural": plural, "singular": kind.lower()},
            "versions": [
                {
                    "name": "v1",
                    "served": True,
                    "storage": True,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "properties": {"status": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
                        }
                    },
                }
            ],
        },
    }


def crds() -> list[dict[str, Any]]:
    return [
        _crd("ClusterKopfPeering", "clusterkopfpeerings", "Cluster"),
        _crd("KopfPeering", "kopfpeerings", "Namespaced"),
    ]


def peering_objects(name: str, namespaces: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The peering object(s): one per namespace for a namespaced operator, else a cluster-wide one."""
    if not namespaces:
        return [{"apiVersion": f"{GROUP}/v1", "kind": "ClusterKopfPeering", "metadata": {"name": name}}]
    return [
        {"apiVersion": f"{GROUP}/v1", "kind": "KopfPeering", "metadata": {"name": name, "namespace": namespace}}
        for namespace in namespaces
    ]


def manifests_yaml(name: str, namespaces: tuple[str, ...] = ()) -> str:
    return yaml.safe_dump_all([*crds(), *peering_objects(name, namespaces)], sort_keys=False)
