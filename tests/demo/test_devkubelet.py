"""devkubelet against the real kube-apiserver + kube-controller-manager, on generic workloads."""

import json
import threading
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from streamguard.devkubelet import PORTS_ANNOTATION
from streamguard.devkubelet.kube import Kube
from streamguard.devkubelet.kubelet import Config, Kubelet
from streamguard.devstack.endpoints import Endpoints
from tests.polling import wait_for

pytestmark = pytest.mark.stack

PART_OF = {"app.kubernetes.io/part-of": "streamguard", "app.kubernetes.io/name": "devkubelet-test"}
Obj = dict[str, Any]


@pytest.fixture
def kube(kube_api: client.ApiClient) -> Kube:
    return Kube(kube_api)


@pytest.fixture
def devkubelet(stack: Endpoints, namespace: str, kube: Kube, tmp_path: Path) -> Iterator[Kubelet]:
    """A devkubelet with its own node, scoped to the test's namespace."""
    config = Config(kubeconfig=stack.kubeconfig, run_dir=tmp_path, node_name=f"dk-{namespace}",
                    namespaces=(namespace,), poll_interval=0.3, workdir=str(tmp_path))
    kubelet = Kubelet(config, kube)
    stop = threading.Event()
    thread = threading.Thread(target=kubelet.run, args=(stop,), daemon=True)
    thread.start()
    yield kubelet
    stop.set()
    thread.join(60)
    kube.delete(f"/api/v1/nodes/{config.node_name}")


def pods(kube: Kube, namespace: str, selector: str) -> list[Obj]:
    items: list[Obj] = kube.request("GET", f"/api/v1/namespaces/{namespace}/pods",
                                    query={"labelSelector": selector}).get("items", [])
    return items


def condition(obj: Obj, kind: str) -> str | None:
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item["type"] == kind:
            return str(item["status"])
    return None


def events(kube: Kube, namespace: str, reason: str) -> list[Obj]:
    items = kube.request("GET", f"/api/v1/namespaces/{namespace}/events").get("items", [])
    return [e for e in items if e["reason"] == reason]


SERVER = """
import os, pathlib, sys
print("GREETING=" + os.environ["GREETING"], flush=True)
print("TOKEN=" + os.environ["TOKEN"], flush=True)
print("CONFIG=" + pathlib.Path(sys.argv[1]).read_text(), flush=True)
pathlib.Path(os.environ["HOME"], "marker").write_text("ok")
os.execvp(sys.executable, [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", sys.argv[2]])
"""


def web_deployment(name: str, container_port: int = 18080) -> Obj:
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "labels": PART_OF},
        "spec": {
            "replicas": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {**PART_OF, "app": name}},
                "spec": {
                    "terminationGracePeriodSeconds": 5,
                    "containers": [{
                        "name": "web",
                        "image": "python:3.11",
                        "command": ["python", "-c", SERVER],
                        "args": ["/etc/web/settings.txt", "$(STREAMGUARD_PORT_HTTP)"],
                        "env": [
                            {"name": "HOME", "value": "/scratch"},
                            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
                            {"name": "GREETING", "value": "hello from $(POD)"},
                            {"name": "TOKEN", "valueFrom": {"secretKeyRef": {"name": "web", "key": "token"}}},
                        ],
                        "ports": [{"name": "http", "containerPort": container_port}],
                        "readinessProbe": {"httpGet": {"path": "/", "port": "http"}, "periodSeconds": 1},
                        "volumeMounts": [{"name": "settings", "mountPath": "/etc/web"},
                                         {"name": "scratch", "mountPath": "/scratch"}],
                    }],
                    "volumes": [{"name": "settings", "configMap": {"name": "web"}},
                                {"name": "scratch", "emptyDir": {}}],
                },
            },
        },
    }


def create_inputs(kube: Kube, namespace: str) -> None:
    kube.create(f"/api/v1/namespaces/{namespace}/configmaps",
                {"metadata": {"name": "web"}, "data": {"settings.txt": "mode=dev"}})
    kube.create(f"/api/v1/namespaces/{namespace}/secrets",
                {"metadata": {"name": "web"}, "stringData": {"token": "s3cret"}})


def test_deployment_runs_ready_and_stops_on_delete(devkubelet: Kubelet, kube: Kube, namespace: str,
                                                   kubectl: Callable[..., Any]) -> None:
    create_inputs(kube, namespace)
    kube.create(f"/apis/apps/v1/namespaces/{namespace}/deployments", web_deployment("web"))

    def available() -> Obj | None:
        found = kube.get(f"/apis/apps/v1/namespaces/{namespace}/deployments/web")
        return found if found and (found.get("status") or {}).get("availableReplicas") == 1 else None

    wait_for("the Deployment to report 1 available replica", available, 90)
    [pod] = pods(kube, namespace, "app=web")
    assert pod["spec"]["nodeName"] == f"dk-{namespace}"
    assert pod["status"]["phase"] == "Running"
    assert condition(pod, "Ready") == "True"
    [container] = pod["status"]["containerStatuses"]
    assert container["ready"] is True and container["restartCount"] == 0 and "running" in container["state"]

    port = json.loads(pod["metadata"]["annotations"][PORTS_ANNOTATION])["web"]["http"]
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=5) as response:
        assert response.status == 200
    log = devkubelet.config.run_dir / "pods" / f"{namespace}_{pod['metadata']['name']}.log"
    text = log.read_text()
    assert f"GREETING=hello from {pod['metadata']['name']}" in text
    assert "TOKEN=s3cret" in text
    assert "CONFIG=mode=dev" in text
    assert (devkubelet.config.run_dir / "pods" / f"{namespace}_{pod['metadata']['name']}" / "volumes" / "scratch"
            / "marker").read_text() == "ok"
    assert events(kube, namespace, "Started")
    logs = kubectl("logs", "-n", namespace, pod["metadata"]["name"], "--tail=50").stdout
    assert f"GREETING=hello from {pod['metadata']['name']}" in logs

    kube.delete(f"/apis/apps/v1/namespaces/{namespace}/deployments/web")
    wait_for("the pod to be gone", lambda: not pods(kube, namespace, "app=web"), 60)
    with pytest.raises(OSError):
        urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)


def test_two_pods_on_the_same_container_port_get_distinct_ports(devkubelet: Kubelet, kube: Kube,
                                                                 namespace: str) -> None:
    create_inputs(kube, namespace)
    for name in ("web-a", "web-b"):
        kube.create(f"/apis/apps/v1/namespaces/{namespace}/deployments", web_deployment(name, 18181))

    def ready_ports() -> list[int] | None:
        found = pods(kube, namespace, "app in (web-a,web-b)")
        if len(found) != 2 or any(condition(p, "Ready") != "True" for p in found):
            return None
        return [json.loads(p["metadata"]["annotations"][PORTS_ANNOTATION])["web"]["http"] for p in found]

    ports = wait_for("both pods Ready", ready_ports, 90)
    assert len(set(ports)) == 2


def cronjob(name: str, script: str) -> Obj:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": name, "labels": PART_OF},
        "spec": {
            "schedule": "0 0 1 1 *",
            "suspend": True,
            "jobTemplate": {"spec": {
                "backoffLimit": 0,
                "template": {
                    "metadata": {"labels": PART_OF},
                    "spec": {"restartPolicy": "Never",
                             "containers": [{"name": "job", "image": "python:3.11",
                                             "command": ["python", "-c", script]}]},
                },
            }},
        },
    }


def job_condition(kube: Kube, namespace: str, name: str) -> str | None:
    job = kube.get(f"/apis/batch/v1/namespaces/{namespace}/jobs/{name}")
    for item in ((job or {}).get("status") or {}).get("conditions") or []:
        if item["type"] in ("Complete", "Failed") and item["status"] == "True":
            return str(item["type"])
    return None


def test_jobs_created_from_a_cronjob_complete_or_fail(devkubelet: Kubelet, kube: Kube, namespace: str,
                                                     kubectl: Callable[..., Any]) -> None:
    kube.create(f"/apis/batch/v1/namespaces/{namespace}/cronjobs", cronjob("ok", "print('done')"))
    kube.create(f"/apis/batch/v1/namespaces/{namespace}/cronjobs", cronjob("bad", "import sys; sys.exit(3)"))
    kubectl("create", "job", "ok-1", "--from=cronjob/ok", "-n", namespace)
    kubectl("create", "job", "bad-1", "--from=cronjob/bad", "-n", namespace)

    assert wait_for("job ok-1 to finish", lambda: job_condition(kube, namespace, "ok-1"), 90) == "Complete"
    assert wait_for("job bad-1 to finish", lambda: job_condition(kube, namespace, "bad-1"), 90) == "Failed"
    [failed] = pods(kube, namespace, "job-name=bad-1")
    assert failed["status"]["phase"] == "Failed"
    assert failed["status"]["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3
    assert any("exited with code 3" in e["message"] for e in events(kube, namespace, "Failed"))


def test_crashing_container_restarts_with_backoff(devkubelet: Kubelet, kube: Kube, namespace: str) -> None:
    create_inputs(kube, namespace)
    deployment = web_deployment("crash")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container.update(command=["python", "-c", "import sys; print('boom'); sys.exit(1)"], args=[], env=[])
    kube.create(f"/apis/apps/v1/namespaces/{namespace}/deployments", deployment)

    def crash_looping() -> Obj | None:
        found = pods(kube, namespace, "app=crash")
        if not found:
            return None
        [status] = (found[0].get("status") or {}).get("containerStatuses") or [{}]
        waiting = (status.get("state") or {}).get("waiting") or {}
        return status if status.get("restartCount", 0) >= 2 and waiting.get("reason") == "CrashLoopBackOff" else None

    status = wait_for("CrashLoopBackOff after two restarts", crash_looping, 60)
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert events(kube, namespace, "BackOff")
    [pod] = pods(kube, namespace, "app=crash")
    assert condition(pod, "Ready") == "False"


def test_missing_secret_is_reported_then_recovered(devkubelet: Kubelet, kube: Kube, namespace: str) -> None:
    kube.create(f"/apis/apps/v1/namespaces/{namespace}/deployments", web_deployment("late"))

    def config_error() -> Obj | None:
        found = pods(kube, namespace, "app=late")
        statuses = (found[0].get("status") or {}).get("containerStatuses") if found else None
        waiting = ((statuses or [{}])[0].get("state") or {}).get("waiting") or {}
        return waiting if waiting.get("reason") in ("CreateContainerConfigError", "FailedMount") else None

    waiting = wait_for("a config error for the missing ConfigMap/Secret", config_error, 60)
    assert '"web" not found' in waiting["message"]
    assert any('"web" not found' in e["message"] for e in events(kube, namespace, "Failed"))

    create_inputs(kube, namespace)
    wait_for("the pod to become Ready once its inputs exist",
             lambda: [p for p in pods(kube, namespace, "app=late") if condition(p, "Ready") == "True"], 60)
