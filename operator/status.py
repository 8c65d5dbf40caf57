"""The operator's part of ``status``: kstatus conditions (``Ready``/``Reconciling``/``Stalled``), domain
conditions it owns, observedGeneration and printer-column fields. Pure: computes the status to apply with
server-side apply, or ``None`` when the live status already says exactly that (a no-op writes nothing)."""

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from streamguard.api.common import API_VERSION

Phase = Literal["Ready", "Reconciling", "Stalled", "Degraded"]
"""``Degraded``: Ready=False while neither reconciling nor stalled (a dependency or the workload is down)."""
CondStatus = Literal["True", "False", "Unknown"]
STATUS: dict[bool, CondStatus] = {True: "True", False: "False"}


@dataclass(frozen=True)
class Cond:
    type: str
    status: CondStatus
    reason: str
    message: str = ""


@dataclass
class Verdict:
    """What one reconcile concluded. ``fields`` maps wire names of status fields the operator owns to
    values (``None`` removes the field)."""

    phase: Phase
    reason: str
    message: str
    domain: list[Cond] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)


def kstatus(verdict: Verdict) -> list[Cond]:
    ready = verdict.phase == "Ready"
    return [
        Cond("Ready", STATUS[ready], verdict.reason, verdict.message),
        Cond(
            "Reconciling",
            STATUS[verdict.phase == "Reconciling"],
            verdict.reason if verdict.phase == "Reconciling" else "Reconciled",
            verdict.message if verdict.phase == "Reconciling" else "",
        ),
        Cond(
            "Stalled",
            STATUS[verdict.phase == "Stalled"],
            verdict.reason if verdict.phase == "Stalled" else "NotStalled",
            verdict.message if verdict.phase == "Stalled" else "",
        ),
    ]


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def desired_status(
    kind: str,
    namespace: str,
    name: str,
    generation: int,
    verdict: Verdict,
    live_status: dict[str, Any] | None,
    timestamp: str | None = None,
) -> dict[str, Any] | None:
    """The status apply configuration, or ``None`` when nothing the operator owns would change."""
    live_status = live_status or {}
    live_conditions = {c.get("type"): c for c in live_status.get("conditions") or []}
    conditions = []
    unchanged = live_status.get("observedGeneration") == generation
    for cond in [*kstatus(verdict), *verdict.domain]:
        live = live_conditions.get(cond.type, {})
        same_status = live.get("status") == cond.status
        unchanged = (
            unchanged
            and same_status
            and live.get("reason") == cond.reason
            and live.get("message", "") == cond.message
            and live.get("observedGeneration") == generation
        )
        conditions.append(
            {
                "type": cond.type,
                "status": cond.status,
                "reason": cond.reason,
                "message": cond.message,
                "observedGeneration": generation,
                "lastTransitionTime": live["lastTransitionTime"]
                if same_status and live.get("lastTransitionTime")
                else (timestamp or now()),
            }
        )
    for key, value in verdict.fields.items():
        unchanged = unchanged and live_status.get(key) == value
    if unchanged:
        return None
    status: dict[str, Any] = {"observedGeneration": generation, "conditions": conditions}
    status.update({key: value for key, value in verdict.fields.items() if value is not None})
    return {
        "apiVersion": API_VERSION,
        "kind": kind,
        "metadata": {"name": name, "namespace": namespace},
        "status": status,
    }
