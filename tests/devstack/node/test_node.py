"""The stack's real node: kubelet + containerd registered with the control plane, running the project's image."""

import ipaddress
import json
import subprocess
import urllib.request
from pathlib import Path
from typing import Any

import pytest

from streamguard.devstack import image, node, versions
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.supervisor import free_port
from tests.conftest import Kubectl
from tests.devstack.node.conftest import on_node
from tests.polling import wait_for

pytestmark = pytest.mark.stack


def _node(kubectl: Kubectl) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(kubectl("get", "node", node.NODE_NAME, "-o", "json").stdout)
    return loaded


def test_the_node_is_ready_on_containerd_with_the_control_planes_version(kubectl: Kubectl, stack: Endpoints) -> None:
    status = _node(kubectl)["status"]
    ready = next(c for c in status["conditions"] if c["type"] == "Ready")
    assert ready["status"] == "True", ready
    assert status["nodeInfo"]["containerRuntimeVersion"] == f"containerd://{versions.CONTAINERD.lstrip('v')}"
    assert status["nodeInfo"]["kubeletVersion"] == versions.K8S
    # The node's InternalIP is the host's address on the stack's own bridge (the kubelet refuses loopback).
    internal = next(a["address"] for a in status["addresses"] if a["type"] == "InternalIP")
    assert ipaddress.ip_address(internal) in _subnet(stack)
    # Every pod of the stack runs here: nothing keeps pods off the node.
    assert not _node(kubectl)["spec"].get("taints"), _node(kubectl)["spec"]["taints"]


def _subnet(stack: Endpoints) -> ipaddress.IPv4Network:
    network = json.loads((node.NodeLayout(Path(stack.run_dir).resolve()).root / "network.json").read_text())
    return ipaddress.IPv4Network(network["subnet"])


def _pod(name: str, ref: str, args: list[str], mounts: list[dict[str, str]] | None = None) -> dict[str, Any]:
    return on_node({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "containers": [{
                "name": "main",
                "image": ref,
                "imagePullPolicy": "Never",
                "command": ["/usr/bin/tini", "--"],
                "args": args,
                "securityContext": {"runAsNonRoot": True, "readOnlyRootFilesystem": True,
                                    "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
                "volumeMounts": mounts or [],
            }],
        },
    })


def _running(kubectl: Kubectl, namespace: str, name: str) -> dict[str, Any] | None:
    pod: dict[str, Any] = json.loads(kubectl("get", "pod", name, "-n", namespace, "-o", "json").stdout)
    phase = pod["status"].get("phase")
    assert phase not in ("Failed", "Succeeded"), f"pod {name} ended: {pod['status']}"
    waiting = [s["state"]["waiting"] for s in pod["status"].get("containerStatuses", []) if "waiting" in s["state"]]
    assert not any(w.get("reason") in ("ErrImageNeverPull", "CreateContainerError", "CrashLoopBackOff")
                   for w in waiting), waiting
    return pod if phase == "Running" else None


def test_a_pod_of_the_project_image_runs_in_a_container(kubectl: Kubectl, namespace: str, stack: Endpoints,
                                                        project_images: image.ProjectImages) -> None:
    name = "image-probe"
    manifest = _pod(name, project_images.main.name, ["sh", "-c", "echo started in $(hostname); exec sleep infinity"])
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))
    pod = wait_for(f"pod {name} Running on {node.NODE_NAME}", lambda: _running(kubectl, namespace, name), timeout=120)
    assert pod["spec"]["nodeName"] == node.NODE_NAME

    def sh(script: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return kubectl("exec", "-n", namespace, name, "--", "sh", "-c", script, check=check)

    assert sh("id -u").stdout.strip() == "10001"
    assert sh("id -g").stdout.strip() == "10001"
    assert sh("hostname").stdout.strip() == name
    write = sh("echo x > /probe", check=False)
    assert write.returncode != 0 and "Read-only file system" in write.stderr, write
    # Its own PID namespace: PID 1 is the image's init (tini), and no host process is visible.
    assert sh("tr '\\0' ' ' < /proc/1/cmdline").stdout.startswith("/usr/bin/tini -- sh -c")
    assert int(sh("ls -d /proc/[0-9]* | wc -l").stdout) < 10
    # Its own network namespace, with an address on the stack's bridge.
    assert ipaddress.ip_address(pod["status"]["podIP"]) in _subnet(stack)
    wait_for("the container's output in kubectl logs",
             lambda: f"started in {name}" in kubectl("logs", "-n", namespace, name).stdout, timeout=30)


@pytest.mark.parametrize("which", ["main", "spark"])
def test_each_image_runs_its_cli_in_a_container(kubectl: Kubectl, namespace: str,
                                                project_images: image.ProjectImages, which: str) -> None:
    """The entrypoint's CLI runs in each image; the Spark image's JRE runs, the main image has none; the
    development tooling is not importable (tests/devstack/node/test_image.py lists the files)."""
    name = f"image-{which}"
    kubectl("apply", "-n", namespace, "-f", "-",
            input=json.dumps(_pod(name, getattr(project_images, which).name, ["sleep", "infinity"])))
    wait_for(f"pod {name} Running", lambda: _running(kubectl, namespace, name), timeout=120)
    script = "streamguard --help >/dev/null && echo cli-ok; java -version 2>&1 | head -1; echo done"
    out = kubectl("exec", "-n", namespace, name, "--", "sh", "-c", script).stdout
    assert "cli-ok" in out, out
    assert ("openjdk" in out) == (which == "spark"), out
    generator = kubectl("exec", "-n", namespace, name, "--", "python", "-c", "import streamguard.demo.finserve_data",
                        check=False)
    assert generator.returncode != 0 and "ModuleNotFoundError" in generator.stderr


def test_a_claim_of_the_default_class_is_bound_to_a_folder_on_the_node(kubectl: Kubectl, namespace: str,
                                                                         stack: Endpoints,
                                                                         project_images: image.ProjectImages) -> None:
    claim = {"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data"},
             "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}
    pod = _pod("writer", project_images.main.name, ["sh", "-c", "echo kept > /data/file && exec sleep infinity"],
               mounts=[{"name": "data", "mountPath": "/data"}])
    pod["spec"]["volumes"] = [{"name": "data", "persistentVolumeClaim": {"claimName": "data"}}]
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(claim) + "\n" + json.dumps(pod))
    wait_for("pod writer Running", lambda: _running(kubectl, namespace, "writer"), timeout=120)
    bound = json.loads(kubectl("get", "pvc", "data", "-n", namespace, "-o", "json").stdout)
    assert bound["status"]["phase"] == "Bound"
    assert bound["spec"]["storageClassName"] == node.STORAGE_CLASS
    volume = json.loads(kubectl("get", "pv", bound["spec"]["volumeName"], "-o", "json").stdout)
    folder = Path(volume["spec"]["local"]["path"])
    assert folder.is_relative_to(node.NodeLayout(Path(stack.run_dir).resolve()).volumes)
    assert (folder / "file").read_text() == "kept\n"


def test_the_kubelet_probes_a_pod_and_port_forward_reaches_it_on_loopback(
        kubectl: Kubectl, namespace: str, stack: Endpoints, project_images: image.ProjectImages) -> None:
    name = "web"
    manifest = _pod(name, project_images.spark.name,
                    ["python", "-m", "http.server", "8080", "--directory", "/opt/streamguard/jars"])
    container = manifest["spec"]["containers"][0]
    container["ports"] = [{"name": "http", "containerPort": 8080}]
    container["readinessProbe"] = {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 2}
    kubectl("apply", "-n", namespace, "-f", "-", input=json.dumps(manifest))
    # Ready only once the kubelet's HTTP probe (over the stack's bridge) has passed.
    kubectl("wait", "--for=condition=Ready", f"pod/{name}", "-n", namespace, "--timeout=120s")
    port = free_port()
    forward = subprocess.Popen([str(Path(stack.bin_dir) / "kubectl"), f"--kubeconfig={stack.kubeconfig}",
                                "port-forward", "-n", namespace, f"pod/{name}", f"{port}:8080"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def listing() -> str | None:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2) as response:
                    return str(response.read().decode())
            except OSError:
                return None

        assert "spark-avro_2.13.jar" in wait_for("the pod's HTTP server through port-forward", listing, timeout=30)
    finally:
        forward.terminate()
        forward.wait(timeout=10)
