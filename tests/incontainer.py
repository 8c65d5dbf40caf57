"""What a pod's container says about itself, and the assertion that it is a container: uid 10001, a root
file system that refuses writes, its own PID 1 and hostname = pod name (issue 13's acceptance, for every
workload kind: tests/devstack/node/test_workloads.py, tests/demo/test_e2e.py)."""

from typing import Any

from streamguard.devstack import node
from tests.conftest import Kubectl

FACTS = ("echo uid=$(id -u); echo host=$(hostname); echo pid1=$(tr '\\0' ' ' < /proc/1/cmdline); "
         "if touch /probe 2>/tmp/err; then echo root=writable; else echo root=$(cat /tmp/err); fi")
"""Shell lines printing ``uid=``, ``host=``, ``pid1=`` and ``root=`` (the error writing to ``/``)."""


def parse(out: str) -> dict[str, str]:
    return dict(line.split("=", 1) for line in out.strip().splitlines()[:4])


def inside(kubectl: Kubectl, namespace: str, pod: dict[str, Any]) -> dict[str, str]:
    """:data:`FACTS` as seen from inside the running ``pod`` (``kubectl exec``)."""
    return parse(kubectl("exec", "-n", namespace, pod["metadata"]["name"], "--", "sh", "-c", FACTS).stdout)


def assert_a_container(seen: dict[str, str], pod: dict[str, Any], image_name: str, pid1: str) -> None:
    """``seen`` (from inside the pod) shows a container: uid 10001, its hostname, its own PID 1, and a root
    file system that refuses writes."""
    spec = pod["spec"]["containers"][0]
    assert spec["image"] == image_name and spec["securityContext"]["readOnlyRootFilesystem"] is True
    assert pod["spec"]["nodeName"] == node.NODE_NAME
    assert seen["uid"] == "10001", seen
    assert seen["host"] == pod["metadata"]["name"], seen
    assert pid1 in seen["pid1"], seen
    assert "Read-only file system" in seen["root"], seen
