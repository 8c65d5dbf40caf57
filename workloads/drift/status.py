"""The DriftMonitor status this exporter owns: a pure renderer and a thin server-side-apply shell.

The exporter applies, with field manager ``streamguard-drift`` on the ``status`` subresource, only
``lastRunAt``, ``driftShare``, ``driftedFeatures``, ``driftedCount``, ``scores`` and the ``Drifted``
condition. ``conditions`` is a map list keyed by ``type``, so the operator's own conditions merge.
``scores`` maps each feature to its PSI, or to its KS p-value for ``spec.ksFeatures``.
"""

import math
from datetime import UTC, datetime
from typing import Any, cast

from kubernetes import client

from streamguard.api.common import API_VERSION, GROUP, VERSION
from streamguard.api.kinds import DRIFT_MONITOR
from streamguard.kubeclient import apply_status
from streamguard.workloads.drift.analysis import DriftResult
from streamguard.workloads.drift.errors import DriftInputError
from streamguard.workloads.drift.plan import DriftPlan

FIELD_MANAGER = "streamguard-drift"
CONDITION = "Drifted"
OWN_FIELDS = ("lastRunAt", "driftShare", "driftedFeatures", "driftedCount", "scores")


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(
    status: str, reason: str, message: str, generation: int, live: dict[str, Any] | None, now: datetime
) -> dict[str, Any]:
    previous = next(
        (c for c in ((live or {}).get("status") or {}).get("conditions", []) if c.get("type") == CONDITION), None
    )
    unchanged = previous is not None and previous.get("status") == status
    return {
        "type": CONDITION,
        "status": status,
        "reason": reason,
        "message": message,
        "observedGeneration": generation,
        "lastTransitionTime": previous["lastTransitionTime"] if unchanged and previous else _timestamp(now),
    }


def _generation(plan: DriftPlan, live: dict[str, Any] | None) -> int:
    if plan.generation:
        return plan.generation
    return int(((live or {}).get("metadata") or {}).get("generation") or 0)


def _summary(result: DriftResult, plan: DriftPlan) -> tuple[str, str, str]:
    total = len(result.scores)
    counts = f"{len(result.drifted_features)} of {total} features drifted"
    share = f"share {result.drift_share:.2f}, threshold {plan.drift_share:.2f}"
    listed = f": {', '.join(result.drifted_features)}" if result.drifted_features else ""
    if result.dataset_drift:
        return "True", "DriftDetected", f"{plan.ref}: {counts} ({share}){listed}"
    return "False", "BelowThreshold", f"{plan.ref}: {counts} ({share}){listed}"


def render_status(
    plan: DriftPlan,
    outcome: DriftResult | DriftInputError,
    live: dict[str, Any] | None,
    now: datetime,
    retry_in: str,
) -> dict[str, Any]:
    """The apply body for ``outcome``; on error the last good result is kept and the condition is Unknown."""
    generation = _generation(plan, live)
    status: dict[str, Any]
    if isinstance(outcome, DriftResult):
        cond_status, reason, message = _summary(outcome, plan)
        status = {
            "lastRunAt": _timestamp(now),
            "driftShare": round(outcome.drift_share, 6),
            "driftedFeatures": list(outcome.drifted_features),
            "driftedCount": len(outcome.drifted_features),
            "scores": {s.feature: s.value for s in outcome.scores if math.isfinite(s.value)},
        }
    else:
        cond_status, reason = "Unknown", outcome.reason
        message = f"{plan.ref}: {outcome.field}: {outcome.message} (retrying in {retry_in})"
        previous = (live or {}).get("status") or {}
        status = {key: previous[key] for key in OWN_FIELDS if key in previous}
    status["conditions"] = [_condition(cond_status, reason, message, generation, live, now)]
    return {
        "apiVersion": API_VERSION,
        "kind": "DriftMonitor",
        "metadata": {"name": plan.monitor, "namespace": plan.namespace},
        "status": status,
    }


class StatusWriter:
    """Reads the live DriftMonitor and applies the rendered status (the imperative shell)."""

    def __init__(self, api: client.ApiClient) -> None:
        self._api = api
        self._objects = client.CustomObjectsApi(api)

    def read(self, plan: DriftPlan) -> dict[str, Any] | None:
        try:
            live = cast(
                dict[str, Any],
                self._objects.get_namespaced_custom_object(
                    GROUP, VERSION, plan.namespace, DRIFT_MONITOR.plural, plan.monitor
                ),
            )
        except client.ApiException as error:
            if error.status == 404:
                return None
            raise
        return live

    def apply(self, body: dict[str, Any]) -> None:
        apply_status(self._api, DRIFT_MONITOR, body, FIELD_MANAGER)
