"""The devkubelet loop: register the node, bind StreamGuard's Pending pods, run them, report their state.

A poll loop (one pod list per interval) keeps it simple and robust against missed watch events; a
handful of pods costs nothing to list. Processes run in their own sessions and are stopped with the
pod's grace period when the pod is deleted or devkubelet stops.
"""

import base64
import contextlib
import json
import logging
import os
import shutil
import socket
import sys
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import yaml

from streamguard.devkubelet import NODE_NAME, PART_OF_SELECTOR, PORTS_ANNOTATION, node
from streamguard.devkubelet.kube import Kube, KubeError, Obj
from streamguard.devkubelet.logserver import LogServer
from streamguard.devkubelet.probes import due, run_probe
from streamguard.devkubelet.runtime import ContainerRun, PodRun, restart_wanted, without_times
from streamguard.devkubelet.spec import ConfigError, container_mounts, plan, port_key
from streamguard.devkubelet.volumes import materialize, volume_dirs

log = logging.getLogger("devkubelet")

HEARTBEAT_SECONDS = 10.0
CONFIG_RETRY_SECONDS = 5.0
EVENT_REPEAT_SECONDS = 60.0


def image_env() -> dict[str, str]:
    """The environment every container starts from, standing in for the image's ``ENV``: the venv's
    ``bin`` first on PATH (so ``streamguard`` and ``python`` are this checkout's), plus locale, Java and
    the Spark connector jars the real image would bake in."""
    venv_bin = str(Path(sys.executable).parent)
    env = {"PATH": os.pathsep.join([venv_bin, os.environ.get("PATH", "/usr/bin:/bin")]), "LANG": "C.UTF-8",
           "PYTHONUNBUFFERED": "1"}
    for name in ("JAVA_HOME", "STREAMGUARD_SPARK_JARS", "STREAMGUARD_CACHE", "TZ"):
        if os.environ.get(name):
            env[name] = os.environ[name]
    return env


@dataclass
class Config:
    kubeconfig: str
    run_dir: Path
    node_name: str = NODE_NAME
    namespaces: tuple[str, ...] = ()
    """Only pods in these namespaces (all namespaces when empty)."""
    selector: str = PART_OF_SELECTOR
    workdir: str = field(default_factory=os.getcwd)
    """Working directory of containers that set no ``workingDir`` (relative paths in specs resolve here)."""
    base_env: dict[str, str] = field(default_factory=image_env)
    poll_interval: float = 1.0
    max_grace: float = 30.0


class ApiLookup:
    def __init__(self, kube: Kube) -> None:
        self.kube = kube

    def config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        found = self.kube.get(f"/api/v1/namespaces/{namespace}/configmaps/{name}")
        return None if found is None else dict(found.get("data") or {})

    def secret(self, namespace: str, name: str) -> dict[str, str] | None:
        found = self.kube.get(f"/api/v1/namespaces/{namespace}/secrets/{name}")
        if found is None:
            return None
        return {k: base64.b64decode(v).decode(errors="replace") for k, v in (found.get("data") or {}).items()}


def _port_free(port: int) -> bool:
    """Whether a server could listen on ``port`` (SO_REUSEADDR, as servers set it: TIME_WAIT is no conflict)."""
    for host in ("127.0.0.1", "0.0.0.0"):
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                return False
    return True


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class Kubelet:
    def __init__(self, config: Config, kube: Kube | None = None) -> None:
        self.config = config
        self.kube = kube or Kube.from_kubeconfig(config.kubeconfig)
        self.lookup = ApiLookup(self.kube)
        self.pods: dict[str, PodRun] = {}
        self.claimed_ports: set[int] = set()
        self.probes = ThreadPoolExecutor(max_workers=4, thread_name_prefix="probe")
        self.events_sent: dict[tuple[str, str, str], float] = {}
        self.pods_dir = config.run_dir / "pods"
        self.claims_dir = config.run_dir / "volumes"

    # ---- loop -------------------------------------------------------------------------------------
    def log_path(self, namespace: str, pod: str) -> Path | None:
        """The log of a pod this node runs or ran (for ``kubectl logs``)."""
        path = self.pods_dir / f"{namespace}_{pod}.log"
        return path if path.exists() else None

    def running(self, namespace: str, pod: str) -> bool:
        return any(run.namespace == namespace and run.name == pod and any(c.running for c in run.containers)
                   for run in list(self.pods.values()))

    def run(self, stop: threading.Event) -> None:
        logs = LogServer(self.config.run_dir / "devkubelet", self.log_path, self.running)
        logs.start()
        try:
            self._run(stop, logs.port)
        finally:
            logs.close()

    def _run(self, stop: threading.Event, logs_port: int) -> None:
        node.register(self.kube, self.config.node_name, logs_port)
        log.info("node %s registered; running pods matching %s in %s", self.config.node_name,
                 self.config.selector, ", ".join(self.config.namespaces) or "all namespaces")
        beat = 0.0
        try:
            while not stop.is_set():
                if time.monotonic() - beat >= HEARTBEAT_SECONDS:
                    self._safely(lambda: node.heartbeat(self.kube, self.config.node_name))
                    beat = time.monotonic()
                self._safely(self.sync_once)
                stop.wait(self.config.poll_interval)
        finally:
            self.shutdown()

    def _safely(self, action: Callable[[], None]) -> None:
        try:
            action()
        except (KubeError, OSError) as error:
            log.warning("%s", error)
        except Exception:
            log.exception("devkubelet sync failed")

    def _list(self) -> list[Obj]:
        query = {"labelSelector": self.config.selector}
        if not self.config.namespaces:
            return list(self.kube.request("GET", "/api/v1/pods", query=query).get("items", []))
        items: list[Obj] = []
        for namespace in self.config.namespaces:
            items += self.kube.request("GET", f"/api/v1/namespaces/{namespace}/pods", query=query).get("items", [])
        return items

    def sync_once(self) -> None:
        seen: set[str] = set()
        for pod in self._list():
            meta, spec = pod["metadata"], pod["spec"]
            if not spec.get("nodeName"):
                if not meta.get("deletionTimestamp") and self._schedulable(pod):
                    self._bind(pod)
                continue
            if spec["nodeName"] != self.config.node_name:
                continue
            seen.add(meta["uid"])
            self._sync_pod(pod)
        for uid in [uid for uid in self.pods if uid not in seen]:
            run = self.pods[uid]
            for container in run.containers:
                container.stop(0, "Killed")
                container.poll()
            self._forget(run)

    def shutdown(self) -> None:
        """Stop every container (SIGTERM, then SIGKILL after the grace period) and mark the node NotReady."""
        for run in self.pods.values():
            for container in run.containers:
                container.stop(min(self._grace(run), 10.0), "Killed")
        deadline = time.monotonic() + 11.0
        while time.monotonic() < deadline and any(c.running for r in self.pods.values() for c in r.containers):
            for run in self.pods.values():
                for container in run.containers:
                    container.poll()
            time.sleep(0.2)
        for run in list(self.pods.values()):
            self._forget(run, keep_state=True)
        self.probes.shutdown(wait=False, cancel_futures=True)
        with contextlib.suppress(KubeError, OSError):
            node.heartbeat(self.kube, self.config.node_name, ready=False)

    # ---- scheduling -------------------------------------------------------------------------------
    def _schedulable(self, pod: Obj) -> bool:
        spec = pod["spec"]
        if spec.get("schedulerName", "default-scheduler") != "default-scheduler":
            return False
        labels = node.render(self.config.node_name)["metadata"]["labels"]
        wanted = spec.get("nodeSelector") or {}
        if any(labels.get(key) != value for key, value in wanted.items()):
            self._event(pod, "FailedScheduling", f"nodeSelector {wanted} does not match {self.config.node_name}",
                        warning=True)
            return False
        return True

    def _bind(self, pod: Obj) -> None:
        meta = pod["metadata"]
        body = {"apiVersion": "v1", "kind": "Binding", "metadata": {"name": meta["name"], "uid": meta["uid"]},
                "target": {"apiVersion": "v1", "kind": "Node", "name": self.config.node_name}}
        try:
            self.kube.create(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}/binding", body)
        except KubeError as error:
            if error.status in (404, 409):
                return
            raise
        self._event(pod, "Scheduled", f"Successfully assigned {meta['namespace']}/{meta['name']} to "
                    f"{self.config.node_name} (devkubelet, development only)")

    # ---- pods -------------------------------------------------------------------------------------
    def _grace(self, run: PodRun) -> float:
        meta_grace = run.pod["metadata"].get("deletionGracePeriodSeconds")
        grace = meta_grace if meta_grace is not None else run.pod["spec"].get("terminationGracePeriodSeconds", 30)
        return min(float(grace), self.config.max_grace)

    def _track(self, pod: Obj) -> PodRun:
        meta = pod["metadata"]
        uid = meta["uid"]
        if uid not in self.pods:
            stem = f"{meta['namespace']}_{meta['name']}"
            previous = {s["name"]: s for s in (pod.get("status") or {}).get("containerStatuses") or []}
            containers = [ContainerRun(spec=c, restart_count=int(previous.get(c["name"], {}).get("restartCount", 0)))
                          for c in pod["spec"]["containers"]]
            self.pods_dir.mkdir(parents=True, exist_ok=True)
            run = PodRun(namespace=meta["namespace"], name=meta["name"], uid=uid, pod=pod,
                         directory=self.pods_dir / stem, log_path=self.pods_dir / f"{stem}.log", containers=containers)
            run.log = run.log_path.open("ab")
            self.pods[uid] = run
        run = self.pods[uid]
        run.pod = pod
        return run

    def _sync_pod(self, pod: Obj) -> None:
        phase = (pod.get("status") or {}).get("phase")
        deleting = bool(pod["metadata"].get("deletionTimestamp"))
        if pod["metadata"]["uid"] not in self.pods and phase in ("Succeeded", "Failed"):
            if deleting:
                self._confirm_deletion(pod)
            return
        run = self._track(pod)
        if deleting:
            self._terminate(run)
            return
        if not run.prepared and time.monotonic() >= run.retry_at:
            self._prepare(run)
        for container in run.containers:
            self._sync_container(run, container)
        self._report(run)

    def _terminate(self, run: PodRun) -> None:
        for container in run.containers:
            if container.running and container.stop_deadline is None:
                self._event(run.pod, "Killing", f"Stopping container {container.name}", container=container.name)
            container.stop(self._grace(run), "Killed")
            container.poll()
        if any(c.running for c in run.containers):
            return
        self._confirm_deletion(run.pod)
        self._forget(run)

    def _confirm_deletion(self, pod: Obj) -> None:
        meta = pod["metadata"]
        self.kube.delete(f"/api/v1/namespaces/{meta['namespace']}/pods/{meta['name']}",
                         {"apiVersion": "v1", "kind": "DeleteOptions", "gracePeriodSeconds": 0,
                          "preconditions": {"uid": meta["uid"]}})

    def _forget(self, run: PodRun, keep_state: bool = False) -> None:
        for container in run.containers:
            if container.launch is not None:
                self.claimed_ports.difference_update(container.launch.ports.values())
        if run.log is not None:
            run.log.close()
        if not keep_state:
            shutil.rmtree(run.directory, ignore_errors=True)
        self.pods.pop(run.uid, None)

    def _service_account_kubeconfig(self, run: PodRun) -> Path | None:
        spec = run.pod["spec"]
        if spec.get("automountServiceAccountToken") is False:
            return None
        account = spec.get("serviceAccountName") or "default"
        token_spec: Obj = {"expirationSeconds": 86400}
        if spec.get("serviceAccountName"):
            # Bound to the pod: the token dies with it (the apiserver refuses binding a defaulted account).
            token_spec["boundObjectRef"] = {"apiVersion": "v1", "kind": "Pod", "name": run.name, "uid": run.uid}
        request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": token_spec}
        try:
            token = self.kube.create(
                f"/api/v1/namespaces/{run.namespace}/serviceaccounts/{account}/token", request)["status"]["token"]
        except KubeError as error:
            if error.status == 404:
                raise ConfigError("CreateContainerConfigError", f'serviceaccount "{account}" not found') from error
            raise
        own = yaml.safe_load(Path(self.config.kubeconfig).read_text())
        cluster = own["clusters"][0]["cluster"]
        kubeconfig = {
            "apiVersion": "v1", "kind": "Config", "current-context": "pod",
            "clusters": [{"name": "devkubelet", "cluster": cluster}],
            "users": [{"name": account, "user": {"token": token}}],
            "contexts": [{"name": "pod", "context": {"cluster": "devkubelet", "user": account,
                                                      "namespace": run.namespace}}],
        }
        path = run.directory / "kubeconfig"
        path.write_text(yaml.safe_dump(kubeconfig))
        path.chmod(0o600)
        return path

    def _allocate_ports(self, run: PodRun) -> dict[str, dict[str, int]]:
        allocated: dict[str, dict[str, int]] = {}
        for container in run.containers:
            ports: dict[str, int] = {}
            for port in container.spec.get("ports") or []:
                wanted = int(port["containerPort"])
                chosen = wanted if wanted not in self.claimed_ports and _port_free(wanted) else _free_port()
                self.claimed_ports.add(chosen)
                ports[port_key(port)] = chosen
            allocated[container.name] = ports
        return allocated

    def _prepare(self, run: PodRun) -> None:
        """Service account kubeconfig, volumes, ports and launch plans; a ConfigError is retried later."""
        try:
            run.directory.mkdir(parents=True, exist_ok=True)
            kubeconfig = self._service_account_kubeconfig(run)
            dirs = volume_dirs(run.pod, run.directory, self.claims_dir)
            mounts = {c.name: container_mounts(c.spec, dirs) for c in run.containers}
            materialize(run.pod, dirs, self.lookup, {k: v for m in mounts.values() for k, v in m.items()})
            base = dict(self.config.base_env)
            if kubeconfig is not None:
                base["KUBECONFIG"] = str(kubeconfig)
            ports = self._allocate_ports(run)
            for container in run.containers:
                container.launch = plan(run.pod, container.spec, self.lookup, mounts=mounts[container.name],
                                        ports=ports[container.name], base_env=base, workdir=self.config.workdir)
        except (ConfigError, KubeError) as error:
            if isinstance(error, KubeError):
                error = ConfigError("CreateContainerConfigError", str(error))
            for container in run.containers:
                container.waiting = (error.reason, error.message)
                if container.launch is not None:
                    self.claimed_ports.difference_update(container.launch.ports.values())
                container.launch = None
            run.retry_at = time.monotonic() + CONFIG_RETRY_SECONDS
            self._event(run.pod, "Failed", f"Error: {error.message}", warning=True)
            return
        run.prepared = True
        mapping = {c.name: c.launch.ports for c in run.containers if c.launch is not None and c.launch.ports}
        if mapping:
            self.kube.merge_patch(f"/api/v1/namespaces/{run.namespace}/pods/{run.name}",
                                  {"metadata": {"annotations": {PORTS_ANNOTATION: json.dumps(mapping)}}})

    def _sync_container(self, run: PodRun, container: ContainerRun) -> None:
        code = container.poll()
        if code is not None:
            if code != 0:
                self._event(run.pod, "BackOff" if run.policy != "Never" else "Failed",
                            f"container {container.name} exited with code {code}; see {run.log_path}",
                            warning=True, container=container.name)
            if restart_wanted(run.policy, code):
                container.schedule_restart()
        if container.running:
            self._probe(run, container)
            return
        if not run.prepared or container.launch is None or container.terminated is not None:
            return
        if time.monotonic() < container.backoff_until or run.log is None:
            return
        try:
            container.start(container.launch, run.log)
        except OSError as error:
            container.waiting = ("RunContainerError", str(error))
            container.terminated = {"exitCode": 128, "reason": "StartError", "message": str(error),
                                    "startedAt": node.now(), "finishedAt": node.now()}
            self._event(run.pod, "Failed", f"Error: {error}", warning=True, container=container.name)
            return
        ports = f" ports {container.launch.ports}" if container.launch.ports else ""
        self._event(run.pod, "Started", f"Started container {container.name} as local process "
                    f"{container.process.pid if container.process else '?'}{ports}", container=container.name)

    def _probe(self, run: PodRun, container: ContainerRun) -> None:
        launch = container.launch
        if launch is None:
            return
        declared = container.spec.get("ports") or []
        for kind, state in container.probes.items():
            if state.future is not None and state.future.done():
                ok, message = state.future.result()
                before = state.result
                state.record(ok, message)
                if not ok:
                    self._event(run.pod, "Unhealthy", f"{kind.replace('Probe', '')} probe failed: {message}",
                                warning=True, container=container.name, repeat=EVENT_REPEAT_SECONDS)
                if state.result is False and before is not False and kind in ("livenessProbe", "startupProbe"):
                    self._event(run.pod, "Killing", f"Container {container.name} failed {kind}, will be restarted",
                                container=container.name)
                    container.stop(self._grace(run), "Error")
            gate = container.probes.get("startupProbe")
            if kind != "startupProbe" and gate is not None and gate.result is not True:
                continue
            if kind == "startupProbe" and state.result is True:
                continue
            if due(state):
                state.future = self.probes.submit(run_probe, state.spec, launch, declared, state.timeout)

    def _report(self, run: PodRun) -> None:
        status = run.status()
        if run.last_status is not None and without_times(status) == without_times(run.last_status):
            return
        try:
            self.kube.merge_patch(f"/api/v1/namespaces/{run.namespace}/pods/{run.name}/status", {"status": status})
        except KubeError as error:
            if error.status != 404:
                raise
            return
        run.last_status = status

    # ---- events -----------------------------------------------------------------------------------
    def _event(self, pod: Obj, reason: str, message: str, *, warning: bool = False, container: str | None = None,
               repeat: float = float("inf")) -> None:
        """Record an Event on the pod; the same (pod, reason, message) is sent again only after ``repeat``."""
        meta = pod["metadata"]
        key = (meta["uid"], reason, message if repeat == float("inf") else "")
        last = self.events_sent.get(key)
        if last is not None and time.monotonic() - last < repeat:
            return
        self.events_sent[key] = time.monotonic()
        stamp = node.now()
        involved: Obj = {"apiVersion": "v1", "kind": "Pod", "name": meta["name"], "namespace": meta["namespace"],
                         "uid": meta["uid"]}
        if container:
            involved["fieldPath"] = f"spec.containers{{{container}}}"
        body = {"apiVersion": "v1", "kind": "Event",
                "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:16]}", "namespace": meta["namespace"]},
                "involvedObject": involved, "reason": reason, "message": message[:1000],
                "type": "Warning" if warning else "Normal",
                "source": {"component": "devkubelet", "host": self.config.node_name},
                "reportingComponent": "devkubelet", "reportingInstance": self.config.node_name,
                "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1}
        with contextlib.suppress(KubeError):
            self.kube.create(f"/api/v1/namespaces/{quote(meta['namespace'])}/events", body)


def pods_on_node(kube: Kube, node_name: str) -> list[Obj]:
    """Pods bound to ``node_name`` (for status displays)."""
    query = {"fieldSelector": f"spec.nodeName={node_name}"}
    return list(kube.request("GET", "/api/v1/pods", query=query).get("items", []))

