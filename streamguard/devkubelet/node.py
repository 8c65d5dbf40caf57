"""The dev Node object and its heartbeat (node Lease + Ready condition)."""

import os
import platform
import uuid
from datetime import UTC, datetime

from streamguard import __version__
from streamguard.devkubelet import RUNTIME_ANNOTATION
from streamguard.devkubelet.kube import Kube, KubeError, Obj

LEASE_SECONDS = 40


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _micro_now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _memory_kib() -> int:
    with open("/proc/meminfo") as meminfo:  # noqa: PTH123 - a one-line read of a proc file
        for line in meminfo:
            if line.startswith("MemTotal:"):
                return int(line.split()[1])
    return 0


def render(name: str, kubelet_port: int = 0) -> Obj:
    """The Node (metadata + status). Labelled and annotated as a development runtime; no taints."""
    arch = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())
    capacity = {"cpu": str(os.cpu_count() or 1), "memory": f"{_memory_kib()}Ki", "pods": "110"}
    return {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": arch,
                "streamguard.dev/dev-runtime": "devkubelet",
            },
            "annotations": {
                RUNTIME_ANNOTATION: "devkubelet: DEVELOPMENT ONLY. Pods run as unisolated local processes on "
                "this machine; images, resources and security contexts are ignored.",
            },
        },
        "spec": {},
        "status": {
            "capacity": capacity,
            "allocatable": capacity,
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}],
            "conditions": [ready_condition()],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": kubelet_port}},
            "nodeInfo": {
                "machineID": uuid.uuid5(uuid.NAMESPACE_DNS, platform.node()).hex,
                "systemUUID": str(uuid.uuid5(uuid.NAMESPACE_DNS, platform.node())),
                "bootID": str(uuid.uuid4()),
                "kernelVersion": platform.release(),
                "osImage": "devkubelet (local processes, development only)",
                "containerRuntimeVersion": f"devkubelet://{__version__}",
                "kubeletVersion": f"v0.0.0-devkubelet-{__version__}",
                "kubeProxyVersion": "",
                "operatingSystem": "linux",
                "architecture": arch,
            },
        },
    }


def ready_condition() -> Obj:
    stamp = now()
    return {"type": "Ready", "status": "True", "reason": "DevKubeletReady",
            "message": "devkubelet is running pods as local processes (development only)",
            "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}


def register(kube: Kube, name: str, kubelet_port: int = 0) -> None:
    """Create the Node (or refresh an existing one) and mark it Ready. ``kubelet_port`` serves pod logs."""
    node = render(name, kubelet_port)
    path = f"/api/v1/nodes/{name}"
    if kube.get(path) is None:
        kube.create("/api/v1/nodes", node)
    else:
        kube.merge_patch(path, {"metadata": node["metadata"], "spec": {"taints": None, "unschedulable": None}})
    kube.merge_patch(f"{path}/status", {"status": node["status"]})


def heartbeat(kube: Kube, name: str, ready: bool = True) -> None:
    """Renew the node Lease; refresh the Ready condition."""
    lease_path = f"/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/{name}"
    spec = {"holderIdentity": name, "leaseDurationSeconds": LEASE_SECONDS, "renewTime": _micro_now()}
    try:
        kube.merge_patch(lease_path, {"spec": spec})
    except KubeError as error:
        if error.status != 404:
            raise
        owner = kube.get(f"/api/v1/nodes/{name}") or {"metadata": {}}
        reference = [{"apiVersion": "v1", "kind": "Node", "name": name, "uid": owner["metadata"].get("uid", "")}]
        kube.create("/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases",
                    {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
                     "metadata": {"name": name, "namespace": "kube-node-lease", "ownerReferences": reference},
                     "spec": spec})
    condition = ready_condition()
    if not ready:
        condition.update(status="False", reason="DevKubeletStopped", message="devkubelet stopped")
    kube.merge_patch(f"/api/v1/nodes/{name}/status", {"status": {"conditions": [condition]}})
