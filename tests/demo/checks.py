"""What the demo end-to-end tests check of a running demo, on either online store (test_e2e.py on the stack's
single Redis, test_e2e_cluster.py on its Redis Cluster)."""

import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from streamguard.demo import live
from streamguard.demo.burst import send_burst
from streamguard.demo.manifests import load_examples, operator_release
from streamguard.demo.run import CLUSTER_WIDE, Demo, DemoState
from streamguard.demo.stores import StoreChoice
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.kube import Kube

REPO = Path(__file__).resolve().parents[2]


@contextmanager
def demo_on(stack: Endpoints, demo_dir: Path, store: StoreChoice) -> Iterator[tuple[Demo, DemoState]]:
    """``streamguard demo up --store <store>`` in a namespace of its own; everything purged afterwards."""
    suffix = uuid.uuid4().hex[:6]
    runner = Demo(repo=REPO, demo_dir=demo_dir, stack_dir=Path(stack.run_dir), namespace=f"e2e-{suffix}",
                  suffix=suffix, timeout=1200, echo=print, workdir=REPO / ".run" / "e2e-work",
                  require_serving_ready=False, store=store)
    try:
        yield runner, runner.up()
    finally:
        stopped = runner.down(purge=True)
        assert set(stopped) >= {"serving-forward", "producer"}
        assert not any(runner.processes().values())
        kube = Kube.from_kubeconfig(stack.kubeconfig)
        assert kube.get(f"/api/v1/namespaces/{runner.namespace}") is None
        # The operator's cluster-wide RBAC and record policy go with the namespace.
        release = {"labelSelector": f"app.kubernetes.io/instance={operator_release(runner.namespace)}"}
        for group, plural in CLUSTER_WIDE:
            assert kube.request("GET", f"/apis/{group}/{plural}", query=release)["items"] == [], plural


def every_resource_is_ready(runner: Demo, kube: Kube) -> None:
    found = live.resources(kube, runner.namespace)
    expected = {doc["kind"].lower() + "s" for doc in load_examples(REPO / "examples" / "finserve")}
    for plural in expected:
        assert found[plural], f"no {plural} in {runner.namespace}"
    assert live.not_ready(kube, runner.namespace) == []


def serving_becomes_ready(state: DemoState) -> None:
    """``/readyz`` 200 within 2 minutes, every view fresh."""
    deadline = time.monotonic() + 120
    ready, body = live.readyz(state.serving_url)
    while not ready and time.monotonic() < deadline:
        time.sleep(2)
        ready, body = live.readyz(state.serving_url)
    assert ready, body
    assert body["ready"] is True
    assert all(view["fresh"] for view in body["views"])


def served_burst_seconds(state: DemoState, stack: Endpoints) -> float:
    """A burst of 20 transactions of a new account served exactly in its 1-minute window features; the seconds
    from its production to that."""
    account = f"A9{uuid.uuid4().int % 10**5:05d}"
    before = live.served_vector(state.serving_url, account)
    assert before is not None
    assert not before["txn_count_1m"]
    burst = send_burst(stack, state.topic, state.subject, account, 20)
    sent = time.monotonic()
    after = before
    while time.monotonic() - sent < 90:
        after = live.served_vector(state.serving_url, account) or before
        if (after["txn_count_1m"] or 0) >= 20:
            break
        time.sleep(0.2)
    served_after = time.monotonic() - sent
    assert after["txn_count_1m"] == 20, after
    assert after["amount_sum_1m"] == pytest.approx(sum(event["amount"] for event in burst))
    assert after["amount_max_1m"] == pytest.approx(max(event["amount"] for event in burst))
    return served_after
