"""``streamguard demo up``: every step from a bare machine to "features are live", timed.

The operator (its Deployment as the chart renders it) and its workloads run as containers of the project's
images on the stack's real node (kubelet, containerd, runc). The processes the demo starts on the host (the
transaction producer and the port-forward that brings serving to 127.0.0.1) are supervised like the stack's:
own session, PID + start time recorded under ``<demo dir>/pids``, logs under ``<demo dir>/logs``; ``down``
stops only those, and the stack only if this demo started it.
"""

import json
import os
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import yaml

from streamguard import objectstore
from streamguard.api.common import GROUP, VERSION
from streamguard.api.kinds import FEATURE_VIEW, PLURALS
from streamguard.demo import live
from streamguard.demo.manifests import (
    OFFLINE_TABLES,
    Manifest,
    feast_registry,
    isolate,
    load_examples,
    offline_location,
    on_object_store,
    operator,
    operator_release,
    platform,
    subject,
    topics,
)
from streamguard.demo.stores import StoreChoice, store_urls
from streamguard.devstack import image, node
from streamguard.devstack.chart import ServingDeployment
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.kube import Kube, port_forward
from streamguard.devstack.node import NODE_NAME
from streamguard.devstack.paths import run_root
from streamguard.devstack.prepare import prepare
from streamguard.devstack.stack import Stack
from streamguard.devstack.supervisor import Service, Supervisor, free_port, port_open
from streamguard.onlinestore.client import connect
from streamguard.onlinestore.writers import current_marker

if TYPE_CHECKING:
    import pyarrow.fs as pafs

PROCESSES = ("producer", "serving-forward")
"""Stopped in this order."""
HOST_OPERATOR = "operator"
"""The supervised name of the operator of runs before it moved into a pod (stopped when found)."""
OPERATOR_TIMEOUT = 300.0
"""Seconds ``up`` waits for the operator's Deployment to be Available (image on the node, kopf started)."""
CLUSTER_WIDE = (("rbac.authorization.k8s.io/v1", "clusterrolebindings"),
                ("rbac.authorization.k8s.io/v1", "clusterroles"),
                ("admissionregistration.k8s.io/v1", "validatingadmissionpolicybindings"),
                ("admissionregistration.k8s.io/v1", "validatingadmissionpolicies"))
"""The operator release's cluster-scoped kinds (its RBAC and the record policy), deleted by ``down --purge``."""
TABLES_MARKER = f"{OFFLINE_TABLES}/demo-end.txt"
"""Where the demo records the end of the data its offline tables hold (on the bucket, as
:func:`streamguard.demo.manifests.offline_location` puts it): tables of another day are computed again."""
STATE_FILE = "state.json"
DEMO_ACCOUNT = "A000042"
SERVING = ServingDeployment(namespace="", auth_token_secret=None)
"""The serving Deployment's name and container port (streamguard.demo.manifests.serving renders it)."""


def repo_root() -> Path:
    return Path(os.environ.get("STREAMGUARD_REPO", Path.cwd())).resolve()


def demo_root() -> Path:
    explicit = os.environ.get("STREAMGUARD_DEMO_DIR")
    return Path(explicit) if explicit else repo_root() / ".run" / "demo"


@dataclass
class DemoState:
    """What ``up`` did, so ``down``/``status``/``burst`` know what to address."""

    namespace: str
    stack_dir: str
    owns_stack: bool
    serving_port: int
    node_name: str
    topic: str
    suffix: str = ""
    subject: str = ""
    """The registry subject the producer writes under: the StreamingWindow's."""
    demo_dir: str = ""
    store: StoreChoice = "server"
    """:data:`streamguard.demo.stores.STORES`."""
    timings: dict[str, float] = field(default_factory=dict)

    def save(self, demo_dir: Path) -> None:
        demo_dir.mkdir(parents=True, exist_ok=True)
        (demo_dir / STATE_FILE).write_text(json.dumps(asdict(self), indent=2) + "\n")

    @classmethod
    def load(cls, demo_dir: Path) -> "DemoState":
        path = demo_dir / STATE_FILE
        if not path.is_file():
            raise FileNotFoundError(f"no demo state at {path}: run `streamguard demo up` first")
        return cls(**json.loads(path.read_text()))

    @property
    def serving_url(self) -> str:
        return f"http://127.0.0.1:{self.serving_port}"


class Progress:
    """``[demo  12.3s] step: message`` lines, and per-step durations."""

    def __init__(self, echo: Callable[[str], None]) -> None:
        self.echo = echo
        self.started = time.monotonic()
        self.timings: dict[str, float] = {}

    def say(self, message: str) -> None:
        self.echo(f"[demo {time.monotonic() - self.started:6.1f}s] {message}")

    @contextmanager
    def step(self, name: str, what: str) -> Iterator[None]:
        began = time.monotonic()
        self.say(f"{what} ...")
        yield
        self.timings[name] = round(time.monotonic() - began, 1)
        self.say(f"{what}: done in {self.timings[name]:.1f}s")


@dataclass
class Demo:
    repo: Path = field(default_factory=repo_root)
    demo_dir: Path = field(default_factory=demo_root)
    stack_dir: Path = field(default_factory=run_root)
    namespace: str = "finserve"
    node_name: str = NODE_NAME
    suffix: str = ""
    """Appended to the Feast project, topic and subject (tests isolate runs on a shared stack)."""
    burst_every: float = 60.0
    timeout: float = 300.0
    echo: Callable[[str], None] = print
    require_serving_ready: bool = True
    """"Live" includes serving's /readyz (the e2e test checks readiness on its own, to report it apart)."""
    workdir: Path | None = None
    """Working directory of the pods (relative source paths resolve here); default ``<demo dir>/work``."""
    store: StoreChoice = "server"
    """:data:`streamguard.demo.stores.STORES`."""

    def __post_init__(self) -> None:
        self.supervisor = Supervisor(self.demo_dir)
        self.work = (self.workdir or self.demo_dir / "work").resolve()
        self.data_dir = self.work / ".run" / "data" / "finserve"

    # ---- up ---------------------------------------------------------------------------------------
    def up(self) -> DemoState:
        progress = Progress(self.echo)
        progress.say("StreamGuard FinServe demo (development only): the operator and its workloads run as "
                     f"containers of the project's images on node {self.node_name} of the local stack")
        stack = Stack(self.stack_dir)
        running = (self.stack_dir / "endpoints.json").exists() and all(stack.status().values())
        with progress.step("build", "stack components and project images (built once, then cached)"):
            images = prepare()
        with progress.step("stack", "local stack (kube-apiserver, controllers, scheduler, node, Kafka, registry, "
                                    "Redis)"):
            endpoints = Endpoints.load(self.stack_dir) if running else stack.up()
            progress.say("reusing the running stack" if running else f"started the stack in {self.stack_dir}")
        kube = Kube.from_kubeconfig(endpoints.kubeconfig)
        docs = self._resources(endpoints.s3_bucket)
        previous = self._previous_state()
        if (previous is not None and previous.namespace == self.namespace and previous.store != self.store
                and kube.get(f"/api/v1/namespaces/{self.namespace}") is not None):
            raise RuntimeError(f"the demo in namespace {self.namespace} runs on the online store "
                               f"{previous.store!r}, its workloads hold that URL: `streamguard demo down --purge` "
                               f"first, then `streamguard demo up --store {self.store}`")
        self._say_what_is_reused(progress, kube, previous)
        state = DemoState(namespace=self.namespace, stack_dir=str(self.stack_dir),
                          owns_stack=owns_stack(running, previous, self.stack_dir),
                          serving_port=self._serving_port(previous), node_name=self.node_name,
                          topic=topics(docs)[0] if topics(docs) else "", suffix=self.suffix,
                          subject=subject(docs, self.namespace),
                          demo_dir=str(self.demo_dir), store=self.store)
        state.save(self.demo_dir)
        env = {**os.environ, **endpoints.env()}
        with progress.step("images", "project images onto the node"):
            imported = node.put_images(images, self.stack_dir)
            progress.say(f"images {images.main.name}, {images.spark.name}: "
                         + (f"imported {', '.join(imported)}" if imported else "already on the node"))
        with progress.step("crds", "CustomResourceDefinitions (crds/)"):
            self._kubectl(endpoints, "apply", "--server-side", "--force-conflicts", "-f", str(self.repo / "crds"))
            self._kubectl(endpoints, "wait", "--for=condition=Established", "--timeout=60s", "-f",
                          str(self.repo / "crds"))
        with progress.step("data", "FinServe sample data and offline tables on the object store"):
            tables_written = self._data(env, progress, endpoints, docs)
        with progress.step("platform", f"namespace {self.namespace}: Redis ({self.store}) and object-store Secrets, "
                                       "serving"):
            self._apply(endpoints, platform(self.namespace, store_urls(endpoints, self.store)[1], images.main.name,
                                            endpoints))
        with progress.step("operator", "operator Deployment (the chart's, a container on the node)"):
            self._deploy_operator(endpoints, kube, images, progress)
        with progress.step("apply", "kubectl apply -f examples/finserve/"):
            self._apply(endpoints, docs, namespace=self.namespace)
            reset = reapply_as_written(kube, self.namespace, docs)
            if reset:
                progress.say(f"reset to the example as written (changed since an earlier run): {', '.join(reset)}")
        with progress.step("materialize", "first materialization (jobs from the CronJobs)"):
            created = self._materialize(endpoints, kube, tables_written)
            progress.say(f"created jobs: {', '.join(created) or 'none'}")
        if port_open(state.serving_port) and not self.supervisor.running_pid("serving-forward"):
            # Chosen minutes ago: another demo on this machine (a concurrent e2e run) may have taken it since,
            # and a forward that cannot bind would leave the URL answering with that demo's serving.
            taken, state.serving_port = state.serving_port, free_port()
            state.save(self.demo_dir)
            progress.say(f"port {taken} was taken since the start: serving goes to {state.serving_port}")
        with progress.step("serving", f"serving on 127.0.0.1:{state.serving_port} (kubectl port-forward)"):
            self._start_serving_forward(endpoints, state.serving_port)
        if state.topic:
            with progress.step("producer", f"transaction producer on {state.topic} (10 TPS, fraud bursts)"):
                self._start_producer(env, state.topic, state.subject)
        with progress.step("live", "waiting until features are live"):
            serving_ready = live.wait_until_live(kube, self.namespace, state, endpoints, progress.say,
                                                 self.timeout, self.require_serving_ready)
        progress.timings["total"] = round(time.monotonic() - progress.started, 1)
        state.timings = progress.timings
        state.save(self.demo_dir)
        self._record_timing(progress.timings, running)
        readiness = "" if serving_ready else " (serving /readyz not passing yet)"
        progress.say(f"features are live after {progress.timings['total']:.1f}s{readiness}")
        self.echo(live.instructions(state, endpoints))
        return state

    def _say_what_is_reused(self, progress: Progress, kube: Kube, previous: "DemoState | None") -> None:
        """Tell whether an earlier run's state is on the machine and what becomes of it."""
        found = live.resources(kube, self.namespace)
        count = sum(len(items) for items in found.values())
        if count:
            progress.say(f"reusing namespace {self.namespace} from an earlier run ({count} StreamGuard resources): "
                         "their specs are reset to the example as written; the stream resumes from its "
                         "checkpoint, the online store keeps its values")
        elif previous is not None:
            progress.say(f"an earlier run's record is in {self.demo_dir}, its namespace is gone: starting afresh")
        else:
            progress.say(f"no earlier demo state: starting afresh in namespace {self.namespace}")

    def _previous_state(self) -> DemoState | None:
        try:
            return DemoState.load(self.demo_dir)
        except (FileNotFoundError, TypeError, ValueError):
            return None

    def _serving_port(self, previous: DemoState | None) -> int:
        """8080 (or the port of the previous run) unless something else listens there."""
        if previous is not None and previous.namespace == self.namespace and (
                not port_open(previous.serving_port) or self.supervisor.running_pid("serving-forward")):
            return previous.serving_port
        return 8080 if not port_open(8080) else free_port()

    def _resources(self, bucket: str) -> list[Manifest]:
        """The FinServe example, its offline data on the stack's bucket (isolated when a suffix is set)."""
        docs = on_object_store(load_examples(self.repo / "examples" / "finserve"), bucket)
        return isolate(docs, self.suffix) if self.suffix else docs

    def _kubectl(self, endpoints: Endpoints, *args: str, stdin: str | None = None) -> str:
        kubectl = str(Path(endpoints.bin_dir) / "kubectl")
        result = subprocess.run([kubectl, f"--kubeconfig={endpoints.kubeconfig}", *args], input=stdin,
                                capture_output=True, text=True, check=False, timeout=180)
        if result.returncode != 0:
            raise RuntimeError(f"kubectl {' '.join(args)} failed:\n{result.stderr.strip()}")
        return result.stdout

    def _apply(self, endpoints: Endpoints, docs: list[Manifest], namespace: str | None = None) -> None:
        extra = ["-n", namespace] if namespace else []
        self._kubectl(endpoints, "apply", "--server-side", "--force-conflicts", "--field-manager=streamguard-demo",
                      *extra, "-f", "-", stdin=yaml.safe_dump_all(docs, sort_keys=False))

    def _run_logged(self, name: str, argv: list[str], env: dict[str, str]) -> None:
        log = self.supervisor.log_path(name)
        log.parent.mkdir(parents=True, exist_ok=True)
        self.work.mkdir(parents=True, exist_ok=True)
        with log.open("ab") as out:
            code = subprocess.run(argv, cwd=self.work, env=env, stdout=out, stderr=subprocess.STDOUT,
                                  check=False).returncode
        if code != 0:
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
            raise RuntimeError(f"{' '.join(argv[:4])} failed with code {code}; log {log}:\n{tail}")

    def _data(self, env: dict[str, str], progress: Progress, endpoints: Endpoints, docs: list[Manifest]) -> float:
        """Sample data ending today (UTC midnight), so the profile views are within their freshness SLA,
        generated on the host once a day; the offline tables computed from it by Spark on the host, written to
        the stack's bucket (day-partitioned) and kept there until the next day's. Returns when the tables
        were last written (epoch seconds)."""
        end = time.strftime("%Y-%m-%dT00:00:00+00:00", time.gmtime())
        marker = self.data_dir / "demo-end.txt"
        if marker.exists() and marker.read_text().strip() == end:
            progress.say(f"sample data (ending {end[:10]}) cached in {self.data_dir}")
        else:
            shutil.rmtree(self.data_dir, ignore_errors=True)
            self._run_logged("generate", [sys.executable, str(self.repo / "examples" / "finserve" / "generate.py"),
                                          "--out", str(self.data_dir), "--end", end], env)
            marker.write_text(end + "\n")
        tables = objectstore.resolve(offline_location(TABLES_MARKER, endpoints.s3_bucket), environ=env)
        store = tables.filesystem
        current = _read_text(store, tables.path) == end
        sources = materialized_sources(docs)
        missing = [name for name, path in sources
                   if not current or not objectstore.resolve(f"{path}/_SUCCESS", environ=env).exists()]
        if missing:
            progress.say(f"computing offline tables of {', '.join(missing)} with Spark into "
                         f"s3://{endpoints.s3_bucket}/ (cached there afterwards)")
            manifests = self.work / "manifests"
            shutil.rmtree(manifests, ignore_errors=True)
            manifests.mkdir(parents=True)
            (manifests / "finserve.yaml").write_text(yaml.safe_dump_all(docs, sort_keys=False))
            views = [arg for name in missing for arg in ("--view", name)]
            self._run_logged("batch-features", [_streamguard(), "workload", "batch-features", "--cores", "2",
                                                "--manifests", str(manifests), *views], env)
            with store.open_output_stream(tables.path) as out:
                out.write(f"{end}\n".encode())
        else:
            progress.say(f"offline tables (ending {end[:10]}) cached in {', '.join(path for _, path in sources)}")
        written = store.get_file_info(tables.path).mtime
        return written.timestamp() if written is not None else time.time()

    def _deploy_operator(self, endpoints: Endpoints, kube: Kube, images: image.ProjectImages,
                         progress: Progress) -> None:
        """Apply the operator's objects as the chart renders them (:func:`streamguard.demo.manifests.operator`)
        and wait until its Deployment is Available. Unchanged settings keep the running pod; new images or
        settings roll it (Recreate: one operator at a time)."""
        if self.supervisor.running_pid(HOST_OPERATOR):
            self.supervisor.stop(HOST_OPERATOR, grace=40.0)
            progress.say("stopped the host-process operator of an earlier run (the operator now runs in a pod)")
        self._apply(endpoints, operator(endpoints, images, self.namespace))
        release = operator_release(self.namespace)
        deadline = time.monotonic() + OPERATOR_TIMEOUT
        last_report = time.monotonic()
        available, line = live.operator_state(kube, self.namespace, release)
        while not available and time.monotonic() < deadline:
            if time.monotonic() - last_report > 15:
                last_report = time.monotonic()
                progress.say(f"operator not available yet: {line}")
            time.sleep(2)
            available, line = live.operator_state(kube, self.namespace, release)
        if not available:
            raise RuntimeError(f"the operator is not available after {OPERATOR_TIMEOUT:.0f}s: {line}\n"
                               f"last log lines:\n{self._operator_log_tail(endpoints)}")
        progress.say(line)

    def _operator_log_tail(self, endpoints: Endpoints, lines: int = 20) -> str:
        """The operator pod's last log lines (of its previous container too when it restarted)."""
        selector = live.operator_selector(operator_release(self.namespace))
        tails = []
        for previous in (True, False):
            try:
                tails.append(self._kubectl(endpoints, "logs", "-n", self.namespace, "-l", selector,
                                           f"--tail={lines}", f"--previous={str(previous).lower()}").strip())
            except RuntimeError as error:
                if not previous:
                    tails.append(f"(no logs: {str(error).strip()[:300]})")
        return "\n".join(tail for tail in tails if tail) or "(none)"

    def _start_serving_forward(self, endpoints: Endpoints, port: int) -> None:
        """Serving's Deployment on 127.0.0.1:``port`` (streamguard.devstack.kube.port_forward)."""
        port_forward(self.supervisor, "serving-forward", endpoints, self.namespace, f"deployment/{SERVING.name}",
                     port, SERVING.port)

    def _materialize(self, endpoints: Endpoints, kube: Kube, tables_written: float) -> list[str]:
        expected = live.materialized_views(kube, self.namespace)
        deadline = time.monotonic() + 120
        cronjobs: list[str] = []
        while time.monotonic() < deadline:
            found = kube.request("GET", f"/apis/batch/v1/namespaces/{self.namespace}/cronjobs").get("items", [])
            cronjobs = sorted(item["metadata"]["name"] for item in found if not item["spec"].get("suspend"))
            if len(cronjobs) >= len(expected):
                break
            time.sleep(1)
        stamp = time.strftime("%H%M%S")
        began = self._store_generation_began(endpoints, kube)
        done = self._materialized_since(kube, max(tables_written, began)) if began is not None else {}
        if began is None:
            self.echo("  the online store holds no current generation of the views' projects (restarted, flushed "
                      "or evicting): materializing again")
        created = []
        for name in cronjobs:
            if name in done:
                self.echo(f"  reusing job {done[name]}: it materialized today's data already")
                continue
            job = f"{name[:40]}-demo-{stamp}"
            self._kubectl(endpoints, "create", "job", job, f"--from=cronjob/{name}", "-n", self.namespace)
            created.append(job)
        return created

    def _store_generation_began(self, endpoints: Endpoints, kube: Kube) -> float | None:
        """When the online store's current generation of every FeatureView's project began (epoch seconds,
        the latest of them); ``None`` when a project has none: the store was restarted, flushed or evicted
        since, so what an earlier Job wrote may be gone (``streamguard.onlinestore.generation``)."""
        views = live.resources(kube, self.namespace)[FEATURE_VIEW.plural]
        client = connect(store_urls(endpoints, self.store)[0])
        try:
            markers = [current_marker(client, project) for project in sorted({v["spec"]["project"] for v in views})]
        finally:
            client.close()
        if any(marker is None for marker in markers):
            return None
        began = [marker.created_ms / 1000 for marker in markers if marker is not None]
        return max(began, default=None)

    def _materialized_since(self, kube: Kube, since: float) -> dict[str, str]:
        """CronJob -> a demo Job of it that succeeded after ``since``: after the offline tables were last
        written and after the store's current generation began (an earlier run's): materializing the same
        data again would change nothing."""
        generated = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(since))
        jobs = kube.request("GET", f"/apis/batch/v1/namespaces/{self.namespace}/jobs").get("items", [])
        done = {}
        for job in jobs:
            manual = (job["metadata"].get("annotations") or {}).get("cronjob.kubernetes.io/instantiate") == "manual"
            source = next((ref["name"] for ref in job["metadata"].get("ownerReferences") or []
                           if ref.get("kind") == "CronJob"), None)
            finished = (job.get("status") or {}).get("completionTime") or ""
            if manual and source and "-demo-" in job["metadata"]["name"] and finished >= generated:
                done[source] = job["metadata"]["name"]
        return done

    def _start_producer(self, env: dict[str, str], topic: str, subject: str) -> None:
        argv = [_streamguard(), "workload", "produce", "--topic", topic, "--subject", subject, "--rate", "10",
                "--burst-every", str(self.burst_every)]
        launched = time.monotonic()
        self.supervisor.start(Service("producer", argv, lambda: time.monotonic() - launched > 3, env=env,
                                      cwd=self.repo, timeout=60))

    def _record_timing(self, timings: dict[str, float], stack_was_running: bool) -> None:
        path = self.demo_dir / "timings.jsonl"
        record = {"at": _utc_stamp(0), "stack_was_running": stack_was_running, **timings}
        with path.open("a") as out:
            out.write(json.dumps(record) + "\n")

    # ---- down -------------------------------------------------------------------------------------
    def down(self, purge: bool = False) -> list[str]:
        """Stop the demo's host processes, and the stack (with the node and every pod, the operator's too) if
        the demo started it. Returns what was stopped.

        ``purge`` first deletes the demo's StreamGuard resources while the operator (a pod in the namespace) still
        runs (it removes them from its Feast registry and lets them go), then the namespace with the operator,
        waits until the node has removed its pods, and deletes the registry file and the operator release's
        cluster-wide objects, leaving nothing of the demo in a stack that keeps running but the cached offline
        tables."""
        state = self._previous_state()
        try:
            if purge and state is not None and (Path(state.stack_dir) / "endpoints.json").exists():
                purge_namespace(Endpoints.load(Path(state.stack_dir)), state.namespace)
        finally:
            stopped = [name for name in PROCESSES if self.supervisor.stop(name, grace=40.0)]
            if self.supervisor.stop(HOST_OPERATOR, grace=40.0):
                stopped.append(HOST_OPERATOR)
            if state is not None and state.owns_stack:
                stopped += Stack(Path(state.stack_dir)).down()
        return stopped

    def processes(self) -> dict[str, int | None]:
        return {name: self.supervisor.running_pid(name) for name in PROCESSES}


def purge_namespace(endpoints: Endpoints, namespace: str, timeout: float = 300.0) -> None:
    """Delete the namespace's StreamGuard resources and wait until the operator has finalized them, then the
    namespace (the operator's pod with it), the Feast registry file the demo's operator kept for it and the
    operator release's cluster-wide objects (:data:`CLUSTER_WIDE`). The resources go first: an
    operator watching only this namespace stops watching it once the namespace is terminating, and their
    finalizers would then never be removed. Raises naming what is left after ``timeout``."""
    kube = Kube.from_kubeconfig(endpoints.kubeconfig)
    for plural, items in live.resources(kube, namespace).items():
        for item in items:
            kube.delete(f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}/{item['metadata']['name']}")
    deadline = time.monotonic() + timeout
    left = live.resources(kube, namespace)
    while any(left.values()) and time.monotonic() < deadline:
        time.sleep(2)
        left = live.resources(kube, namespace)
    if any(left.values()):
        held = [f"{plural[:-1]}/{item['metadata']['name']} (finalizers {item['metadata'].get('finalizers')})"
                for plural, items in left.items() for item in items]
        raise RuntimeError(f"namespace {namespace}: not finalized by the operator after {timeout:.0f}s: "
                           f"{', '.join(held)} (`streamguard demo status`, `streamguard demo logs "
                           f"{operator_release(namespace)}-operator`)")
    kube.delete(f"/api/v1/namespaces/{namespace}")
    while time.monotonic() < deadline and kube.get(f"/api/v1/namespaces/{namespace}") is not None:
        time.sleep(1)
    registry = objectstore.resolve(feast_registry(endpoints, namespace), environ=endpoints.object_store_env())
    if registry.exists():
        registry.filesystem.delete_file(registry.path)
    release = {"labelSelector": f"app.kubernetes.io/instance={operator_release(namespace)}"}
    for group, plural in CLUSTER_WIDE:
        kube.request("DELETE", f"/apis/{group}/{plural}", query=release)


def owns_stack(running: bool, previous: DemoState | None, stack_dir: Path) -> bool:
    """Whether ``down`` stops the stack: the demo started it now, or an earlier run started this same stack (an
    earlier run's claim on another stack directory says nothing about this one)."""
    if not running:
        return True
    return previous is not None and previous.owns_stack and Path(previous.stack_dir) == stack_dir


def reapply_as_written(kube: Kube, namespace: str, docs: list[Manifest]) -> list[str]:
    """Replace the spec of every StreamGuard resource with the example's, so fields another manager set on
    an earlier run (``suspend: true``, a changed window) do not survive a re-run; returns what changed."""
    changed = []
    for doc in docs:
        plural = PLURALS.get(doc.get("kind", ""))
        if plural is None:
            continue
        path = f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}/{doc['metadata']['name']}"
        before = (kube.get(path) or {}).get("metadata", {}).get("generation")
        after = kube.request("PATCH", path, [{"op": "replace", "path": "/spec", "value": doc["spec"]}],
                             content_type="application/json-patch+json")["metadata"].get("generation")
        if before is not None and after != before:
            changed.append(f"{plural[:-1]}/{doc['metadata']['name']}")
    return changed


def materialized_sources(docs: list[Manifest]) -> list[tuple[str, str]]:
    """(FeatureView, source path) of the views the demo materializes; a view filled only by its stream
    (materialization suspended) needs no offline table to go live."""
    return [(doc["metadata"]["name"], doc["spec"]["source"]["path"]) for doc in docs
            if doc.get("kind") == "FeatureView" and (doc["spec"].get("source") or {}).get("path")
            and not (doc["spec"].get("materialization") or {}).get("suspend")]


def _read_text(store: "pafs.FileSystem", path: str) -> str:
    """The object's text, stripped; '' when there is none."""
    try:
        with store.open_input_stream(path) as stream:
            return bytes(stream.read()).decode().strip()
    except FileNotFoundError:
        return ""


def _streamguard() -> str:
    return str(Path(sys.executable).parent / "streamguard")


def _utc_stamp(offset_seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(time.time() + offset_seconds))


def load_state(demo_dir: Path | None = None) -> DemoState:
    return DemoState.load(demo_dir or demo_root())


def kube_for(state: DemoState) -> tuple[Kube, Endpoints]:
    endpoints = Endpoints.load(Path(state.stack_dir))
    return Kube.from_kubeconfig(endpoints.kubeconfig), endpoints


__all__ = ["DEMO_ACCOUNT", "Demo", "DemoState", "Progress", "kube_for", "load_state"]
