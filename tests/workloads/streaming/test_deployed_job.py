"""One streaming job, started from the exact command line of the Deployment the operator renders for an
applied StreamingWindow, then driven through late events, dead letters and a mid-stream schema change.

The pod is emulated faithfully where it matters: the rendered ``command`` and ``env`` are used as they
are, the rendered job ConfigMap is bind-mounted at ``/etc/streamguard`` in a private mount namespace
(``unshare``), the checkpoint root is a local folder, and the admin kubeconfig stands in for the pod's
service account, and the metrics port is moved off 9108 with ``STREAMGUARD_PORT_METRICS`` (this host has no
pod network namespaces). Tests in this module run in order against the one job (Spark starts once).
"""

import json
import os
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import redis
import yaml
from confluent_kafka import Consumer
from kubernetes import client

from streamguard.api.featureview import FeatureView, FeatureViewSpec
from streamguard.api.streamingwindow import Aggregation, StreamingWindow, StreamingWindowSpec
from streamguard.contracts import wire
from streamguard.contracts.registry import SchemaRegistry
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.supervisor import free_port
from streamguard.jobspec import JOB_CONFIG_DIR, JOB_CONFIG_KEY
from streamguard.onlinestore.tenancy import store_project
from streamguard.onlinestore.window_layout import WRITTEN_BATCHES, heartbeat_key
from streamguard.operator.render.common import Owner
from streamguard.operator.render.streamingwindow import render
from streamguard.operator.settings import OperatorSettings
from streamguard.windows import WindowShape
from streamguard.workloads.producer.kafka import TransactionSender, ensure_topic
from tests.conftest import Kubectl
from tests.workloads.streaming.support import (
    V1,
    V2,
    JobProcess,
    current_windows,
    delete_topics,
    expected_windows,
    mismatches,
    progress,
    read_windows,
    view_spec,
    wait_for,
    window_spec,
)

pytestmark = [pytest.mark.stack, pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(900)]

T0 = 1_767_225_600_000
"""2026-01-01T00:00:00Z: event times of this module are offsets from it."""
NAME = "activity"
AGGREGATIONS = [
    Aggregation(name="txn_count", function="count"),
    Aggregation(name="amount_sum", function="sum", field="amount"),
    Aggregation(name="amount_sum_v2", function="sum", field="amount_usd"),
    Aggregation(name="amount_max", function="max", field="amount"),
]
NAMES = [a.name for a in AGGREGATIONS]


@dataclass
class Deployed:
    stack: Endpoints
    namespace: str
    spec: StreamingWindowSpec
    view: FeatureViewSpec
    container: dict[str, Any]
    job: JobProcess
    v1: TransactionSender
    redis: "redis.Redis"

    @property
    def project(self) -> str:
        """The store project the job's keys carry (namespace and ``spec.project``)."""
        return store_project(self.namespace, self.view.project)

    def event(self, account: str, offset_s: float, amount: float, usd: float | None = None) -> dict[str, Any]:
        return {"transaction_id": uuid.uuid4().hex, "account_id": account, "customer_id": "C1",
                "merchant_id": "M1", "amount": amount, "currency": "EUR", "channel": "ECOMMERCE",
                "event_time": T0 + int(offset_s * 1000), "is_fraud": False, "amount_usd": usd}

    def send(self, sender: TransactionSender, *events: dict[str, Any]) -> None:
        for event in events:
            sender.send(event)
        sender.flush()

    def windows_of(self, events: list[dict[str, Any]]) -> dict[Any, dict[str, Any]]:
        expected = current_windows(expected_windows(events, self.spec), events, self.spec)
        return read_windows(self.redis, self.project, self.spec, expected)


def _pod_argv(container: dict[str, Any], config_dir: Path) -> list[str]:
    """The container's command, run with the job ConfigMap mounted at /etc/streamguard (private mount)."""
    script = 'mount --bind "$1" "$2" && shift 2 && exec "$@"'
    return ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "sh",
            str(config_dir), JOB_CONFIG_DIR, *container["command"]]


def _pod_env(container: dict[str, Any], stack: Endpoints) -> dict[str, str]:
    env = {"PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}",
           "STREAMGUARD_SPARK_JARS": ",".join(stack.spark_jars), "KUBECONFIG": stack.kubeconfig}
    for name in ("JAVA_HOME", "PYTHONPATH"):  # PYTHONPATH: the code under test, as the image would hold it
        if os.environ.get(name):
            env[name] = os.environ[name]
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = item["value"]
        elif item["name"] == "STREAMGUARD_REDIS_URL":  # the Secret the operator references
            env[item["name"]] = stack.redis_url
    return env


@pytest.fixture(scope="module")
def deployed(stack: Endpoints, kube_api: client.ApiClient, kubectl: Kubectl, crds: None,
             tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployed]:
    suffix = uuid.uuid4().hex[:8]
    namespace, topic, project = f"sw-{suffix}", f"sw-{suffix}.transactions", f"sw{suffix}"
    work = tmp_path_factory.mktemp("deployed")
    spec = window_spec(topic, V2, AGGREGATIONS, watermark="2m", trigger="1s")
    view = view_spec(spec, project, deprecated=["amount_sum"])
    core = client.CoreV1Api(kube_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=namespace)))
    manifests = [
        FeatureView(metadata={"name": spec.feature_view, "namespace": namespace}, spec=view).wire(),
        StreamingWindow(metadata={"name": NAME, "namespace": namespace}, spec=spec).wire(),
    ]
    kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump_all(manifests))
    live = json.loads(kubectl("get", "streamingwindow", NAME, "-n", namespace, "-o", "json").stdout)
    settings = OperatorSettings(kafka_bootstrap=stack.kafka_bootstrap, registry_url=stack.registry_url,
                                checkpoint_root=str(work / "checkpoints"), checkpoint_storage=None)
    children = render(Owner.of(live), StreamingWindowSpec.model_validate(live["spec"]), view, settings)
    config_map = next(c for c in children if c["kind"] == "ConfigMap")
    deployment = next(c for c in children if c["kind"] == "Deployment")
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    config_dir = work / "job-config"
    config_dir.mkdir()
    (config_dir / JOB_CONFIG_KEY).write_text(config_map["data"][JOB_CONFIG_KEY])
    Path(JOB_CONFIG_DIR).mkdir(parents=True, exist_ok=True)  # the mount point, as the kubelet makes it
    ensure_topic(stack.kafka_bootstrap, topic)
    v1 = TransactionSender(stack.kafka_bootstrap, stack.registry_url, topic, V1)
    assert container["ports"][0]["containerPort"] == 9108
    port = free_port()  # the pod's port 9108 may be taken on this shared host (no network namespace here)
    env = {**_pod_env(container, stack), "STREAMGUARD_PORT_METRICS": str(port)}
    job = JobProcess(_pod_argv(container, config_dir), env, work / "job.log", port)
    state = Deployed(stack, namespace, spec, view, container, job, v1, redis.Redis.from_url(stack.redis_url))
    state.send(v1, state.event("clock", 600, 1.0))  # moves the watermark to T0 + 480 s
    job.start()
    try:
        yield state
    finally:
        job.stop()
        core.delete_namespace(namespace)
        delete_topics(stack.kafka_bootstrap, topic, topic + ".dlq")
        with SchemaRegistry(stack.registry_url) as registry:
            registry.delete_subject(f"{topic}-value", permanent=True)


def test_job_runs_from_the_rendered_deployment_and_reports_stream_running(deployed: Deployed,
                                                                          kubectl: Kubectl) -> None:
    assert deployed.job.argv[-len(deployed.container["command"]):] == [
        "streamguard", "workload", "stream", "--config", f"{JOB_CONFIG_DIR}/{JOB_CONFIG_KEY}"]

    def running() -> dict[str, Any] | None:
        live = json.loads(kubectl("get", "streamingwindow", NAME, "-n", deployed.namespace, "-o", "json",
                                  "--show-managed-fields").stdout)
        conditions = {c["type"]: c for c in (live.get("status") or {}).get("conditions", [])}
        cond = conditions.get("StreamRunning")
        return live if cond and cond["status"] == "True" else None

    live = wait_for(running, 420, "StreamRunning=True on the StreamingWindow", deployed.job, every=3)
    condition = next(c for c in live["status"]["conditions"] if c["type"] == "StreamRunning")
    assert condition["reason"] == "Running" and deployed.spec.source.topic in condition["message"]
    managers = {m["manager"]: m for m in live["metadata"]["managedFields"] if m.get("subresource") == "status"}
    assert "streamguard-stream" in managers
    owned = json.dumps(managers["streamguard-stream"]["fieldsV1"])
    assert 'k:{\\"type\\":\\"StreamRunning\\"}' in owned and "Ready" not in owned
    beat = wait_for(lambda: (p := progress(deployed.redis, deployed.project, deployed.spec.feature_view))
                    and p.watermark_ms == T0 + 480_000 and p.state == "running" and p,
                    120, "the watermark at T0+480s in the progress record", deployed.job)
    assert beat.processed_at_ms > 0 and beat.progress_at_ms is not None and beat.lag == 0
    key = heartbeat_key(deployed.project, deployed.spec.feature_view)
    written = deployed.redis.hget(key, WRITTEN_BATCHES)  # type: ignore[arg-type]
    assert written is not None and int(written) >= 1  # type: ignore[arg-type]  # serving's cached reads follow it


def test_late_events_counted_while_open_and_dropped_once_closed(deployed: Deployed) -> None:
    metrics = deployed.job.metrics()
    before = (metrics["streamguard_stream_late_groups_dropped_total"],
              metrics["streamguard_stream_late_windows_missed_total"])
    ninety = deployed.event("late-a", 510, 10.0)    # 90 s behind the newest event, within the watermark
    too_late = deployed.event("late-b", 400, 20.0)  # 200 s behind: later than the 120 s watermark
    deployed.send(deployed.v1, ninety, too_late)
    watermark = T0 + 480_000
    expected = expected_windows([ninety, too_late], deployed.spec, watermark_at=lambda _e: watermark)
    all_windows = expected_windows([ninety, too_late], deployed.spec)
    dropped = set(all_windows) - set(expected)
    assert {k for k in all_windows if k[0] == "late-a"} <= set(expected)  # every window of the 90 s event open
    assert dropped and all(k[0] == "late-b" and k[2] <= watermark for k in dropped)

    def arrived() -> bool:
        return not mismatches(expected, read_windows(deployed.redis, deployed.project, deployed.spec, expected),
                              NAMES)

    wait_for(arrived, 180, "the late events' open windows in the store", deployed.job)
    shapes = [WindowShape.parse(w.length, w.slide) for w in deployed.spec.windows]
    assert len([k for k in expected if k[0] == "late-a"]) == sum(s.length_ms // s.slide_ms for s in shapes) == 21
    # Spark drops the event's pane of a slide whose every window closed; the sink counts the closed windows of
    # a slide whose pane an open window still needed.
    by_slide = {s.slide_ms: max(o.length_ms for o in shapes if o.slide_ms == s.slide_ms) for s in shapes}
    ts = too_late["event_time"]
    gone = {slide for slide, longest in by_slide.items() if ts - ts % slide + longest <= watermark}
    suffix_slide = {w.suffix: WindowShape.parse(w.length, w.slide).slide_ms for w in deployed.spec.windows}
    missed = [k for k in dropped if suffix_slide[k[1]] not in gone]
    assert gone and missed, "the 200 s straggler loses its 15 s pane and misses closed 5 m windows"

    def counted() -> dict[str, float] | None:
        now = deployed.job.metrics()
        done = (now["streamguard_stream_late_groups_dropped_total"] - before[0] >= len(gone)
                and now["streamguard_stream_late_windows_missed_total"] - before[1] >= len(missed))
        return now if done else None

    late = wait_for(counted, 60, "the late metrics", deployed.job)
    assert late["streamguard_stream_late_groups_dropped_total"] - before[0] == len(gone)
    assert late["streamguard_stream_late_windows_missed_total"] - before[1] == len(missed)
    assert late["streamguard_stream_watermark_timestamp_seconds"] == watermark / 1000


def test_undecodable_records_go_to_the_dead_letter_topic(deployed: Deployed) -> None:
    serialized = deployed.v1.serialize(deployed.event("dlq", 620, 1.0))
    known_id = wire.schema_id(serialized)
    for value in (b"plain garbage", wire.frame(999_999, b"\x02ab"), wire.frame(known_id, serialized[5:8])):
        deployed.v1.send_raw("dlq", value)
    deployed.v1.flush()
    consumer = Consumer({"bootstrap.servers": deployed.stack.kafka_bootstrap, "group.id": uuid.uuid4().hex,
                         "auto.offset.reset": "earliest"})
    consumer.subscribe([deployed.spec.source.topic + ".dlq"])
    reasons: dict[bytes, str] = {}
    try:
        def collected() -> bool:
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                headers = dict(message.headers() or [])
                reasons[cast(bytes, message.value())] = cast(bytes, headers["streamguard.error"]).decode()
            return len(reasons) == 3

        wait_for(collected, 240, "three dead letters", deployed.job, every=0)
    finally:
        consumer.close()
    assert reasons == {b"plain garbage": "not-confluent-wire-format",
                       wire.frame(999_999, b"\x02ab"): "schema-id-unknown:999999",
                       wire.frame(known_id, serialized[5:8]): "avro-decode-failed"}
    metrics = wait_for(lambda: (m := deployed.job.metrics())["streamguard_stream_dead_letter_events_total"] >= 3
                       and m, 60, "the dead-letter metric", deployed.job)
    assert metrics["streamguard_stream_dead_letter_events_total"] == 3
    assert deployed.job.alive()


def test_compatible_v2_mid_stream_feeds_the_new_feature_version(deployed: Deployed) -> None:
    wait_for(lambda: (p := progress(deployed.redis, deployed.project, deployed.spec.feature_view))
             and p.batch_id is not None, 420,
             "the job running on v1 before v2 appears", deployed.job)
    v2 = TransactionSender(deployed.stack.kafka_bootstrap, deployed.stack.registry_url,
                           deployed.spec.source.topic, V2)
    old = deployed.event("evo", 700, 100.0)
    new = [deployed.event("evo", 710, 50.0, usd=54.0), deployed.event("evo", 720, 10.0, usd=10.8)]
    deployed.send(deployed.v1, old)
    deployed.send(v2, *new)
    with SchemaRegistry(deployed.stack.registry_url) as registry:
        assert registry.versions(f"{deployed.spec.source.topic}-value") == [1, 2]
    expected = expected_windows([{**old, "amount_usd": None}, *new], deployed.spec)

    def arrived() -> bool:
        return not mismatches(expected, deployed.windows_of([old, *new]), NAMES)

    wait_for(arrived, 240, "v1 and v2 events aggregated", deployed.job)
    both = deployed.windows_of([old, *new])[("evo", "1m", T0 + 750_000)]  # holds all three events
    assert both["txn_count"] == 3 and both["amount_sum"] == 160.0 and both["amount_sum_v2"] == pytest.approx(64.8)
    deprecated = [f.name for f in deployed.view.features if f.deprecated]
    assert deprecated == ["amount_sum_1m", "amount_sum_5m", "amount_sum_1h"]  # still served beside _v2
    restarts = deployed.job.metrics()
    assert sum(v for k, v in restarts.items() if k.startswith("streamguard_stream_query_restarts_total{")
               and 'reason="new-schema-id"' in k) >= 1
    assert deployed.job.alive()
