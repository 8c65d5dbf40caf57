"""The ``StreamRunning`` condition of a StreamingWindow: a pure renderer and a server-side-apply shell.

The job applies, with field manager ``streamguard-stream`` on the ``status`` subresource, only that one
condition (``conditions`` is a map list keyed by ``type``, so the operator's conditions are untouched).
It applies only when the condition's status, reason or message changes, never on every batch.
"""

import logging
from datetime import UTC, datetime
from typing import Any

from streamguard.api.common import API_VERSION
from streamguard.api.kinds import STREAMING_WINDOW
from streamguard.kubeclient import api_client, apply_status, configured

FIELD_MANAGER = "streamguard-stream"
CONDITION = "StreamRunning"
log = logging.getLogger(__name__)


def render_condition(namespace: str, name: str, generation: int, status: str, reason: str, message: str,
                     transition: datetime) -> dict[str, Any]:
    """The apply body carrying only the ``StreamRunning`` condition."""
    return {
        "apiVersion": API_VERSION,
        "kind": "StreamingWindow",
        "metadata": {"name": name, "namespace": namespace},
        "status": {
            "conditions": [
                {
                    "type": CONDITION,
                    "status": status,
                    "reason": reason,
                    "message": message[:32768],
                    "observedGeneration": generation,
                    "lastTransitionTime": transition.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
                }
            ]
        },
    }


class ConditionReporter:
    """Applies the condition when an apiserver is reachable (in-cluster, or ``$KUBECONFIG``); else logs each
    change."""

    def __init__(self, namespace: str, name: str, generation: int) -> None:
        self.namespace, self.name, self.generation = namespace, name, generation
        self._last: tuple[str, str, str] | None = None
        self._since = datetime.now(UTC)
        self._api: Any = self._connect()

    @staticmethod
    def _connect() -> Any:
        if not configured():
            log.info("no in-cluster config and no KUBECONFIG: the StreamRunning condition is not reported")
            return None
        return api_client()

    def report(self, status: str, reason: str, message: str) -> bool:
        """Apply the condition if it changed; returns True when something was written."""
        state = (status, reason, message)
        if state == self._last:
            return False
        if self._api is None:
            log.info("%s=%s %s: %s", CONDITION, status, reason, message)
            self._last = state
            return False
        if self._last is None or self._last[0] != status:
            self._since = datetime.now(UTC)
        body = render_condition(self.namespace, self.name, self.generation, status, reason, message, self._since)
        try:
            apply_status(self._api, STREAMING_WINDOW, body, FIELD_MANAGER)
        except Exception as error:  # the job never dies for want of an apiserver
            log.warning("could not apply %s on StreamingWindow %s/%s: %s", CONDITION, self.namespace, self.name, error)
            return False
        self._last = state
        return True
