"""The operator's workloads as containers of the project's images on the stack's real node: the streaming
Deployment (the Spark image) reads Kafka and writes windows into Redis, the serving Deployment answers a
lookup from the host through 127.0.0.1 (kubectl port-forward), and a materialization Job loads a Parquet
source into Redis. The manifests are the operator's and the serving module's renderings, unchanged but for
the node selected, the local images and the pods' addresses of the stack's services; each pod is shown
to be a container from the inside (uid 10001, read-only root, its own PID 1, hostname = pod name)."""

import json
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from kubernetes import client

from streamguard.api.common import GROUP, VERSION
from streamguard.api.featureview import FeatureViewSpec
from streamguard.api.streamingwindow import Aggregation, StreamingWindowSpec
from streamguard.contracts.registry import SchemaRegistry
from streamguard.devstack.chart import ServingDeployment, render_serving
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.kube import port_forward
from streamguard.devstack.supervisor import Supervisor, free_port
from streamguard.finserve.resources import EXAMPLES_DIR
from streamguard.onlinestore.tenancy import store_project
from streamguard.operator.render import featureview, streamingwindow
from streamguard.operator.render.common import IDENTITY_KINDS, Owner
from streamguard.workloads.producer.kafka import TransactionSender, ensure_topic
from tests.devstack.node.conftest import Cluster, on_node, placed
from tests.incontainer import FACTS, assert_a_container, parse
from tests.polling import wait_for
from tests.workloads.streaming.support import V1, delete_topics, expected_windows, read_windows, view_spec, window_spec

pytestmark = [pytest.mark.stack, pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(1200)]

AGGREGATIONS = [Aggregation(name="txn_count", function="count"),
                Aggregation(name="amount_sum", function="sum", field="amount")]


@dataclass
class Streaming:
    spec: StreamingWindowSpec
    view: FeatureViewSpec
    pod: dict[str, Any]
    sender: TransactionSender


@pytest.fixture(scope="module")
def streaming(cluster: Cluster) -> Iterator[Streaming]:
    suffix = uuid.uuid4().hex[:8]
    topic, project = f"pods-{suffix}.transactions", f"pods{suffix}"
    spec = window_spec(topic, V1, AGGREGATIONS, watermark="2m", trigger="2s")
    view = view_spec(spec, project)
    ensure_topic(cluster.stack.kafka_bootstrap, topic)
    sender = TransactionSender(cluster.stack.kafka_bootstrap, cluster.stack.registry_url, topic, V1)
    live = cluster.apply_window(spec, view)
    children = streamingwindow.render(Owner.of(live), spec, view, cluster.settings)
    cluster.apply(*placed([c for c in children if c["kind"] in ("ConfigMap", "Deployment", *IDENTITY_KINDS)]))
    pod = cluster.pod_of(next(c for c in children if c["kind"] == "Deployment"))
    try:
        yield Streaming(spec, view, pod, sender)
    finally:
        delete_topics(cluster.stack.kafka_bootstrap, topic, topic + ".dlq")
        with SchemaRegistry(cluster.stack.registry_url) as registry:
            registry.delete_subject(f"{topic}-value", permanent=True)


def test_the_streaming_deployment_runs_spark_in_its_image_and_writes_windows(cluster: Cluster,
                                                                            streaming: Streaming) -> None:
    # The rendered command replaces the image's entrypoint: PID 1 is the workload itself.
    assert_a_container(cluster.inside(streaming.pod), streaming.pod, cluster.images.spark.name,
                       pid1="streamguard workload stream --config")
    now = int(time.time() * 1000)
    events = [{"transaction_id": uuid.uuid4().hex, "account_id": account, "customer_id": "C1",
               "merchant_id": "M1", "amount": amount, "currency": "EUR", "channel": "ECOMMERCE",
               "event_time": now - ago_ms, "is_fraud": False}
              for account, ago_ms, amount in (("A1", 3_000, 5.0), ("A1", 2_000, 7.5), ("A2", 1_000, 1.0))]
    for event in events:
        streaming.sender.send(event)
    streaming.sender.flush()
    expected = expected_windows(events, streaming.spec)

    def written() -> dict[Any, Any] | None:
        online = read_windows(cluster.redis, store_project(cluster.namespace, streaming.view.project),
                              streaming.spec, expected)
        return online if len(online) == len(expected) else None

    online = wait_for("the pod's windows in Redis", written, timeout=300, interval=2)
    for key, values in expected.items():
        assert online[key]["txn_count"] == values["txn_count"], (key, online[key])
        assert online[key]["amount_sum"] == pytest.approx(values["amount_sum"]), (key, online[key])


def test_the_serving_deployment_is_probed_by_the_kubelet_and_answers_on_loopback(
        cluster: Cluster, streaming: Streaming, stack: Endpoints, tmp_path: Path) -> None:
    serving = ServingDeployment(namespace=cluster.namespace, auth_token_secret=None, image=cluster.images.main.name,
                                image_pull_policy="Never", replicas=1, required_views=())
    objects = render_serving(serving)
    cluster.apply(*placed(objects))
    # Ready once the kubelet's /readyz probe passed; its args keep the image's entrypoint (tini as PID 1).
    pod = cluster.pod_of(next(o for o in objects if o["kind"] == "Deployment"))
    assert_a_container(cluster.inside(pod), pod, cluster.images.main.name, pid1="/usr/bin/tini -- streamguard serve")
    port = free_port()
    forwards = Supervisor(tmp_path / "forwards")
    port_forward(forwards, "serving", stack, cluster.namespace, f"pod/{pod['metadata']['name']}", port, serving.port)
    try:
        base = f"http://127.0.0.1:{port}"
        feature = f"{streaming.spec.feature_view}:txn_count_1h"  # holds both of A1's events for an hour

        def answer() -> dict[str, Any] | None:
            try:
                response = httpx.post(f"{base}/features", timeout=5,
                                      json={"features": [feature], "entities": [{"account_id": "A1"}]})
            except httpx.HTTPError:
                return None
            return dict(response.json()) if response.status_code == 200 else None

        result = wait_for("a lookup through port-forward", answer, timeout=60)["results"][0]
        # Both of A1's events, from the window that contains now; `partial` when that hour starts before the
        # events the stream holds (docs/semantics.md), never stale or missing.
        assert result["values"] == [2] and result["statuses"][0] in ("present", "partial"), result
    finally:
        forwards.stop("serving")


def test_a_materialization_job_loads_its_source_into_redis(cluster: Cluster, tmp_path_factory: pytest.TempPathFactory,
                                                            kube_api: client.ApiClient) -> None:
    folder = tmp_path_factory.mktemp("batch-source")
    folder.chmod(0o755)
    source = folder / "customer_profile.parquet"
    pq.write_table(pa.table({
        "customer_id": ["C000001", "C000002"],
        "event_timestamp": pa.array([datetime(2026, 10, 1, tzinfo=UTC)] * 2, pa.timestamp("us", tz="UTC")),
        "cust_txn_count_7d": pa.array([3, 1], pa.int64()), "cust_txn_count_30d": pa.array([9, 2], pa.int64()),
        "cust_amount_avg_30d": [20.5, 3.0], "cust_foreign_ratio_30d": [0.0, 0.5],
        "cust_distinct_merchants_90d": pa.array([5, 1], pa.int64()),
    }), source)
    source.chmod(0o644)
    manifest = yaml.safe_load((EXAMPLES_DIR / "customer-profile.yaml").read_text())
    project = f"mat{uuid.uuid4().hex[:8]}"
    manifest["metadata"]["namespace"] = cluster.namespace
    manifest["spec"]["project"] = project
    manifest["spec"]["source"]["path"] = str(source)
    cluster.kubectl("apply", "--server-side", "-f", "-", input=yaml.safe_dump(manifest))
    live = json.loads(cluster.kubectl("get", "featureview", manifest["metadata"]["name"], "-n", cluster.namespace,
                                      "-o", "json").stdout)
    children = featureview.render(Owner.of(live), FeatureViewSpec.model_validate(live["spec"]), cluster.settings)
    cron = next(c for c in children if c["kind"] == "CronJob")
    cluster.apply(*[c for c in children if c["kind"] in ("ConfigMap", *IDENTITY_KINDS)])
    # Run the CronJob's template now, as `kubectl create job --from=cronjob/...` would, with the source's
    # folder mounted read-only where the FeatureView names it (a node-local file stands in for object storage).
    template = cron["spec"]["jobTemplate"]
    pod = template["spec"]["template"]["spec"]
    pod["volumes"].append({"name": "source", "hostPath": {"path": str(folder), "type": "Directory"}})
    pod["containers"][0]["volumeMounts"].append({"name": "source", "mountPath": str(folder), "readOnly": True})
    # A Job's container exits, so it reports what it sees before running the rendered command (exec: the
    # workload becomes the shell's process, the container's PID 1).
    pod["containers"][0]["command"] = ["sh", "-c", FACTS + '; exec "$@"', "sh", *pod["containers"][0]["command"],
                                       "--end", "2026-10-03T00:00:00Z"]
    job: dict[str, Any] = {"apiVersion": "batch/v1", "kind": "Job",
                           "metadata": {"name": "materialize-now", **template.get("metadata", {})},
                           "spec": {**template["spec"], "template": on_node(template["spec"]["template"])}}
    job["metadata"]["name"] = "materialize-now"
    cluster.apply(job)

    def finished() -> dict[str, Any] | None:
        status = json.loads(cluster.kubectl("get", "job", "materialize-now", "-n", cluster.namespace, "-o",
                                            "json").stdout).get("status", {})
        assert not status.get("failed"), cluster.kubectl("logs", "-n", cluster.namespace, "job/materialize-now",
                                                         check=False).stdout[-3000:]
        return status if status.get("succeeded") else None

    wait_for("the materialization Job to succeed", finished, timeout=600, interval=2)
    # One Feast entity hash per customer (besides the store's coverage, freshness and generation records).
    store = store_project(cluster.namespace, project)
    keys = [k for k in cluster.redis.scan_iter(match=f"*{store}".encode(), count=1000) if b"customer_id" in k]
    assert len(keys) == 2, keys
    view = cast(dict[str, Any], client.CustomObjectsApi(kube_api).get_namespaced_custom_object(
        GROUP, VERSION, cluster.namespace, "featureviews", manifest["metadata"]["name"]))
    assert view["status"]["rowsMaterialized"] == 2  # reported by the Job through its ServiceAccount's token
    job_pod = json.loads(cluster.kubectl("get", "pods", "-n", cluster.namespace, "-l", "job-name=materialize-now",
                                         "-o", "json").stdout)["items"][0]
    logs = cluster.kubectl("logs", "-n", cluster.namespace, job_pod["metadata"]["name"]).stdout
    assert_a_container(parse(logs), job_pod, cluster.images.main.name, pid1="sh -c ")
