"""Helpers of the streaming tests: FinServe specs, a job process, the pure-Python oracle, Redis reads."""

import json
import math
import os
import signal
import subprocess
import sys
import time
import urllib.request
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import yaml
from hypothesis import strategies as st
from kubernetes import client

from streamguard.api.durations import parse_duration
from streamguard.api.featureview import Entity, Feature, FeatureView, FeatureViewSpec
from streamguard.api.streamingwindow import (
    Aggregation,
    AvroContract,
    KafkaSource,
    StreamingWindow,
    StreamingWindowSpec,
    Window,
)
from streamguard.contracts.registry import SchemaRegistry
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.supervisor import free_port
from streamguard.jobspec import StreamJob
from streamguard.onlinestore.client import ERRORS, Store
from streamguard.onlinestore.feast_layout import serialize_entity_key
from streamguard.onlinestore.pane_layout import combine, pane_field, pane_key, window_fields
from streamguard.onlinestore.window_layout import StreamProgress, heartbeat_key
from streamguard.serving.catalog import panes_of
from streamguard.windows import WindowShape, aggregate
from streamguard.workloads.streaming.panes import KEY, PANE, SLIDE, partial_columns
from streamguard.workloads.streaming.plan import StreamPlan

if TYPE_CHECKING:
    from tests.conftest import Kubectl

REPO = Path(__file__).resolve().parents[3]
CONTRACTS = REPO / "examples" / "finserve" / "contracts"
V1 = (CONTRACTS / "transaction-v1.avsc").read_text()
V2 = (CONTRACTS / "transaction-v2.avsc").read_text()
V3 = (CONTRACTS / "transaction-v3-incompatible.avsc").read_text()
FINSERVE_WINDOWS = [Window(name="1m", length="1m", slide="15s"), Window(name="5m", length="5m", slide="1m"),
                    Window(name="1h", length="1h", slide="5m")]
Key = tuple[str, str, int]
"""(entity, window suffix, window end ms)."""
AGGREGATIONS = [
    Aggregation(name="txn_count", function="count"),
    Aggregation(name="amount_sum", function="sum", field="amount"),
    Aggregation(name="amount_max", function="max", field="amount"),
]
"""The aggregations most streaming tests window: a count, a sum and a max."""
NAMES = [a.name for a in AGGREGATIONS]
ONE_OF_EACH = [
    Aggregation(name="txn_count", function="count"),
    Aggregation(name="amount_sum", function="sum", field="amount"),
    Aggregation(name="amount_avg", function="avg", field="amount"),
    Aggregation(name="amount_min", function="min", field="amount"),
    Aggregation(name="amount_max", function="max", field="amount"),
]
"""One aggregation of every function, for the parity tests."""


RANDOM_EVENTS = st.lists(
    st.tuples(
        st.sampled_from(["a", "b"]),
        # whole seconds or a millisecond next to one: on pane and window boundaries
        st.integers(0, 20).flatmap(lambda s: st.sampled_from([s * 1000 + d for d in (-1, 0, 1, 500)])),
        st.one_of(st.none(), st.floats(-1e3, 1e3, allow_nan=False).map(lambda v: round(v, 2))),
    ),
    max_size=40,
)
"""Up to 40 ``(account, event time ms, amount or None)`` of two accounts in the first 20 s, for the pane tests."""


def window_spec(topic: str, schema: str, aggregations: Sequence[Aggregation], watermark: str = "2m",
                trigger: str = "1s", view: str = "account-realtime") -> StreamingWindowSpec:
    return StreamingWindowSpec(
        feature_view=view,
        source=KafkaSource(topic=topic, starting_offsets="earliest"),
        contract=AvroContract(subject=f"{topic}-value", schema=schema),  # type: ignore[call-arg]
        key_field="account_id",
        event_time_field="event_time",
        watermark=watermark,
        trigger_interval=trigger,
        windows=list(FINSERVE_WINDOWS),
        aggregations=list(aggregations),
    )


def view_spec(spec: StreamingWindowSpec, project: str, deprecated: Iterable[str] = ()) -> FeatureViewSpec:
    old = set(deprecated)
    features = []
    for agg in spec.aggregations:
        for window in spec.windows:
            name = f"{agg.name}_{window.suffix}"
            features.append(Feature(name=name, dtype="INT64" if agg.function == "count" else "FLOAT64",
                                    deprecated=agg.name in old))
    return FeatureViewSpec(project=project, entities=[Entity(name="account", join_key="account_id")],
                           features=features, ttl="2h", freshness_sla="5m")


def write_job(path: Path, namespace: str, name: str, spec: StreamingWindowSpec, view: FeatureViewSpec,
              checkpoint: Path | str, metrics_port: int) -> Path:
    job = StreamJob(namespace=namespace, name=name, generation=1, window=spec, view_name=spec.feature_view,
                    view=view, subject=spec.contract.subject or f"{spec.source.topic}-value",
                    checkpoint_dir=str(checkpoint), metrics_port=metrics_port)
    path.write_text(job.model_dump_json(by_alias=True, exclude_none=True, indent=2))
    return path


def job_in(folder: Path, stack: Endpoints, namespace: str, name: str, spec: StreamingWindowSpec,
           view: FeatureViewSpec, extra_env: dict[str, str] | None = None,
           checkpoint: str | None = None) -> "JobProcess":
    """The job of ``spec`` (not started) on a free metrics port, with its config, checkpoint (unless given, e.g.
    ``s3a://bucket/prefix``) and log in ``folder``."""
    port = free_port()
    config = write_job(folder / "job.json", namespace, name, spec, view, checkpoint or folder / "checkpoint", port)
    return JobProcess.for_config(config, stack, folder / "job.log", port, extra_env=extra_env)


class JobProcess:
    """The streaming job as a child process (its own Spark driver), logging into a file."""

    def __init__(self, argv: Sequence[str], env: dict[str, str], log: Path, metrics_port: int) -> None:
        self.argv = list(argv)
        self.env = env
        self.log = log
        self.metrics_port = metrics_port
        self.process: subprocess.Popen[bytes] | None = None

    @classmethod
    def for_config(cls, config: Path, stack: Endpoints, log: Path, metrics_port: int,
                   extra_env: dict[str, str] | None = None) -> "JobProcess":
        env = {**os.environ, **stack.env()}
        env.pop("KUBECONFIG", None)  # no StreamRunning condition unless the test asks for one
        env.update(extra_env or {})
        argv = [str(Path(sys.executable).parent / "streamguard"), "workload", "stream", "--config", str(config)]
        return cls(argv, env, log, metrics_port)

    def start(self) -> "JobProcess":
        out = self.log.open("ab")
        self.process = subprocess.Popen(self.argv, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                                        start_new_session=True)
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def kill(self) -> None:
        """SIGKILL the job and its Spark JVM (the whole process group): a crash, not a shutdown."""
        if self.process is not None and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(30)

    def stop(self, timeout: float = 60) -> int | None:
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)  # like the kubelet: PID 1 only
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(30)
        return self.process.returncode

    def tail(self, lines: int = 60) -> str:
        if not self.log.exists():
            return "(no log)"
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])

    def metrics(self) -> dict[str, float]:
        """Samples of the job's /metrics, ``name{labels}`` -> value (labels stripped to the name)."""
        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
            text = response.read().decode()
        out: dict[str, float] = defaultdict(float)
        for line in text.splitlines():
            if line.startswith("#") or not line.strip():
                continue
            name_labels, _, value = line.rpartition(" ")
            out[name_labels.split("{")[0]] += float(value)
            out[name_labels] = float(value)
        return out


def wait_for(check: Callable[[], Any], timeout: float, what: str, job: JobProcess | None = None,
             every: float = 1.0) -> Any:
    """Poll ``check`` until it returns something truthy; fail with ``what`` (and the job log) on timeout."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (OSError, *ERRORS) as error:
            last = error
        if last and not isinstance(last, Exception):
            return last
        if job is not None and not job.alive():
            raise AssertionError(f"job exited while waiting for {what}:\n{job.tail()}")
        time.sleep(every)
    log = f"\njob log:\n{job.tail()}" if job else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r}){log}")


def expected_windows(events: Iterable[dict[str, Any]], spec: StreamingWindowSpec,
                     watermark_at: Callable[[dict[str, Any]], int] | None = None) -> dict[Key, dict[str, Any]]:
    """The oracle: every non-empty window of every entity per ``streamguard.windows``. With
    ``watermark_at(event)`` an event is left out of windows whose end is at or before that watermark."""
    values: dict[Key, list[dict[str, Any]]] = defaultdict(list)
    shapes = [(w.suffix, WindowShape.parse(w.length, w.slide)) for w in spec.windows]
    for event in events:
        closed = watermark_at(event) if watermark_at else None
        for suffix, shape in shapes:
            for end in shape.ends_containing(int(event[spec.event_time_field])):
                if closed is None or end > closed:
                    values[(str(event[spec.key_field]), suffix, end)].append(event)
    return {
        key: {a.name: aggregate(a.function, [e.get(a.field) if a.field else 1 for e in rows])
              for a in spec.aggregations}
        for key, rows in values.items()
    }


def batch_windows(events: list[dict[str, Any]], spec: StreamingWindowSpec,
                  names: Sequence[str]) -> dict[Key, dict[str, Any]]:
    """The offline job's recomputation of the same windows (Spark batch, ``workloads/batch``)."""
    from pyspark.sql import SparkSession

    from streamguard.workloads.batch.windows import compute_window_features

    spark = (SparkSession.builder.master("local[1]").appName("streaming-batch-recomputation")
             .config("spark.sql.shuffle.partitions", "1").config("spark.ui.enabled", "false")
             .config("spark.sql.session.timeZone", "UTC").getOrCreate())
    try:
        frame = spark.createDataFrame([(e["account_id"], e["event_time"], e["amount"]) for e in events],
                                      "account_id string, event_time long, amount double")
        rows = compute_window_features(frame, spec).collect()
    finally:
        spark.stop()
    return {(r["account_id"], r["window"], int(r["window_end_ms"])): {n: r[n] for n in names} for r in rows}


def pane_frame(plan: StreamPlan, windows: Sequence[tuple[Any, str, int, Mapping[str, float | int | None]]]
               ) -> dict[str, list[Any]]:
    """The job's frame of changed panes (``RedisSink.write_panes``) that makes each window ``(key, suffix, end,
    values)`` hold ``values``: its last pane holds them (a window sharing that pane holds them too)."""
    suffixes = {w.suffix: w for w in plan.windows}
    frame: dict[str, list[Any]] = {KEY: [], SLIDE: [], PANE: []}
    for name, _, _ in partial_columns(plan):
        frame[name] = []
    for key, suffix, end, values in windows:
        window = suffixes[suffix]
        frame[KEY].append(key)
        frame[SLIDE].append(plan.slides.index(window.slide_ms))
        frame[PANE].append(end - window.slide_ms)
        for name, agg, part in partial_columns(plan):
            value = values.get(agg.name)
            frame[name].append((value or 0 if agg.function == "count" else int(value is not None)) if part == "n"
                               else value)
    return frame


def current_windows(windows: dict[Key, dict[str, Any]], events: Iterable[dict[str, Any]],
                    spec: StreamingWindowSpec) -> dict[Key, dict[str, Any]]:
    """The ``windows`` still open once the job has processed ``events``: ending after the newest event time minus
    the watermark delay, which the job's watermark never passes. The job stores panes, not windows, so these are the
    windows the store holds exactly (what serving reads is the one containing now); a closed one is no longer
    stored (its panes are pruned, or hold events a longer window took after it closed)."""
    bound = open_after(events, spec)
    return {key: values for key, values in windows.items() if key[2] > bound}


def open_after(events: Iterable[dict[str, Any]], spec: StreamingWindowSpec) -> int:
    """The newest event time minus the watermark delay: windows ending after it are open (:func:`current_windows`)."""
    newest = max(int(e[spec.event_time_field]) for e in events)
    return newest - int(parse_duration(spec.watermark).total_seconds() * 1000)


def read_windows(client: Store, project: str, spec: StreamingWindowSpec,
                 keys: Iterable[Key]) -> dict[Key, dict[str, float | int | None]]:
    """The windows ``keys`` as serving reads them: combined from the job's panes (a window none of whose panes is
    stored is left out). Exact for a window still open (:func:`current_windows`)."""
    prefix, shape = panes_of(spec.feature_view, view_spec(spec, "entities_only"), spec, project)
    windows = {w.suffix: WindowShape.parse(w.length, w.slide) for w in spec.windows}
    wanted = list(keys)
    pipe = client.pipeline(transaction=False)
    for account, suffix, end in wanted:
        window = windows[suffix]
        pipe.hmget(pane_key(prefix, serialize_entity_key({"account_id": account})),  # type: ignore[arg-type]
                   window_fields(shape.slide_number(window.slide_ms), window.length_ms, window.slide_ms, end))
    names = [a.name for a in shape.aggregations]
    out = {}
    for key, raw in zip(wanted, pipe.execute(), strict=True):
        panes = [item for item in raw if item is not None]
        if panes:
            out[key] = dict(zip(names, combine(shape.offsets(), shape.width, panes), strict=True))
    return out


PaneKey = tuple[str, int, int]
"""(entity, slide ms, pane start ms)."""


def expected_panes(events: Iterable[dict[str, Any]], spec: StreamingWindowSpec) -> dict[PaneKey, dict[str, Any]]:
    """The oracle of the job's panes: per entity, distinct slide and pane, each aggregation over its events."""
    slides = {WindowShape.parse(w.length, w.slide).slide_ms for w in spec.windows}
    rows: dict[PaneKey, list[dict[str, Any]]] = defaultdict(list)
    for event in events:
        ts = int(event[spec.event_time_field])
        for slide in slides:
            rows[(str(event[spec.key_field]), slide, ts - ts % slide)].append(event)
    return {key: {a.name: aggregate(a.function, [e.get(a.field) if a.field else 1 for e in group])
                  for a in spec.aggregations} for key, group in rows.items()}


def read_panes(client: Store, project: str, spec: StreamingWindowSpec,
               keys: Iterable[PaneKey]) -> dict[PaneKey, dict[str, Any]]:
    """The stored panes ``keys``, each finished as a window of that one pane would be (absent ones left out)."""
    prefix, shape = panes_of(spec.feature_view, view_spec(spec, "entities_only"), spec, project)
    wanted = list(keys)
    pipe = client.pipeline(transaction=False)
    for account, slide, start in wanted:
        pipe.hget(pane_key(prefix, serialize_entity_key({"account_id": account})),  # type: ignore[arg-type]
                  pane_field(shape.slide_number(slide), start))  # type: ignore[arg-type]
    names = [a.name for a in shape.aggregations]
    return {key: dict(zip(names, combine(shape.offsets(), shape.width, [raw]), strict=True))
            for key, raw in zip(wanted, pipe.execute(), strict=True) if raw is not None}


def stored_windows(client: Store, project: str, spec: StreamingWindowSpec, accounts: Iterable[str],
                   after_ms: int) -> set[Key]:
    """Every window ending after ``after_ms`` that a stored pane of ``accounts`` is in; no other entity has a pane
    hash of the view (what "nothing that should not be there" asks of the store)."""
    prefix, shape = panes_of(spec.feature_view, view_spec(spec, "entities_only"), spec, project)
    owned = {pane_key(prefix, serialize_entity_key({"account_id": a})): a for a in set(accounts)}
    found = set(client.scan_iter(match=prefix + b"*", count=1000))
    assert found <= owned.keys(), f"pane hashes of other entities: {sorted(found - owned.keys())[:3]}"
    out: set[Key] = set()
    for key in found:
        for field in cast(list[bytes], client.hkeys(key)):
            number, start = (int(x) for x in field.split(b":"))
            for w in spec.windows:
                window = WindowShape.parse(w.length, w.slide)
                if shape.slide_number(window.slide_ms) == number:
                    out |= {(owned[key], w.suffix, end) for end in
                            range(start + window.slide_ms, start + window.length_ms + 1, window.slide_ms)
                            if end > after_ms}
    return out


def same(a: Any, b: Any) -> bool:
    if a is None or b is None:
        return a is b
    return math.isclose(float(a), float(b), rel_tol=1e-9, abs_tol=1e-9)


def mismatches(expected: Mapping[Any, dict[str, Any]], online: Mapping[Any, dict[str, Any]],
               names: Sequence[str]) -> list[str]:
    """Differences between the oracle and Redis (a null aggregate is an absent field)."""
    out = []
    for key, values in expected.items():
        got = online.get(key)
        if got is None:
            out.append(f"{key}: missing in Redis")
            continue
        for name in names:
            if not same(values[name], got.get(name)):
                out.append(f"{key}.{name}: expected {values[name]!r}, online {got.get(name)!r}")
    return out


def online_mismatches(client: Store, project: str, spec: StreamingWindowSpec,
                      events: Iterable[dict[str, Any]], names: Sequence[str]) -> list[str]:
    """Differences between the oracle over ``events`` and the windows Redis holds for ``spec``'s view (the windows
    still open: :func:`current_windows`)."""
    events = list(events)
    expected = current_windows(expected_windows(events, spec), events, spec)
    return mismatches(expected, read_windows(client, project, spec, expected), names)


def apply_window(kube_api: client.ApiClient, kubectl: "Kubectl", namespace: str, spec: StreamingWindowSpec,
                 view: FeatureViewSpec) -> None:
    """A namespace ``namespace`` holding the FeatureView of ``spec`` and the StreamingWindow ``activity`` (the
    job reports ``StreamRunning`` on it)."""
    client.CoreV1Api(kube_api).create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    manifests = [FeatureView(metadata={"name": spec.feature_view, "namespace": namespace}, spec=view).wire(),
                 StreamingWindow(metadata={"name": "activity", "namespace": namespace}, spec=spec).wire()]
    kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(manifests))


def stream_running(kubectl: "Kubectl", namespace: str, name: str) -> dict[str, Any] | None:
    """The StreamingWindow's ``StreamRunning`` condition (``None`` until the job reports one)."""
    live = json.loads(kubectl("get", "streamingwindow", name, "-n", namespace, "-o", "json").stdout)
    found: dict[str, Any] | None = next((c for c in (live.get("status") or {}).get("conditions", [])
                                         if c["type"] == "StreamRunning"), None)
    return found


def progress(client: Store, project: str, view: str) -> StreamProgress | None:
    """The view's progress record as the job last wrote it."""
    return StreamProgress.parse(client.hgetall(heartbeat_key(project, view)))  # type: ignore[arg-type]


def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """Partition -> end offset of ``topic`` (how many records it ever held)."""
    from streamguard.clientsecurity import KafkaEndpoint
    from streamguard.workloads.streaming.offsets import TopicProbe

    probe = TopicProbe(KafkaEndpoint(bootstrap), topic)
    return probe.end_offsets(probe.partitions())


@contextmanager
def scratch_topic(stack: Endpoints, prefix: str) -> Iterator[str]:
    """A fresh topic name on the stack's Kafka; afterwards the topic, its dead-letter topic and its value
    subject are deleted."""
    name = f"{prefix}-{uuid.uuid4().hex[:8]}"
    yield name
    delete_topics(stack.kafka_bootstrap, name, name + ".dlq")
    with SchemaRegistry(stack.registry_url) as registry:
        registry.delete_subject(f"{name}-value", permanent=True)


def delete_topics(bootstrap: str, *topics: str) -> None:
    """Delete test topics and wait for it (a dropped AdminClient may never send the request); a topic that was never
    created (a dead-letter topic no record went to) is gone already."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.delete_topics(list(topics), operation_timeout=30).values():
        try:
            future.result(timeout=60)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.UNKNOWN_TOPIC_OR_PART:
                raise
