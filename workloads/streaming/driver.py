"""The job as Spark's driver on Kubernetes (``spec.executors``): before Spark creates a run's executor pods,
the executor pods an earlier run of the same container left behind are deleted.

A container that crashes (OOM-killed, say) restarts in the same pod, and that pod still owns its executor
pods. Their executors exit once their driver is gone, but their pods stay, ``Failed``, until the driver's pod
is deleted. A clean stop needs none of this: Spark deletes its executors itself.
"""

import logging
import os
from collections.abc import Iterable

from kubernetes import client

from streamguard.jobspec import POD_UID_ENV, spark_on_kubernetes
from streamguard.kubeclient import api_client, configured

EXECUTOR_LABEL = "spark-role=executor"
log = logging.getLogger(__name__)


def owned_by(pods: Iterable[client.V1Pod], owner_uid: str) -> list[str]:
    """The names of ``pods`` that ``owner_uid`` owns (pure)."""
    return [str(pod.metadata.name) for pod in pods if pod.metadata is not None
            and any(ref.uid == owner_uid for ref in pod.metadata.owner_references or [])]


def remove_leftover_executors(namespace: str) -> list[str]:
    """With executors on Kubernetes, delete the executor pods this pod (``$POD_UID``) owns; the names deleted.
    Never raises: a failure is logged, and Spark starts regardless."""
    owner = os.environ.get(POD_UID_ENV)
    if not spark_on_kubernetes() or not owner or not configured():
        return []
    try:
        core = client.CoreV1Api(api_client())
        names = owned_by(core.list_namespaced_pod(namespace, label_selector=EXECUTOR_LABEL).items, owner)
        for name in names:
            core.delete_namespaced_pod(name, namespace, grace_period_seconds=0)
    except Exception as error:  # the API server being away must not keep the job from starting
        log.warning("could not remove the executor pods of an earlier run: %s", error)
        return []
    if names:
        log.info("deleted %d executor pod(s) an earlier run of this container left: %s", len(names), names)
    return names
