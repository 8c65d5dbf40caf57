"""Two replicas with kopf peering: only the highest priority one acts; the other takes over when it goes."""

from collections.abc import Callable

import pytest

from streamguard.operator.peering import manifests_yaml
from tests.operator import manifests
from tests.operator.conftest import Cluster
from tests.operator.process import OperatorProcess

pytestmark = pytest.mark.stack


def test_only_the_leader_writes_and_the_standby_takes_over(
    start_operator: Callable[..., OperatorProcess], cluster: Cluster
) -> None:
    peering = manifests_yaml("streamguard", (cluster.namespace,))
    # The CRD and its object in one apply: on a fresh apiserver the object may race the CRD's discovery.
    cluster.kubectl("apply", "--server-side", "-f", "-", input=peering, check=False)
    cluster.kubectl("wait", "--for=condition=Established", "crd/kopfpeerings.kopf.dev", "--timeout=60s")
    cluster.kubectl("apply", "--server-side", "-f", "-", input=peering)
    leader = start_operator(peering=("streamguard", 100))
    standby = start_operator(peering=("streamguard", 10))
    peers = cluster.wait_for(
        lambda: len((cluster.get("kopfpeering", "streamguard") or {}).get("status") or {}) == 2, what="two peers"
    )
    assert peers

    cluster.apply(manifests.feature_view())
    cluster.wait("condition=Ready", "featureview/customer-txn")
    leader.wait_idle()
    standby.wait_idle()
    assert leader.writes() > 0
    assert standby.writes() == 0
    assert standby.metrics()["streamguard_operator_objects"] == 0

    leader.stop()
    cluster.apply(manifests.feature_view(schedule="0 * * * *"))
    cluster.wait_for(
        lambda: cluster.get("cronjob", "customer-txn-materialize")["spec"]["schedule"] == "0 * * * *",
        timeout=90,
        what="the standby to take over",
    )
    cluster.wait_for(
        lambda: cluster.get("featureview", "customer-txn")["status"]["observedGeneration"] == 2, what="status"
    )
    assert standby.writes() > 0
