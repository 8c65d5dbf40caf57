"""The FeatureView status a run reports (pure), applied server-side on the status subresource.

Field manager ``streamguard-materializer`` owns ``materializedUntil``, ``onlineStoreGeneration`` (the
online store's generation the watermark belongs to), ``lastMaterializedAt``, ``freshnessSeconds``,
``rowsMaterialized`` and the ``Materialized`` and ``Fresh`` conditions; the conditions list is a map
keyed by ``type``, so the operator's own conditions are left alone.

Reasons of ``Materialized``: ``Materialized``, ``NoNewData``, ``Backfilled`` (success); ``Backfilling``
(a run is refilling the TTL's interval after the store lost its generation); ``StoreFull`` (Redis
refused a write, out of memory); ``StoreChanged`` (the store's generation ended during the run); the
:class:`~streamguard.workloads.materialize.errors.MaterializeError` reasons of bad input.
"""

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streamguard.api.common import API_VERSION

FIELD_MANAGER = "streamguard-materializer"


@dataclass(frozen=True)
class RunReport:
    """What a run did (or why it failed), as the status shows it."""

    ok: bool
    reason: str
    message: str
    finished_at: datetime
    materialized_until: datetime | None = None
    rows: int | None = None
    freshness_seconds: int | None = None
    fresh: bool = False
    fresh_reason: str = "NoData"
    fresh_message: str = ""
    generation: str | None = None
    """The online store's generation the run wrote into (recorded with the watermark on success)."""


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _condition(
    kind: str, ok: bool, reason: str, message: str, generation: int, now: datetime, previous: dict[str, Any]
) -> dict[str, Any]:
    status = "True" if ok else "False"
    old = previous.get(kind)
    since = old["lastTransitionTime"] if old and old.get("status") == status else _rfc3339(now)
    return {
        "type": kind,
        "status": status,
        "reason": reason,
        "message": message[:32768],
        "observedGeneration": generation,
        "lastTransitionTime": since,
    }


_KEPT_ON_FAILURE = (
    "materializedUntil",
    "onlineStoreGeneration",
    "lastMaterializedAt",
    "rowsMaterialized",
    "freshnessSeconds",
)


def render_status(
    name: str, namespace: str, generation: int, report: RunReport, previous_status: dict[str, Any]
) -> dict[str, Any]:
    """The apply configuration of the status subresource for one run.

    Server-side apply drops owned fields left out of an apply, so a failed run re-states the previous
    watermark and counters: the watermark never moves (or vanishes) on failure."""
    previous = {c.get("type", ""): c for c in previous_status.get("conditions") or []}
    status: dict[str, Any] = {
        "conditions": [
            _condition(
                "Materialized", report.ok, report.reason, report.message, generation, report.finished_at, previous
            ),
            _condition(
                "Fresh",
                report.fresh,
                report.fresh_reason,
                report.fresh_message,
                generation,
                report.finished_at,
                previous,
            ),
        ]
    }
    if not report.ok:
        status.update({k: previous_status[k] for k in _KEPT_ON_FAILURE if previous_status.get(k) is not None})
    if report.ok:
        status["lastMaterializedAt"] = _rfc3339(report.finished_at)
        status["rowsMaterialized"] = report.rows or 0
        if report.materialized_until is not None:
            status["materializedUntil"] = _rfc3339(report.materialized_until)
        if report.generation is not None:
            status["onlineStoreGeneration"] = report.generation
    if report.freshness_seconds is not None:
        status["freshnessSeconds"] = max(0, report.freshness_seconds)
    return {
        "apiVersion": API_VERSION,
        "kind": "FeatureView",
        "metadata": {"name": name, "namespace": namespace},
        "status": status,
    }
