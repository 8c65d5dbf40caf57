"""Restarts converge without duplicates, and a resync of unchanged objects writes nothing at all (it only reads
the registry to verify the subject status records)."""

import uuid
from collections.abc import Callable
from typing import Any

import pytest

from tests.operator import manifests
from tests.operator.conftest import Cluster
from tests.operator.process import OperatorProcess

pytestmark = pytest.mark.stack

KINDS = "featureview,streamingwindow,driftmonitor,configmap,cronjob,deployment,service,pvc,prometheusrule"


CONTROLLER_STATUS = ("CronJob", "Deployment")
"""Kinds whose status Kubernetes' own controllers write (a CronJob's last schedule time at each tick of its
schedule, a Deployment's replica counts): their ``generation`` (bumped only by a spec change) is compared, not their
``resourceVersion``; that the operator called no write at all is checked on its own (``writes()``)."""


def versions(cluster: Cluster) -> dict[str, str]:
    """kind/name -> resourceVersion (generation for :data:`CONTROLLER_STATUS` kinds) of every object the operator
    owns or reconciles."""
    return {
        f"{item['kind']}/{item['metadata']['name']}": str(
            item["metadata"]["generation"] if item["kind"] in CONTROLLER_STATUS else item["metadata"]["resourceVersion"]
        )
        for item in cluster.items(KINDS)
        if item["metadata"]["name"] != "kube-root-ca.crt"
    }


def views(count: int) -> list[dict[str, Any]]:
    return [manifests.feature_view(name=f"view-{i}") for i in range(count)]


def test_restart_midway_converges_without_duplicates_and_resync_writes_nothing(
    start_operator: Callable[..., OperatorProcess], cluster: Cluster
) -> None:
    subject = f"t-{uuid.uuid4().hex[:8]}-value"
    first = start_operator()
    cluster.apply(
        *views(6),
        manifests.feature_view(),
        manifests.streaming_window(subject=subject, deletion_policy="Delete"),
        manifests.drift_monitor(),
    )
    first.stop(kill=True)  # mid-way: some objects reconciled, some not

    second = start_operator()
    cluster.wait("condition=Ready", "--all", "featureviews,streamingwindows,driftmonitors")
    second.wait_idle()
    names = sorted(f"{c['kind']}/{c['metadata']['name']}" for c in cluster.items("configmap,cronjob,deployment"))
    assert len(names) == len(set(names))
    assert names.count("CronJob/view-3-materialize") == 1
    assert len([n for n in names if n.startswith("CronJob/")]) == 7
    second.stop()

    before = versions(cluster)
    third = start_operator()
    third.wait_idle()
    metrics = third.metrics()
    assert metrics['streamguard_operator_reconciles_total{result="ok"}'] >= 9
    assert third.writes() == 0, metrics
    registry_writes = [
        name
        for name, value in metrics.items()
        if name.startswith("streamguard_operator_registry_requests_total")
        and not any(f'operation="{read}"' in name for read in ("lookup", "get_config"))
        and value
    ]
    assert registry_writes == [], "a resync only verifies the registry, it registers nothing"
    assert versions(cluster) == before

    # A child edited behind the operator's back is put right (only that child is applied, plus an Event).
    cluster.kubectl(
        "patch",
        "-n",
        cluster.namespace,
        "cronjob/view-0-materialize",
        "--type=merge",
        "-p",
        '{"spec":{"schedule":"0 0 * * *"}}',
    )
    cluster.wait_for(
        lambda: cluster.get("cronjob", "view-0-materialize")["spec"]["schedule"] == "*/15 * * * *",
        what="drift correction",
    )
    third.wait_idle()
    applied = {name: value for name, value in third.metrics().items() if 'verb="apply"' in name}
    assert applied == {'streamguard_operator_api_requests_total{kind="CronJob",verb="apply"}': 1.0}
    cluster.kubectl("delete", "-n", cluster.namespace, "streamingwindow/customer-txn", "--timeout=60s")
