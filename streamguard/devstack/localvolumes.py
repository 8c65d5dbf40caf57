"""The stack's volume provisioner: a folder on the node per PersistentVolumeClaim of the local class.

A claim of the class (``streamguard-local``, the default) waits for its first pod; once the scheduler has
picked the node, a ``local`` PersistentVolume bound to the claim is created over a new folder under the
node's ``volumes`` directory. When the claim is deleted the volume is released: its folder and the
PersistentVolume are deleted (reclaim policy ``Delete``). Run by ``streamguard dev up``:
``python -m streamguard.devstack.localvolumes --kubeconfig ... --root ... --node ...``.
"""

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

from kubernetes import client, config
from kubernetes.client.exceptions import ApiException

PROVISIONER = "streamguard.dev/local-volume"
SELECTED_NODE = "volume.kubernetes.io/selected-node"
PROVISIONED_BY = "pv.kubernetes.io/provisioned-by"


def volume_for(claim: dict[str, Any], storage_class: str, node: str, path: Path) -> dict[str, Any]:
    """The PersistentVolume that satisfies ``claim`` (an API dict) with the folder ``path`` on ``node``."""
    meta, spec = claim["metadata"], claim["spec"]
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolume",
        "metadata": {"name": f"pvc-{meta['uid']}", "annotations": {PROVISIONED_BY: PROVISIONER}},
        "spec": {
            "capacity": {"storage": spec["resources"]["requests"]["storage"]},
            "accessModes": spec["accessModes"],
            "persistentVolumeReclaimPolicy": "Delete",
            "storageClassName": storage_class,
            "volumeMode": spec.get("volumeMode") or "Filesystem",
            "claimRef": {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "namespace": meta["namespace"],
                         "name": meta["name"], "uid": meta["uid"]},
            "local": {"path": str(path)},
            "nodeAffinity": {"required": {"nodeSelectorTerms": [{"matchExpressions": [
                {"key": "kubernetes.io/hostname", "operator": "In", "values": [node]}]}]}},
        },
    }


def wants_volume(claim: dict[str, Any], storage_class: str, node: str) -> bool:
    """A pending claim of our class whose pod the scheduler has placed on our node."""
    meta = claim["metadata"]
    return (claim["spec"].get("storageClassName") == storage_class
            and claim.get("status", {}).get("phase") == "Pending"
            and not claim["spec"].get("volumeName")
            and (meta.get("annotations") or {}).get(SELECTED_NODE) == node
            and not meta.get("deletionTimestamp"))


class Provisioner:
    def __init__(self, api: client.ApiClient, root: Path, node: str, storage_class: str) -> None:
        self.core = client.CoreV1Api(api)
        self.api = api
        self.root = root
        self.node = node
        self.storage_class = storage_class

    def _dicts(self, items: list[Any]) -> list[dict[str, Any]]:
        return [self.api.sanitize_for_serialization(item) for item in items]  # type: ignore[no-untyped-call]

    def once(self) -> None:
        for claim in self._dicts(self.core.list_persistent_volume_claim_for_all_namespaces().items):
            if wants_volume(claim, self.storage_class, self.node):
                self._provision(claim)
        for volume in self._dicts(self.core.list_persistent_volume().items):
            annotations = volume["metadata"].get("annotations") or {}
            if annotations.get(PROVISIONED_BY) == PROVISIONER and volume.get("status", {}).get("phase") == "Released":
                self._reclaim(volume)

    def _provision(self, claim: dict[str, Any]) -> None:
        meta = claim["metadata"]
        path = self.root / f"{meta['namespace']}_{meta['name']}_{meta['uid']}"
        path.mkdir(parents=True, exist_ok=True)
        # Pods run as non-root users of their own choosing; a per-claim folder is theirs to write.
        path.chmod(0o777)
        try:
            self.core.create_persistent_volume(volume_for(claim, self.storage_class, self.node, path))  # type: ignore[arg-type]
        except ApiException as error:
            if error.status != 409:
                raise

    def _reclaim(self, volume: dict[str, Any]) -> None:
        path = Path(volume["spec"]["local"]["path"])
        if path.is_relative_to(self.root):
            shutil.rmtree(path, ignore_errors=True)
        try:
            self.core.delete_persistent_volume(volume["metadata"]["name"])
        except ApiException as error:
            if error.status != 404:
                raise


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kubeconfig", required=True)
    parser.add_argument("--root", type=Path, required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--storage-class", default="streamguard-local")
    parser.add_argument("--heartbeat", type=Path, required=True)
    args = parser.parse_args()
    api = config.new_client_from_config(config_file=args.kubeconfig)  # type: ignore[no-untyped-call]
    provisioner = Provisioner(api, args.root.resolve(), args.node, args.storage_class)
    while True:
        try:
            provisioner.once()
            args.heartbeat.touch()
        except (ApiException, OSError) as error:
            print(f"local-volume-provisioner: {error}", flush=True)
        time.sleep(1)


if __name__ == "__main__":
    main()
