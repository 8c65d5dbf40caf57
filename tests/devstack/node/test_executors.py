"""A StreamingWindow scaled out on Spark's Kubernetes scheduler, on the stack's real node: the operator's
rendering with ``spec.executors.count = 2`` runs the job's pod as Spark's driver, which creates two executor
pods from the Spark image through the API server (its own ServiceAccount). The executors run every task, the
windows' state and the writes to Redis among them, and the windows equal the oracle's. Deleting the job's
pod deletes its executors (they are owned by it). All of it under the chart's policy confining the driver to
its own executors (tests/delivery/test_spark_driver_policy.py)."""

import json
import random
import re
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from streamguard.api.featureview import FeatureViewSpec
from streamguard.api.streamingwindow import Executors, StreamingWindowSpec
from streamguard.contracts.registry import SchemaRegistry
from streamguard.devstack import node
from streamguard.devstack.provision import ensure
from streamguard.onlinestore.tenancy import store_project
from streamguard.operator.render import streamingwindow
from streamguard.operator.render.common import IDENTITY_KINDS, Owner
from streamguard.workloads.producer.kafka import TransactionSender, ensure_topic
from tests.conftest import Helm
from tests.devstack.node.conftest import Cluster, placed
from tests.incontainer import assert_a_container
from tests.polling import wait_for
from tests.sparkdrivers import spark_driver_policy
from tests.workloads.streaming.support import (
    AGGREGATIONS,
    NAMES,
    V1,
    delete_topics,
    expected_windows,
    read_windows,
    view_spec,
    window_spec,
)

pytestmark = [pytest.mark.stack, pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(1200)]

EXECUTORS = Executors(count=2, cores=1, memory="512Mi")
EXECUTOR_PODS = "app.kubernetes.io/component=stream-executor,app.kubernetes.io/instance=activity"


@dataclass
class ScaledOut:
    spec: StreamingWindowSpec
    view: FeatureViewSpec
    driver: dict[str, Any]
    deployment: dict[str, Any]
    sender: TransactionSender


def stream_running(cluster: Cluster) -> dict[str, Any]:
    """The StreamingWindow's ``StreamRunning`` condition (empty before the job wrote one)."""
    window = json.loads(cluster.kubectl("get", "streamingwindow", "activity", "-n", cluster.namespace, "-o",
                                        "json").stdout)
    conditions = {c["type"]: c for c in window.get("status", {}).get("conditions", [])}
    return dict(conditions.get("StreamRunning", {}))


def send_one(scaled_out: ScaledOut, account: str, amount: float) -> dict[str, Any]:
    """One transaction of ``account``, now; the event sent."""
    event = {"transaction_id": uuid.uuid4().hex, "account_id": account, "customer_id": "C1", "merchant_id": "M1",
             "amount": amount, "currency": "EUR", "channel": "ECOMMERCE", "event_time": int(time.time() * 1000),
             "is_fraud": False}
    scaled_out.sender.send(event)
    scaled_out.sender.flush()
    return event


def assert_windowed(cluster: Cluster, scaled_out: ScaledOut, event: dict[str, Any]) -> None:
    """``event``'s windows appear in Redis, with its amount."""
    expected = expected_windows([event], scaled_out.spec)
    project = store_project(cluster.namespace, scaled_out.view.project)

    def written() -> dict[Any, Any] | None:
        found = read_windows(cluster.redis, project, scaled_out.spec, expected)
        return found if len(found) == len(expected) else None

    online = wait_for(f"the windows of {event['account_id']}", written, timeout=600, interval=3)
    assert all(online[key]["amount_sum"] == pytest.approx(event["amount"]) for key in expected), online


def pods(cluster: Cluster, selector: str) -> list[dict[str, Any]]:
    return list(json.loads(cluster.kubectl("get", "pods", "-n", cluster.namespace, "-l", selector, "-o",
                                           "json").stdout)["items"])


def running(pod: dict[str, Any]) -> bool:
    return any("running" in status["state"] for status in pod["status"].get("containerStatuses", []))


def running_executors(cluster: Cluster) -> list[dict[str, Any]]:
    """The window's executor pods once there are ``EXECUTORS.count`` of them, all running."""
    def started() -> list[dict[str, Any]] | None:
        found = pods(cluster, EXECUTOR_PODS)
        return found if len(found) == EXECUTORS.count and all(running(p) for p in found) else None

    return wait_for(f"{EXECUTORS.count} running executor pods", started, timeout=300, interval=2)


@pytest.fixture(scope="module")
def scaled_out(cluster: Cluster, helm: Helm) -> Iterator[ScaledOut]:
    policy = yaml.safe_dump_all(spark_driver_policy(helm, cluster.namespace, cluster.images.spark.name))
    cluster.kubectl("apply", "-f", "-", input=policy)
    suffix = uuid.uuid4().hex[:8]
    topic, project = f"executors-{suffix}.transactions", f"exec{suffix}"
    spec = window_spec(topic, V1, AGGREGATIONS, watermark="2m", trigger="2s").model_copy(
        update={"executors": EXECUTORS})
    view = view_spec(spec, project)
    ensure_topic(cluster.stack.kafka_bootstrap, topic, partitions=6)
    sender = TransactionSender(cluster.stack.kafka_bootstrap, cluster.stack.registry_url, topic, V1)
    live = cluster.apply_window(spec, view)
    # Executors share the checkpoint with the driver: a PVC (ReadWriteOnce, so on the driver's node). The
    # 2-core node cannot give each executor a whole core: they ask for a tenth.
    settings = cluster.settings.model_copy(update={"checkpoint_storage": "1Gi", "executor_cpu_request": "100m"})
    children = streamingwindow.render(Owner.of(live), spec, view, settings)
    cluster.apply(*placed([c for c in children if c["kind"] in ("ConfigMap", "Deployment", "PersistentVolumeClaim",
                                                                  *IDENTITY_KINDS)]))
    deployment = next(c for c in children if c["kind"] == "Deployment")
    driver = cluster.pod_of(deployment)
    try:
        yield ScaledOut(spec, view, driver, deployment, sender)
    finally:
        cluster.kubectl("delete", "-f", "-", "--ignore-not-found", input=policy)
        delete_topics(cluster.stack.kafka_bootstrap, topic, topic + ".dlq")
        with SchemaRegistry(cluster.stack.registry_url) as registry:
            registry.delete_subject(f"{topic}-value", permanent=True)


def test_the_driver_creates_its_executors_as_pods_of_the_spark_image(cluster: Cluster, scaled_out: ScaledOut) -> None:
    executors = running_executors(cluster)
    driver = scaled_out.driver["metadata"]
    for pod in executors:
        assert re.fullmatch(r"activity-stream-[0-9a-f]{6}-exec-[0-9]+", pod["metadata"]["name"]), pod["metadata"]
        # Owned by the driver's pod, so they go when it goes.
        owners = pod["metadata"]["ownerReferences"]
        assert [(o["kind"], o["name"], o["uid"]) for o in owners] == [("Pod", driver["name"], driver["uid"])]
        container = pod["spec"]["containers"][0]
        assert container["args"] == ["executor"]
        assert pod["spec"].get("automountServiceAccountToken") is False
        assert container["resources"]["requests"]["cpu"] == "100m"
        # The image's entrypoint (tini, then `streamguard executor`, which became the executor's JVM).
        assert_a_container(cluster.inside(pod), pod, cluster.images.spark.name, pid1="tini -- streamguard executor")


def test_two_executors_compute_the_windows_the_oracle_computes(cluster: Cluster, scaled_out: ScaledOut) -> None:
    now = int(time.time() * 1000)
    rng = random.Random(7)
    events = [{"transaction_id": uuid.uuid4().hex, "account_id": f"A{rng.randrange(40)}", "customer_id": "C1",
               "merchant_id": "M1", "amount": round(rng.uniform(1, 500), 2), "currency": "EUR",
               "channel": "ECOMMERCE", "event_time": now - rng.randrange(0, 100_000), "is_fraud": False}
              for _ in range(600)]
    for event in events:
        scaled_out.sender.send(event)
    scaled_out.sender.flush()
    expected = expected_windows(events, scaled_out.spec)
    project = store_project(cluster.namespace, scaled_out.view.project)

    def written() -> dict[Any, Any] | None:
        online = read_windows(cluster.redis, project, scaled_out.spec, expected)
        complete = len(online) == len(expected) and all(
            online[key]["txn_count"] == values["txn_count"] for key, values in expected.items())
        return online if complete else None

    online = wait_for("the executors' windows in Redis", written, timeout=600, interval=3)
    for key, values in expected.items():
        for name in NAMES:
            assert online[key][name] == pytest.approx(values[name]), (key, name, online[key], values)


def test_the_executors_go_with_the_drivers_pod(cluster: Cluster, scaled_out: ScaledOut) -> None:
    assert pods(cluster, EXECUTOR_PODS)
    cluster.kubectl("delete", "deployment", scaled_out.deployment["metadata"]["name"], "-n", cluster.namespace,
                    "--wait=false")
    wait_for("the executor pods deleted", lambda: not pods(cluster, EXECUTOR_PODS), timeout=180, interval=2)


def test_a_driver_whose_executors_are_refused_says_so(cluster: Cluster, scaled_out: ScaledOut) -> None:
    # The same job, its executors asking for another image than the Spark image: the policy refuses every
    # executor pod, Spark gives up starting, and the job reports it on its StreamingWindow before it exits.
    deployment = json.loads(json.dumps(scaled_out.deployment))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    conf_var = next(e for e in container["env"] if e["name"] == "STREAMGUARD_SPARK_CONF")
    conf = json.loads(conf_var["value"])
    conf["spark.kubernetes.container.image"] = "localhost/not-the-spark-image:0"
    conf_var["value"] = json.dumps(conf)
    cluster.apply(*placed([deployment]))

    def refused() -> dict[str, Any] | None:
        condition = stream_running(cluster)
        return condition if condition.get("reason") == "SparkUnavailable" else None

    condition = wait_for("StreamRunning=False SparkUnavailable", refused, timeout=300, interval=2)
    assert condition["status"] == "False"
    assert condition["message"].startswith("Spark did not start: "), condition
    assert "executor pods failed" in condition["message"], condition
    driver = pods(cluster, ",".join(f"{k}={v}" for k, v in deployment["spec"]["selector"]["matchLabels"].items()))
    log = cluster.kubectl("logs", "-n", cluster.namespace, driver[0]["metadata"]["name"], "--all-containers",
                          check=False).stdout + cluster.kubectl(
        "logs", "-n", cluster.namespace, driver[0]["metadata"]["name"], "--previous", check=False).stdout
    assert "must run the Spark image" in log, log[-3000:]
    assert not pods(cluster, EXECUTOR_PODS)
    # Rendered as the operator renders it again, the job starts, resumes from its checkpoint and goes on.
    cluster.apply(*placed([json.loads(json.dumps(scaled_out.deployment))]))
    assert_windowed(cluster, scaled_out, send_one(scaled_out, "after-refusal", 12.5))
    wait_for("StreamRunning=True", lambda: stream_running(cluster).get("status") == "True", timeout=120, interval=2)


def test_a_crashed_driver_replaces_the_executors_its_last_run_left(cluster: Cluster, scaled_out: ScaledOut) -> None:
    # SIGKILL the driver's container, as the kernel's OOM killer would: the kubelet restarts it in the same pod,
    # which still owns the executor pods of the run that died. The new run deletes them and starts its own.
    selector = ",".join(f"{k}={v}" for k, v in scaled_out.deployment["spec"]["selector"]["matchLabels"].items())
    driver = cluster.pod_of(scaled_out.deployment)
    before = {p["metadata"]["name"] for p in running_executors(cluster)}
    container = driver["status"]["containerStatuses"][0]
    node.ctr(ensure(["containerd"]), node.NodeLayout(Path(cluster.stack.run_dir).resolve()), "task", "kill",
             "-s", "SIGKILL", container["containerID"].removeprefix("containerd://"))

    def replaced() -> list[dict[str, Any]] | None:
        restarted = pods(cluster, selector)[0]["status"]["containerStatuses"][0]["restartCount"]
        found = pods(cluster, EXECUTOR_PODS)
        names = {p["metadata"]["name"] for p in found}
        done = restarted > container["restartCount"] and not names & before and len(found) == EXECUTORS.count
        return found if done and all(running(p) for p in found) else None

    after = wait_for("the old executor pods deleted and new ones running", replaced, timeout=420, interval=2)
    assert all(p["metadata"]["ownerReferences"][0]["uid"] == driver["metadata"]["uid"] for p in after)
    assert_windowed(cluster, scaled_out, send_one(scaled_out, "after-crash", 3.5))
