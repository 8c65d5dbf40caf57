"""`streamguard demo up --store cluster`: the FinServe spine with its online store on the stack's 3-master Redis
Cluster (streamguard.devstack.redis_cluster), headless. A module of its own, so that the demo on the stack's
single Redis (test_e2e.py) is torn down before this one starts: two demos at once would share 2 cores."""

import base64
from collections.abc import Iterator
from typing import Any, cast

import pytest
import redis

from streamguard.demo import live
from streamguard.demo.manifests import REDIS_SECRET
from streamguard.demo.run import Demo, DemoState
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.kube import Kube
from streamguard.onlinestore.client import store_url
from streamguard.onlinestore.tenancy import acl_key_patterns
from tests.demo.checks import demo_on, every_resource_is_ready, served_burst_seconds, serving_becomes_ready

pytestmark = [pytest.mark.stack, pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(1800)]


@pytest.fixture(scope="module")
def demo(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Demo, DemoState]]:
    with demo_on(stack, tmp_path_factory.mktemp("demo"), "cluster") as running:
        yield running


@pytest.fixture(scope="module")
def kube(stack: Endpoints) -> Kube:
    return Kube.from_kubeconfig(stack.kubeconfig)


def test_every_resource_is_ready(demo: tuple[Demo, DemoState], kube: Kube) -> None:
    every_resource_is_ready(demo[0], kube)


def test_serving_is_ready_because_every_view_is_fresh(demo: tuple[Demo, DemoState]) -> None:
    serving_becomes_ready(demo[1])


def test_a_fraud_burst_shows_in_served_window_features_within_seconds(demo: tuple[Demo, DemoState],
                                                                       stack: Endpoints) -> None:
    print(f"\nfraud burst produced -> served txn_count_1m on the cluster: {served_burst_seconds(demo[1], stack):.1f} s")


def test_the_workloads_write_through_every_master_of_the_cluster(demo: tuple[Demo, DemoState], kube: Kube,
                                                                   stack: Endpoints) -> None:
    runner, _ = demo
    secret = kube.get(f"/api/v1/namespaces/{runner.namespace}/secrets/{REDIS_SECRET}")
    assert secret is not None
    assert base64.b64decode(secret["data"]["url"]).decode() == stack.redis_cluster_url
    projects = {view["spec"]["project"] for view in live.resources(kube, runner.namespace)["featureviews"]}
    patterns = acl_key_patterns(runner.namespace, projects)
    with redis.Redis.from_url(store_url(stack.redis_cluster_url)[0]) as seed:
        known = cast(dict[str, dict[str, Any]], seed.cluster("NODES"))
    masters = [name for name, node in known.items() if "master" in node["flags"]]
    per_master = {}
    for name in masters:
        host, port = name.rsplit(":", 1)
        with redis.Redis(host=host, port=int(port)) as client:
            per_master[name] = sum(1 for pattern in patterns for _ in client.scan_iter(match=pattern, count=1000))
    assert len(per_master) == 3 and all(count > 0 for count in per_master.values()), per_master
