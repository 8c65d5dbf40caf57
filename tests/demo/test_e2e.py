"""The `make demo` path, headless, on the session stack and its real node: what a user would see.

Isolated from a demo (or another run) on the same stack: its own namespace, Feast project and registry
file, Kafka topic and registry subject. The offline data is on the stack's object store (shared by the runs
of a day: the same bytes); no pod sees a host folder. The time from a fraud burst's production to its showing in served
``txn_count_1m`` is measured and printed (not asserted: it depends on the machine's load); with
``STREAMGUARD_RECORD_RESULTS=1`` it is recorded in benchmarks/results/demo-burst.json (a test run leaves the
checkout as it found it otherwise).
"""

import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.dataset as ds
import pytest

from streamguard.demo import live
from streamguard.demo.manifests import feast_registry, operator_release
from streamguard.demo.run import Demo, DemoState
from streamguard.devstack import node
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.image import REPOSITORY, SPARK_REPOSITORY
from streamguard.devstack.kube import Kube
from streamguard.devstack.machine import machine_facts
from streamguard.objectstore import Credentials, is_remote, s3_filesystem
from tests.conftest import Kubectl
from tests.demo.checks import REPO, demo_on, every_resource_is_ready, served_burst_seconds, serving_becomes_ready
from tests.incontainer import assert_a_container, inside
from tests.polling import wait_for

pytestmark = [pytest.mark.stack, pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(1800)]

BURST_RESULTS = REPO / "benchmarks" / "results" / "demo-burst.json"


@pytest.fixture(scope="module")
def demo(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Demo, DemoState]]:
    with demo_on(stack, tmp_path_factory.mktemp("demo"), "server") as running:
        yield running


@pytest.fixture(scope="module")
def kube(stack: Endpoints) -> Kube:
    return Kube.from_kubeconfig(stack.kubeconfig)


def test_every_resource_is_ready(demo: tuple[Demo, DemoState], kube: Kube) -> None:
    every_resource_is_ready(demo[0], kube)


def test_every_workload_is_a_container_of_the_project_images_on_the_node(demo: tuple[Demo, DemoState],
                                                                         kube: Kube) -> None:
    runner, state = demo
    assert all(runner.processes().values()), runner.processes()
    assert state.owns_stack is False
    pods = kube.request("GET", f"/api/v1/namespaces/{runner.namespace}/pods").get("items", [])
    phases: dict[str, set[str]] = {}
    for pod in pods:
        component = pod["metadata"]["labels"].get("app.kubernetes.io/component", "")
        phases.setdefault(component, set()).add(pod["status"].get("phase", ""))
    for component in ("operator", "stream", "serving", "drift-exporter"):
        assert "Running" in phases.get(component, set()), phases
    assert "Succeeded" in phases.get("materializer", set()), f"materialization Jobs run to completion: {phases}"
    for pod in pods:
        assert pod["spec"]["nodeName"] == node.NODE_NAME, pod["metadata"]["name"]
        for container in pod["status"].get("containerStatuses", []):
            # The kubelet reports the runtime's container id: a containerd container, not a host process.
            assert container["containerID"].startswith("containerd://"), container
            assert container["image"].split(":")[0].removeprefix("docker.io/") in (REPOSITORY, SPARK_REPOSITORY)


def test_the_operator_is_the_charts_deployment_in_a_container(demo: tuple[Demo, DemoState], kube: Kube,
                                                             kubectl: Kubectl) -> None:
    runner, _ = demo
    release = operator_release(runner.namespace)
    available, line = live.operator_state(kube, runner.namespace, release)
    assert available, line
    deployment = kube.request("GET", f"/apis/apps/v1/namespaces/{runner.namespace}/deployments",
                              query={"labelSelector": live.operator_selector(release)})["items"][0]
    assert deployment["metadata"]["labels"]["helm.sh/chart"].startswith("streamguard-")
    pods = kube.request("GET", f"/api/v1/namespaces/{runner.namespace}/pods",
                        query={"labelSelector": live.operator_selector(release)})["items"]
    assert len(pods) == 1, [p["metadata"]["name"] for p in pods]
    pod = pods[0]
    image = pod["spec"]["containers"][0]["image"]
    assert image.split(":")[0] == REPOSITORY, image
    # Its args keep the image's entrypoint: tini is PID 1, the operator its child.
    assert_a_container(inside(kubectl, runner.namespace, pod), pod, image,
                       pid1="/usr/bin/tini -- streamguard operator run")


def test_serving_is_ready_because_every_view_is_fresh(demo: tuple[Demo, DemoState]) -> None:
    serving_becomes_ready(demo[1])


def test_a_fraud_burst_shows_in_served_window_features_within_seconds(demo: tuple[Demo, DemoState],
                                                                       stack: Endpoints) -> None:
    record_burst_latency(served_burst_seconds(demo[1], stack))


def record_burst_latency(seconds: float) -> None:
    """Print the figure (issue 13's goal: 10 s); write it to benchmarks/results/demo-burst.json when asked."""
    print(f"\nfraud burst produced -> served txn_count_1m: {seconds:.1f} s (goal <= 10 s)")
    if os.environ.get("STREAMGUARD_RECORD_RESULTS") != "1":
        return
    BURST_RESULTS.write_text(json.dumps({
        "benchmark": "demo-burst", "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine_facts(),
        "what": "tests/demo/test_e2e.py: 20 fraud transactions flushed to Kafka until serving (a container on "
                "the real node, through kubectl port-forward) answers txn_count_1m = 20; polled every 0.2 s",
        "burst_to_served_s": round(seconds, 1), "goal_s": 10.0, "within_goal": seconds <= 10.0,
    }, indent=2) + "\n")


def test_a_drift_run_is_recorded(demo: tuple[Demo, DemoState], kube: Kube) -> None:
    runner, _ = demo
    monitors = live.resources(kube, runner.namespace)["driftmonitors"]
    assert monitors, f"no DriftMonitor in {runner.namespace}"
    for monitor in monitors:
        name = monitor["metadata"]["name"]
        path = f"/apis/streamguard.dev/v1alpha1/namespaces/{runner.namespace}/driftmonitors/{name}"

        def last_run(path: str = path) -> dict[str, Any] | None:
            status: dict[str, Any] = (kube.get(path) or {}).get("status") or {}
            return status if status.get("lastRunAt") else None

        status = wait_for(f"a drift run of {name}", last_run, timeout=300)
        assert 0 <= status["driftShare"] <= 1
        assert set(status["scores"]) >= {"acct_amount_sum_30d"}
        assert any(c["type"] == "Drifted" and c["status"] in ("True", "False") for c in status["conditions"])


def test_no_pod_mounts_host_data_and_every_offline_location_is_on_the_object_store(
        demo: tuple[Demo, DemoState], kube: Kube) -> None:
    runner, _ = demo
    pods = kube.request("GET", f"/api/v1/namespaces/{runner.namespace}/pods").get("items", [])
    assert pods
    for pod in pods:
        host = [volume["name"] for volume in pod["spec"].get("volumes", []) if "hostPath" in volume]
        assert host == [], f"{pod['metadata']['name']} mounts host folders {host}"
    found = live.resources(kube, runner.namespace)
    locations = [view["spec"]["source"]["path"] for view in found["featureviews"]]
    locations += [monitor["spec"][key]["path"] for monitor in found["driftmonitors"]
                  for key in ("reference", "current")]
    assert locations and all(is_remote(location) for location in locations), locations


def test_every_feature_view_is_registered_and_a_fresh_process_builds_a_training_row(
        demo: tuple[Demo, DemoState], kube: Kube, stack: Endpoints, tmp_path: Path) -> None:
    runner, _ = demo
    views = live.resources(kube, runner.namespace)["featureviews"]
    for view in views:
        registered = [c for c in view["status"]["conditions"] if c["type"] == "Registered"]
        assert [c["status"] for c in registered] == ["True"], (view["metadata"]["name"], registered)
    profile = next(view for view in views if view["metadata"]["name"] == "account-profile")
    project, source = profile["spec"]["project"], profile["spec"]["source"]["path"]
    label_time = time.strftime("%Y-%m-%dT%H:%M:%S+00:00", time.gmtime())
    env = {"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(REPO), **stack.object_store_env()}
    done = subprocess.run([sys.executable, "-c", TRAINING_ROW, feast_registry(stack, runner.namespace),
                           runner.namespace, project, ACCOUNT, label_time], env=env, cwd=tmp_path,
                          capture_output=True, text=True, timeout=300, check=True)
    got = json.loads(done.stdout.strip().splitlines()[-1])
    assert got["views"] == sorted(view["metadata"]["name"] for view in views)

    table = ds.dataset(source.removeprefix("s3://"), filesystem=s3_filesystem(Credentials.from_env(
        stack.object_store_env())), format="parquet", partitioning="hive").to_table(
        filter=(ds.field("account_id") == ACCOUNT) & (ds.field("event_timestamp") <= pd.Timestamp(label_time)))
    latest = table.sort_by([("event_timestamp", "descending")]).slice(0, 1).to_pylist()
    assert latest, f"no snapshot of {ACCOUNT} in {source}"
    assert got["row"]["acct_txn_count_7d"] == latest[0]["acct_txn_count_7d"]
    assert got["row"]["acct_amount_sum_30d"] == pytest.approx(latest[0]["acct_amount_sum_30d"])


ACCOUNT = "A000042"
TRAINING_ROW = """
import json, sys
import pandas as pd
from streamguard.feastrepo.registration import feature_store
from streamguard.feastrepo.training import training_set
location, namespace, project, account, at = sys.argv[1:]
store = feature_store(location, project, namespace=namespace)
labels = pd.DataFrame({"account_id": [account], "event_timestamp": [pd.Timestamp(at)]})
features = ["account-profile:acct_txn_count_7d", "account-profile:acct_amount_sum_30d"]
row = training_set(store, labels, features).iloc[0]
print(json.dumps({"views": sorted(v.name for v in store.list_feature_views()),
                  "row": {name: (None if pd.isna(row[name]) else row[name].item()) for name in
                          ("acct_txn_count_7d", "acct_amount_sum_30d")}}))
"""
"""Run by a fresh process holding only the registry location and the object store's credentials: what a data
scientist's laptop needs for a training set."""
