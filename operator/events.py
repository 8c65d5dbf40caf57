"""Kubernetes Events on the custom resources, recorded only when something changed (never on a no-op)."""

import logging
from typing import Any

from streamguard.operator.kube import Kube, KubeError
from streamguard.operator.status import now

logger = logging.getLogger(__name__)


async def record(kube: Kube, body: dict[str, Any], type_: str, reason: str, message: str) -> None:
    """Best effort: an Event that cannot be written is logged, never fatal."""
    meta = body["metadata"]
    timestamp = now()
    event = {
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
        "involvedObject": {
            "apiVersion": body["apiVersion"],
            "kind": body["kind"],
            "name": meta["name"],
            "namespace": meta["namespace"],
            "uid": meta["uid"],
        },
        "type": type_,
        "reason": reason,
        "message": message[:1024],
        "source": {"component": "streamguard-operator"},
        "firstTimestamp": timestamp,
        "lastTimestamp": timestamp,
        "count": 1,
    }
    logger.info("%s %s/%s %s: %s", body["kind"], meta["namespace"], meta["name"], reason, message)
    try:
        await kube.create(event)
    except KubeError as error:
        logger.warning("could not record event %s on %s/%s: %s", reason, meta["namespace"], meta["name"], error)
