"""Per-kind reconcilers: the imperative shell around ``render`` (read, apply, prune, status, registry).

Each returns how long to wait before trying again (``None``: nothing to retry). Bad input never raises:
it becomes ``Stalled``/``Ready=False`` with a message naming the field.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from streamguard.api.driftmonitor import DriftMonitorSpec
from streamguard.api.featureview import FeatureViewSpec
from streamguard.api.streamingwindow import StreamingWindowSpec
from streamguard.operator import events
from streamguard.operator.apply import ChildReport, sync_children
from streamguard.operator.kube import Kube, KubeError
from streamguard.operator.registry import IncompatibleSchemaError, Registry, RegistryError, RegistryUnavailableError
from streamguard.operator.render import driftmonitor, featureview, streamingwindow
from streamguard.operator.render.common import Manifest, Owner
from streamguard.operator.render.streamingwindow import Problem
from streamguard.operator.settings import OperatorSettings
from streamguard.operator.status import Cond, Verdict, desired_status

logger = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)

FINALIZER = "streamguard.dev/registry-subject"
SKIP_CLEANUP_ANNOTATION = "streamguard.dev/skip-cleanup"
"""Escape hatch: ``"true"`` lets a StreamingWindow go without touching the registry."""
RULES_CACHE_SECONDS = 60.0
RETRY_SECONDS = 10.0


class ChildRejectedError(Exception):
    """The apiserver refused a rendered child for a reason retrying cannot fix."""


@dataclass
class Context:
    kube: Kube
    settings: OperatorSettings
    registry: Registry | None = None
    remember: Callable[[Manifest], None] = field(default=lambda body: None, repr=False)
    """Called with the object an own write returned, so the next reconcile does not see a stale copy."""
    _rules: tuple[float, bool] | None = field(default=None, repr=False)

    async def prometheus_rules_served(self) -> bool:
        if self._rules is None or time.monotonic() - self._rules[0] > RULES_CACHE_SECONDS:
            self._rules = (time.monotonic(), await self.kube.served("PrometheusRule"))
        return self._rules[1]


def field_errors(error: ValidationError, prefix: str = "spec") -> str:
    """``spec.windows[0].slide: String should match pattern …`` for each problem, joined."""
    parts = []
    for item in error.errors():
        path = prefix
        for loc in item["loc"]:
            path += f"[{loc}]" if isinstance(loc, int) else f".{loc}"
        parts.append(f"{path}: {item['msg']}")
    return "; ".join(parts)


def _spec(model: type[M], body: Manifest) -> M | Problem:
    try:
        return model.model_validate(body.get("spec") or {})
    except ValidationError as error:
        return Problem("InvalidSpec", field_errors(error))


def _stalled(problem: Problem, domain: list[Cond] | None = None, fields: dict[str, Any] | None = None) -> Verdict:
    return Verdict("Stalled", problem.reason, problem.message, domain or [], fields or {})


def _ready(
    report: ChildReport, desired: list[Manifest], domain: list[Cond] | None = None, fields: dict[str, Any] | None = None
) -> Verdict:
    names = ", ".join(f"{m['kind']}/{m['metadata']['name']}" for m in desired) or "none"
    return Verdict("Ready", "ChildrenReady", f"children applied: {names}", domain or [], fields or {})


async def _write_status(ctx: Context, body: Manifest, verdict: Verdict) -> None:
    meta = body["metadata"]
    previous = {c.get("type"): c.get("status") for c in (body.get("status") or {}).get("conditions") or []}
    manifest = desired_status(
        body["kind"], meta["namespace"], meta["name"], int(meta.get("generation") or 0), verdict, body.get("status")
    )
    if manifest is None:
        return
    ctx.remember(await ctx.kube.apply(manifest, subresource="status"))
    if verdict.phase == "Stalled" and previous.get("Stalled") != "True":
        await events.record(ctx.kube, body, "Warning", verdict.reason, verdict.message)


async def _sync(
    ctx: Context, body: Manifest, owner: Owner, component: str, kinds: tuple[str, ...], desired: list[Manifest]
) -> ChildReport:
    try:
        report = await sync_children(ctx.kube, owner, component, kinds, desired)
    except KubeError as error:
        if error.transient:
            raise
        raise ChildRejectedError(error.message) from error
    if report.changed:
        summary = "; ".join(
            part
            for part in (
                f"applied {', '.join(report.applied)}" if report.applied else "",
                f"pruned {', '.join(report.pruned)}" if report.pruned else "",
            )
            if part
        )
        await events.record(ctx.kube, body, "Normal", "ChildrenApplied", summary)
    return report


async def _view(ctx: Context, namespace: str, name: str) -> FeatureViewSpec | None | Problem:
    body = await ctx.kube.get("FeatureView", namespace, name)
    if body is None:
        return None
    spec = _spec(FeatureViewSpec, body)
    if isinstance(spec, Problem):
        return Problem("FeatureViewInvalid", f"spec.featureView: FeatureView {name!r} is invalid ({spec.message})")
    return spec


async def reconcile_featureview(ctx: Context, body: Manifest) -> float | None:
    if body["metadata"].get("deletionTimestamp"):
        return None
    owner = Owner.of(body)
    spec = _spec(FeatureViewSpec, body)
    if isinstance(spec, Problem):
        await _write_status(ctx, body, _stalled(spec))
        return None
    fields = {"entityNames": ",".join(e.name for e in spec.entities), "featureCount": len(spec.features)}
    desired = featureview.render(owner, spec, ctx.settings)
    try:
        report = await _sync(ctx, body, owner, featureview.COMPONENT, featureview.CHILD_KINDS, desired)
    except ChildRejectedError as error:
        problem = Problem("ChildRejected", f"spec.materialization: the apiserver refused a child: {error}")
        await _write_status(ctx, body, _stalled(problem, fields=fields))
        return None
    await _write_status(ctx, body, _ready(report, desired, fields=fields))
    return None


async def reconcile_driftmonitor(ctx: Context, body: Manifest) -> float | None:
    if body["metadata"].get("deletionTimestamp"):
        return None
    owner = Owner.of(body)
    spec = _spec(DriftMonitorSpec, body)
    if isinstance(spec, Problem):
        await _write_status(ctx, body, _stalled(spec))
        return None
    view = await _view(ctx, owner.namespace, spec.feature_view)
    problem = view if isinstance(view, Problem) else driftmonitor.check(spec, spec.feature_view, view)
    if problem is not None or view is None or isinstance(view, Problem):
        await _write_status(ctx, body, _stalled(problem or Problem("FeatureViewNotFound", "spec.featureView")))
        return None
    rules = await ctx.prometheus_rules_served()
    desired = driftmonitor.render(owner, spec, view, ctx.settings, rules)
    kinds = driftmonitor.CHILD_KINDS if rules else driftmonitor.CHILD_KINDS[:-1]
    try:
        report = await _sync(ctx, body, owner, driftmonitor.COMPONENT, kinds, desired)
    except ChildRejectedError as error:
        await _write_status(ctx, body, _stalled(Problem("ChildRejected", f"the apiserver refused a child: {error}")))
        return None
    await _write_status(ctx, body, _ready(report, desired))
    return None


def _carried(body: Manifest, cond_type: str) -> Cond:
    """The live condition of ``cond_type`` unchanged (so a verdict that did not look does not erase it)."""
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond.get("type") == cond_type:
            return Cond(
                cond_type, cond.get("status", "Unknown"), cond.get("reason", "Unknown"), cond.get("message", "")
            )
    return Cond(cond_type, "Unknown", "NotChecked", "the contract has not been checked yet")


_SCHEMA_FIELDS = ("subject", "schemaId", "schemaVersion", "schemaFingerprint")


def _schema_fields(body: Manifest) -> dict[str, Any]:
    status = body.get("status") or {}
    return {key: status.get(key) for key in _SCHEMA_FIELDS}


def _deletion_policy(ctx: Context, spec: StreamingWindowSpec | None) -> str:
    if spec is not None and spec.contract.deletion_policy:
        return spec.contract.deletion_policy
    return ctx.settings.subject_deletion_policy


async def _set_finalizer(ctx: Context, body: Manifest, present: bool) -> None:
    meta = body["metadata"]
    finalizers: list[str] = list(meta.get("finalizers") or [])
    if present == (FINALIZER in finalizers):
        return
    if present:
        operations: list[Manifest] = (
            [{"op": "add", "path": "/metadata/finalizers/-", "value": FINALIZER}]
            if finalizers
            else [{"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}]
        )
    else:
        index = finalizers.index(FINALIZER)
        operations = [
            {"op": "test", "path": f"/metadata/finalizers/{index}", "value": FINALIZER},
            {"op": "remove", "path": f"/metadata/finalizers/{index}"},
        ]
    ctx.remember(await ctx.kube.json_patch(body["kind"], meta["namespace"], meta["name"], operations))


async def _finalize_window(ctx: Context, body: Manifest, spec: StreamingWindowSpec | None) -> float | None:
    meta = body["metadata"]
    if FINALIZER not in (meta.get("finalizers") or []):
        return None
    subject = (body.get("status") or {}).get("subject") or (streamingwindow.subject_of(spec) if spec else None)
    skip = (meta.get("annotations") or {}).get(SKIP_CLEANUP_ANNOTATION) == "true"
    if skip or subject is None or _deletion_policy(ctx, spec) != "Delete":
        reason = "CleanupSkipped" if skip else "SubjectRetained"
        await events.record(ctx.kube, body, "Normal", reason, f"registry subject {subject!r} left in place")
        await _set_finalizer(ctx, body, present=False)
        return None
    others = [
        item
        for item in await ctx.kube.select("StreamingWindow", meta["namespace"])
        if item["metadata"]["uid"] != meta["uid"] and (item.get("status") or {}).get("subject") == subject
    ]
    try:
        if others:
            message = f"subject {subject!r} kept: still used by StreamingWindow {others[0]['metadata']['name']}"
            await events.record(ctx.kube, body, "Normal", "SubjectShared", message)
        elif ctx.registry is None:
            raise RegistryUnavailableError("no registry URL configured")
        else:
            deleted = await ctx.registry.delete_subject(subject)
            await events.record(
                ctx.kube,
                body,
                "Normal",
                "SubjectDeleted" if deleted else "SubjectGone",
                f"registry subject {subject!r} {'deleted' if deleted else 'was already gone'}",
            )
    except (RegistryUnavailableError, RegistryError) as error:
        started = datetime.fromisoformat(meta["deletionTimestamp"].replace("Z", "+00:00"))
        waited = time.time() - started.timestamp()
        if waited < ctx.settings.cleanup_timeout_seconds:
            logger.warning(
                "cleanup of subject %s for %s/%s pending: %s", subject, meta["namespace"], meta["name"], error
            )
            return RETRY_SECONDS
        await events.record(
            ctx.kube,
            body,
            "Warning",
            "CleanupAbandoned",
            f"registry subject {subject!r} not deleted after {int(waited)}s: {error}",
        )
    await _set_finalizer(ctx, body, present=False)
    return None


async def reconcile_streamingwindow(ctx: Context, body: Manifest) -> float | None:
    owner = Owner.of(body)
    spec = _spec(StreamingWindowSpec, body)
    if body["metadata"].get("deletionTimestamp"):
        return await _finalize_window(ctx, body, None if isinstance(spec, Problem) else spec)
    schema_fields = _schema_fields(body)
    if isinstance(spec, Problem):
        await _write_status(ctx, body, _stalled(spec, [_carried(body, "SchemaRegistered")], schema_fields))
        return None
    schema_fields["windowNames"] = ",".join(w.suffix for w in spec.windows)
    view = await _view(ctx, owner.namespace, spec.feature_view)
    problem = (
        view
        if isinstance(view, Problem)
        else streamingwindow.check(spec, spec.feature_view, view, ctx.settings.max_windows_per_event)
    )
    if problem is not None or view is None or isinstance(view, Problem):
        verdict = _stalled(
            problem or Problem("FeatureViewNotFound", "spec.featureView"),
            [_carried(body, "SchemaRegistered")],
            schema_fields,
        )
        await _write_status(ctx, body, verdict)
        return None
    await _set_finalizer(ctx, body, present=_deletion_policy(ctx, spec) == "Delete")
    subject = streamingwindow.subject_of(spec)
    schema = streamingwindow.normalized_schema(spec.contract.schema_)
    fingerprint = streamingwindow.fingerprint(schema)
    if schema_fields["subject"] != subject or schema_fields["schemaFingerprint"] != fingerprint:
        try:
            if ctx.registry is None:
                raise RegistryUnavailableError("no registry URL configured")
            registration = await ctx.registry.register(subject, schema)
        except IncompatibleSchemaError as error:
            refused = Cond("SchemaRegistered", "False", "IncompatibleSchema", str(error))
            message = (
                f"spec.contract.schema: the registry refused the schema for subject {subject!r} "
                f"(BACKWARD): {error}; the running job keeps its previous contract"
            )
            await _write_status(ctx, body, _stalled(Problem("IncompatibleSchema", message), [refused], schema_fields))
            return None
        except RegistryError as error:
            refused = Cond("SchemaRegistered", "False", "RegistryRefused", str(error))
            await _write_status(
                ctx, body, _stalled(Problem("RegistryRefused", f"spec.contract: {error}"), [refused], schema_fields)
            )
            return None
        except RegistryUnavailableError as error:
            pending = Cond("SchemaRegistered", "Unknown", "RegistryUnavailable", str(error))
            verdict = Verdict(
                "Reconciling",
                "RegistryUnavailable",
                f"waiting for the schema registry: {error}",
                [pending],
                schema_fields,
            )
            await _write_status(ctx, body, verdict)
            return RETRY_SECONDS
        schema_fields.update(
            subject=subject, schemaId=registration.id, schemaVersion=registration.version, schemaFingerprint=fingerprint
        )
    registered = Cond(
        "SchemaRegistered",
        "True",
        "Registered",
        f"subject {subject!r} version {schema_fields['schemaVersion']} (id {schema_fields['schemaId']})",
    )
    desired = streamingwindow.render(owner, spec, view, ctx.settings)
    try:
        report = await _sync(ctx, body, owner, streamingwindow.COMPONENT, streamingwindow.CHILD_KINDS, desired)
    except ChildRejectedError as error:
        problem = Problem("ChildRejected", f"the apiserver refused a child: {error}")
        await _write_status(ctx, body, _stalled(problem, [registered], schema_fields))
        return None
    await _write_status(ctx, body, _ready(report, desired, [registered], schema_fields))
    return None


RECONCILERS = {
    "FeatureView": reconcile_featureview,
    "StreamingWindow": reconcile_streamingwindow,
    "DriftMonitor": reconcile_driftmonitor,
}
