"""Per-kind reconcilers: the imperative shell around ``render`` (read, apply, prune, status, registry).

Each returns how long to wait before trying again (``None``: nothing to retry). Bad input never raises:
it becomes ``Stalled``/``Ready=False`` with a message naming the field.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from streamguard.api.driftmonitor import DriftMonitorSpec
from streamguard.api.featureview import FeatureViewSpec
from streamguard.api.streamingwindow import StreamingWindowSpec
from streamguard.contracts.registry import (
    AsyncSchemaRegistry,
    IncompatibleSchemaError,
    RegistryError,
    RegistryRejectedError,
    RegistryUnavailableError,
    normalized,
)
from streamguard.operator import events, feastregistry, record, streamhealth, subjects, topics
from streamguard.operator.apply import ChildReport, sync_children
from streamguard.operator.feastregistry import FeastRegistry, FeastRegistryError
from streamguard.operator.kube import Kube, KubeError
from streamguard.operator.render import driftmonitor, featureview, streamingwindow
from streamguard.operator.render.common import Manifest, Owner
from streamguard.operator.render.streamingwindow import Problem
from streamguard.operator.settings import OperatorSettings
from streamguard.operator.status import Cond, Verdict, desired_status
from streamguard.operator.topics import Topics

logger = logging.getLogger(__name__)
M = TypeVar("M", bound=BaseModel)

FINALIZER = "streamguard.dev/registry-subject"
SKIP_CLEANUP_ANNOTATION = "streamguard.dev/skip-cleanup"
"""Escape hatch: ``"true"`` lets a StreamingWindow go without touching the registry."""
RULES_CACHE_SECONDS = 60.0
RETRY_SECONDS = 10.0
REGISTRY_RETRY_SECONDS = 30.0
"""A Feast registry that could not be written is tried again this often."""
TOPIC_RECHECK_SECONDS = 15.0
"""A missing topic is looked for again this often (its creation by someone else sends no event)."""


class ChildRejectedError(Exception):
    """The apiserver refused a rendered child for a reason retrying cannot fix."""


class ChildConflictError(Exception):
    """Objects of children's names exist without this resource's controller reference: not taken over."""

    def __init__(self, children: list[str]) -> None:
        super().__init__(", ".join(children))
        self.children = children

    def verdict(self, domain: list[Cond] | None = None, fields: dict[str, Any] | None = None) -> Verdict:
        """``Stalled`` with ``ChildConflict=True`` naming them; the reconciler retries (removal sends no event)."""
        message = (
            f"{', '.join(self.children)} already exist(s) without this resource's ownerReference: not taken over; "
            f"delete or rename it, or rename this resource (retried every {int(RETRY_SECONDS)}s)"
        )
        conflict = Cond("ChildConflict", "True", "UnownedObjectExists", message)
        return Verdict("Stalled", "ChildConflict", message, [*(domain or []), conflict], fields or {})


@dataclass
class Context:
    kube: Kube
    settings: OperatorSettings
    registry: AsyncSchemaRegistry | None = None
    topics: Topics | None = None
    feast_registry: FeastRegistry | None = None
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
    if (verdict.phase == "Stalled" and previous.get("Stalled") != "True") or (
        verdict.phase == "Degraded" and previous.get("Ready") != "False"
    ):
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
    if report.conflicts:
        raise ChildConflictError(report.conflicts)
    return report


async def _view(ctx: Context, namespace: str, name: str) -> FeatureViewSpec | None | Problem:
    body = await ctx.kube.get("FeatureView", namespace, name)
    if body is None:
        return None
    spec = _spec(FeatureViewSpec, body)
    if isinstance(spec, Problem):
        return Problem("FeatureViewInvalid", f"spec.featureView: FeatureView {name!r} is invalid ({spec.message})")
    return spec


async def _checked_view(
    ctx: Context, namespace: str, name: str, check: Callable[[FeatureViewSpec | None], Problem | None]
) -> FeatureViewSpec | Problem:
    """The FeatureView a resource reads, or the Problem that stalls the resource (the view is invalid, or
    ``check``, which also names a missing view, refuses it)."""
    view = await _view(ctx, namespace, name)
    problem = view if isinstance(view, Problem) else check(view)
    return problem or view or Problem("FeatureViewNotFound", f"spec.featureView: FeatureView {name!r} does not exist")


async def _sync_or_stall(
    ctx: Context,
    body: Manifest,
    owner: Owner,
    children: tuple[str, tuple[str, ...]],
    desired: list[Manifest],
    domain: list[Cond] | None = None,
    fields: dict[str, Any] | None = None,
    source: str = "",
) -> tuple[ChildReport | None, float | None]:
    """Apply the ``(component, kinds)`` children: their report, or ``None`` once ``Stalled`` is written, with
    when to look again. Stalled because the apiserver refused a child for a reason retrying cannot fix
    (``source``: the spec field the children come from): no retry; because an object of a child's name is
    not this resource's (``ChildConflict``): retried every ``RETRY_SECONDS``, since its removal sends no event."""
    try:
        return await _sync(ctx, body, owner, *children, desired), None
    except ChildRejectedError as error:
        problem = Problem("ChildRejected", f"{source}the apiserver refused a child: {error}")
        await _write_status(ctx, body, _stalled(problem, domain, fields))
        return None, None
    except ChildConflictError as conflict:
        await _write_status(ctx, body, conflict.verdict(domain, fields))
        return None, RETRY_SECONDS


def deprecated_condition(spec: FeatureViewSpec) -> Cond:
    """``Deprecated=True`` naming the features marked ``deprecated`` (still served: a warning to readers)."""
    marked = [f"spec.features[{i}] ({f.name})" for i, f in enumerate(spec.features) if f.deprecated]
    if not marked:
        return Cond("Deprecated", "False", "NoneDeprecated")
    return Cond("Deprecated", "True", "FeaturesDeprecated",
                f"{', '.join(marked)} deprecated: still served; move readers off before removing")


async def _finalize_view(ctx: Context, body: Manifest) -> float | None:
    """Remove the view's entries from the Feast registry, then let the resource go."""
    if feastregistry.FINALIZER not in (body["metadata"].get("finalizers") or []):
        return None
    what = f"the Feast registry entries of FeatureView {body['metadata']['name']!r}"
    if ctx.feast_registry is None:
        await events.record(ctx.kube, body, "Warning", "CleanupSkipped", f"{what} left: no registry configured")
    else:
        try:
            removed = await ctx.feast_registry.unregister(body)
        except FeastRegistryError as error:
            return await _cleanup_pending(ctx, body, what, error, feastregistry.FINALIZER)
        message = f"removed {', '.join(removed)} from {ctx.feast_registry.location}" if removed else f"{what}: none"
        await events.record(ctx.kube, body, "Normal", "Unregistered", message)
    await _set_finalizer(ctx, body, present=False, finalizer=feastregistry.FINALIZER)
    return None


async def _live_spec(ctx: Context, body: Manifest, model: type[M], carried: list[Cond] | None = None) -> M | None:
    """The spec; ``None`` while the object is being deleted, or once ``Stalled`` is written naming the fields
    the spec got wrong (keeping the ``carried`` conditions)."""
    if body["metadata"].get("deletionTimestamp"):
        return None
    spec = _spec(model, body)
    if isinstance(spec, Problem):
        await _write_status(ctx, body, _stalled(spec, carried))
        return None
    return spec


async def reconcile_featureview(ctx: Context, body: Manifest) -> float | None:
    if body["metadata"].get("deletionTimestamp"):
        return await _finalize_view(ctx, body)
    carried = [_carried(body, feastregistry.CONDITION)] if ctx.feast_registry else []
    spec = await _live_spec(ctx, body, FeatureViewSpec, carried)
    if spec is None:
        return None
    fields = {"entityNames": ",".join(e.name for e in spec.entities), "featureCount": len(spec.features)}
    deprecated = deprecated_condition(spec)
    if deprecated.status == "True" and _carried(body, "Deprecated").message != deprecated.message:
        await events.record(ctx.kube, body, "Warning", deprecated.reason, deprecated.message)
    owner = Owner.of(body)
    desired = featureview.render(owner, spec, ctx.settings)
    children = (featureview.COMPONENT, featureview.CHILD_KINDS)
    report, retry = await _sync_or_stall(ctx, body, owner, children, desired, [deprecated, *carried], fields,
                                         "spec.materialization: ")
    if report is None:
        return retry
    domain = [deprecated]
    retry = None
    if ctx.feast_registry is not None:
        await _set_finalizer(ctx, body, present=True, finalizer=feastregistry.FINALIZER)
        registered = await ctx.feast_registry.register(body, spec)
        if registered.status != _carried(body, feastregistry.CONDITION).status and registered.reason != "Registered":
            await events.record(ctx.kube, body, "Warning", registered.reason, registered.message)
        domain.append(registered)
        retry = REGISTRY_RETRY_SECONDS if registered.reason == "RegistryError" else None
    await _write_status(ctx, body, _ready(report, desired, domain, fields))
    return retry


async def reconcile_driftmonitor(ctx: Context, body: Manifest) -> float | None:
    spec = await _live_spec(ctx, body, DriftMonitorSpec)
    if spec is None:
        return None
    owner = Owner.of(body)
    view = await _checked_view(ctx, owner.namespace, spec.feature_view,
                               lambda v: driftmonitor.check(spec, spec.feature_view, v))
    if isinstance(view, Problem):
        await _write_status(ctx, body, _stalled(view))
        return None
    rules = await ctx.prometheus_rules_served()
    desired = driftmonitor.render(owner, spec, view, ctx.settings, rules)
    kinds = driftmonitor.CHILD_KINDS if rules else driftmonitor.CHILD_KINDS[:-1]
    report, retry = await _sync_or_stall(ctx, body, owner, (driftmonitor.COMPONENT, kinds), desired)
    if report is None:
        return retry
    await _write_status(ctx, body, _ready(report, desired))
    return None


def _carried(body: Manifest, cond_type: str) -> Cond:
    """The live condition of ``cond_type`` unchanged (so a verdict that did not look does not erase it)."""
    for cond in (body.get("status") or {}).get("conditions") or []:
        if cond.get("type") == cond_type:
            return Cond(
                cond_type, cond.get("status", "Unknown"), cond.get("reason", "Unknown"), cond.get("message", "")
            )
    return Cond(cond_type, "Unknown", "NotChecked", "not checked yet")


_WINDOW_FIELDS = ("subject", "schemaId", "schemaVersion", "schemaFingerprint", "topicPartitions", "streamDownSince")


def _window_fields(body: Manifest) -> dict[str, Any]:
    """The status fields the operator owns on a StreamingWindow, as they stand (carried unless re-learnt), the
    schema ones from the operator's record when there is one (status is only what people read)."""
    status = body.get("status") or {}
    fields = {key: status.get(key) for key in _WINDOW_FIELDS}
    recorded = record.read(body)
    if recorded is not None:
        fields.update(recorded.status_fields())
    return fields


def _deletion_policy(ctx: Context, spec: StreamingWindowSpec | None) -> str:
    if spec is not None and spec.contract.deletion_policy:
        return spec.contract.deletion_policy
    return ctx.settings.subject_deletion_policy


async def _set_finalizer(ctx: Context, body: Manifest, present: bool, finalizer: str = FINALIZER) -> None:
    meta = body["metadata"]
    finalizers: list[str] = list(meta.get("finalizers") or [])
    if present == (finalizer in finalizers):
        return
    if present:
        operations: list[Manifest] = (
            [{"op": "add", "path": "/metadata/finalizers/-", "value": finalizer}]
            if finalizers
            else [{"op": "add", "path": "/metadata/finalizers", "value": [finalizer]}]
        )
    else:
        index = finalizers.index(finalizer)
        operations = [
            {"op": "test", "path": f"/metadata/finalizers/{index}", "value": finalizer},
            {"op": "remove", "path": f"/metadata/finalizers/{index}"},
        ]
    ctx.remember(await ctx.kube.json_patch(body["kind"], meta["namespace"], meta["name"], operations))


async def _finalize_window(ctx: Context, body: Manifest, spec: StreamingWindowSpec | None) -> float | None:
    """Delete :func:`subjects.registered_subject` (the operator's record, else the spec's; never status)."""
    meta = body["metadata"]
    if FINALIZER not in (meta.get("finalizers") or []):
        return None
    subject = subjects.registered_subject(body)
    skip = (meta.get("annotations") or {}).get(SKIP_CLEANUP_ANNOTATION) == "true"
    if skip or subject is None or _deletion_policy(ctx, spec) != "Delete":
        reason = "CleanupSkipped" if skip else "SubjectRetained"
        await events.record(ctx.kube, body, "Normal", reason, f"registry subject {subject!r} left in place")
        await _set_finalizer(ctx, body, present=False)
        return None
    try:
        # Every namespace: a subject another namespace uses (or owns) is never deleted from here.
        others = subjects.other_users(subject, meta["uid"], await ctx.kube.select("StreamingWindow", None))
        if others:
            reason = "SubjectShared" if others[0].namespace == meta["namespace"] else "SubjectOwnedElsewhere"
            await events.record(
                ctx.kube, body, "Normal", reason, f"subject {subject!r} kept: still used by {others[0]}"
            )
        elif ctx.registry is None:
            raise RegistryUnavailableError("no registry URL configured")
        else:
            permanent = ctx.settings.subject_hard_delete
            deleted = await ctx.registry.delete_subject(subject, permanent=permanent)
            how = "permanently deleted" if permanent else "deleted (soft: its versions stay recoverable)"
            await events.record(
                ctx.kube,
                body,
                "Normal",
                "SubjectDeleted" if deleted else "SubjectGone",
                f"registry subject {subject!r} {how if deleted else 'was already gone'}",
            )
    except KubeError as error:
        if error.transient:
            raise
        return await _cleanup_pending(ctx, body, f"registry subject {subject!r}", error)
    except RegistryError as error:
        return await _cleanup_pending(ctx, body, f"registry subject {subject!r}", error)
    await _set_finalizer(ctx, body, present=False)
    return None


async def _cleanup_pending(
    ctx: Context, body: Manifest, what: str, error: Exception, finalizer: str = FINALIZER
) -> float | None:
    """Retry the cleanup of ``what`` until ``cleanup_timeout_seconds``; then let the object go, ``what`` kept."""
    meta = body["metadata"]
    started = datetime.fromisoformat(meta["deletionTimestamp"].replace("Z", "+00:00"))
    waited = time.time() - started.timestamp()
    if waited < ctx.settings.cleanup_timeout_seconds:
        logger.warning("cleanup of %s for %s/%s pending: %s", what, meta["namespace"], meta["name"], error)
        return RETRY_SECONDS
    await events.record(
        ctx.kube,
        body,
        "Warning",
        "CleanupAbandoned",
        f"{what} not deleted after {int(waited)}s: {error}",
    )
    await _set_finalizer(ctx, body, present=False, finalizer=finalizer)
    return None


@dataclass(frozen=True)
class SchemaOutcome:
    cond: Cond
    blocking: Verdict | None = None
    """Set when nothing may be applied (the contract was refused, or never registered and unreachable)."""
    retry: float | None = None


async def _subject_refusal(ctx: Context, subject: str, namespace: str, fields: dict[str, Any]) -> SchemaOutcome | None:
    """A blocking outcome when ``subject`` belongs to another namespace (or that cannot be checked)."""
    try:
        owner = subjects.owned_elsewhere(subject, namespace, await ctx.kube.select("StreamingWindow", None))
    except KubeError as error:
        if error.transient:
            raise
        message = (
            f"cannot check which namespace owns subject {subject!r} (listing StreamingWindows in every "
            f"namespace): {error}"
        )
        unknown = Cond("SchemaRegistered", "Unknown", "SubjectOwnershipUnknown", message)
        verdict = Verdict("Reconciling", "SubjectOwnershipUnknown", message, [unknown], fields)
        return SchemaOutcome(unknown, verdict, RETRY_SECONDS)
    if owner is None:
        return None
    message = (
        f"subject {subject!r} belongs to namespace {owner.namespace!r} ({owner}): nothing registered, changed "
        f"or deleted in it; name another subject or leave spec.contract.subject unset "
        f"(default '<namespace>.<topic>-value')"
    )
    refused = Cond("SchemaRegistered", "False", "SubjectOwnedElsewhere", message)
    return SchemaOutcome(
        refused, _stalled(Problem("SubjectOwnedElsewhere", f"spec.contract.subject: {message}"), [refused], fields)
    )


async def _ensure_schema(
    ctx: Context, body: Manifest, spec: StreamingWindowSpec, fields: dict[str, Any]
) -> SchemaOutcome:
    """Register the contract, or verify that the registry still holds what the operator's record says it
    registered (re-registering it, with BACKWARD, when it is gone; reporting a changed version or id), then
    write the record. Status is never the record: a window without one registers (idempotent in the registry)
    as if new. Updates ``fields``."""
    namespace = body["metadata"]["namespace"]
    subject = spec.subject_in(namespace)
    elsewhere = await _subject_refusal(ctx, subject, namespace, fields)
    if elsewhere is not None:
        return elsewhere
    schema = normalized(spec.contract.schema_)
    fingerprint = streamingwindow.fingerprint(schema)
    known = record.read(body)
    recorded = known is not None and known.subject == subject and known.fingerprint == fingerprint
    was = f"version {known.schema_version} (id {known.schema_id})" if known is not None else "(no record)"
    try:
        if ctx.registry is None:
            raise RegistryUnavailableError("no registry URL configured")
        if not recorded:
            registration = await ctx.registry.register(subject, schema)
        else:
            found = await ctx.registry.lookup(subject, schema)
            if found is None:
                registration = await ctx.registry.register(subject, schema)
                await events.record(
                    ctx.kube,
                    body,
                    "Warning",
                    "SchemaReregistered",
                    f"the registry no longer held subject {subject!r} {was}: registered it again as version "
                    f"{registration.version} (id {registration.id}) with BACKWARD compatibility",
                )
            else:
                registration = found
                if known is not None and (found.id, found.version) != (known.schema_id, known.schema_version):
                    await events.record(
                        ctx.kube,
                        body,
                        "Warning",
                        "SchemaMismatch",
                        f"the operator recorded subject {subject!r} {was}, but the registry holds this schema as "
                        f"version {found.version} (id {found.id}); record and status now say what it holds",
                    )
                if await ctx.registry.compatibility(subject) != "BACKWARD":
                    await ctx.registry.set_compatibility("BACKWARD", subject)
                    await events.record(
                        ctx.kube,
                        body,
                        "Warning",
                        "CompatibilityRestored",
                        f"subject {subject!r} had lost its BACKWARD compatibility setting: set it again",
                    )
    except IncompatibleSchemaError as error:
        refused = Cond("SchemaRegistered", "False", "IncompatibleSchema", str(error))
        message = (
            f"spec.contract.schema: the registry refused the schema for subject {subject!r} "
            f"(BACKWARD): {error}; the running job keeps its previous contract"
        )
        return SchemaOutcome(refused, _stalled(Problem("IncompatibleSchema", message), [refused], fields))
    except RegistryUnavailableError as error:
        if recorded:
            unverified = Cond(
                "SchemaRegistered",
                "Unknown",
                "RegistryUnavailable",
                f"cannot verify subject {subject!r} {was}: {error}",
            )
            return SchemaOutcome(unverified, retry=RETRY_SECONDS)
        pending = Cond("SchemaRegistered", "Unknown", "RegistryUnavailable", str(error))
        verdict = Verdict(
            "Reconciling", "RegistryUnavailable", f"waiting for the schema registry: {error}", [pending], fields
        )
        return SchemaOutcome(pending, verdict, RETRY_SECONDS)
    except RegistryRejectedError as error:
        refused = Cond("SchemaRegistered", "False", "RegistryRefused", str(error))
        problem = Problem("RegistryRefused", f"spec.contract: {error}")
        return SchemaOutcome(refused, _stalled(problem, [refused], fields))
    registered = record.SchemaRecord(subject, registration.id, registration.version, fingerprint)
    if registered != known:
        ctx.remember(await ctx.kube.json_patch(body["kind"], namespace, body["metadata"]["name"],
                                               record.patch(body, registered)))
    fields.update(registered.status_fields())
    message = f"subject {subject!r} version {registration.version} (id {registration.id})"
    return SchemaOutcome(Cond("SchemaRegistered", "True", "Registered", message))


@dataclass(frozen=True)
class TopicOutcome:
    cond: Cond
    problem: Problem | None = None
    """A spec the operator refuses to act on (lowering partitions or retention, a topic Kafka rejects)."""
    retry: float | None = None


async def _ensure_topic(
    ctx: Context, body: Manifest, spec: StreamingWindowSpec, fields: dict[str, Any]
) -> TopicOutcome:
    """Check the source topic; create or grow it when ``spec.source.partitions`` asks. Updates ``fields``."""
    topic = spec.source.topic
    if ctx.topics is None:
        return TopicOutcome(
            Cond(topics.CONDITION, "Unknown", "KafkaNotConfigured", "the operator has no Kafka bootstrap configured")
        )
    try:
        live = await ctx.topics.describe(topic)
        change = topics.plan(spec.source, live)
        if change.refused is not None or (live is None and not change.create):
            refused = change.refused or topics.missing(topic)
            fields["topicPartitions"] = live.partitions if live else None
            if refused.reason == "TopicMissing":
                return TopicOutcome(refused, retry=TOPIC_RECHECK_SECONDS)
            return TopicOutcome(refused, Problem(refused.reason, refused.message))
        if change.changes:
            await ctx.topics.apply(topic, change)
            # A new topic is read back; an altered one is what was asked (the brokers' config reads lag).
            live = await ctx.topics.describe(topic) if live is None else topics.after(live, change)
            what = "created" if change.create else "updated"
            if live is not None:
                await events.record(
                    ctx.kube,
                    body,
                    "Normal",
                    f"Topic{what.title()}",
                    f"Kafka topic {topic!r} {what}: {live.partitions} partitions",
                )
    except topics.KafkaAuthenticationError as error:
        refused = Cond(topics.CONDITION, "False", "KafkaAuthenticationFailed", str(error))
        return TopicOutcome(refused, retry=RETRY_SECONDS)
    except topics.KafkaUnavailableError as error:
        return TopicOutcome(Cond(topics.CONDITION, "Unknown", "KafkaUnavailable", str(error)), retry=RETRY_SECONDS)
    except topics.TopicRejectedError as error:
        rejected = Cond(topics.CONDITION, "False", "TopicRejected", str(error))
        return TopicOutcome(rejected, Problem("TopicRejected", f"spec.source: Kafka refused the topic: {error}"))
    if live is None:  # created, but the brokers' metadata does not show it yet
        pending = Cond(topics.CONDITION, "Unknown", "TopicCreating", f"Kafka topic {topic!r} is being created")
        return TopicOutcome(pending, retry=1.0)
    fields["topicPartitions"] = live.partitions
    return TopicOutcome(topics.ready(topic, live, change))


def _window_verdict(
    body: Manifest,
    spec: StreamingWindowSpec,
    grace: float,
    ready: Verdict,
    topic: TopicOutcome,
) -> tuple[Verdict, float | None]:
    """Ready, unless the topic is missing or refused, or the job has said for too long that it is not running."""
    if topic.problem is not None:
        return _stalled(topic.problem, ready.domain, ready.fields), None
    if topic.cond.reason == "TopicMissing":
        return Verdict("Degraded", "TopicMissing", topic.cond.message, ready.domain, ready.fields), topic.retry
    if spec.suspend:
        ready.fields["streamDownSince"] = None
        return ready, None
    status = body.get("status") or {}
    health = streamhealth.judge(status.get("conditions") or [], datetime.now(UTC), grace, status.get("streamDownSince"))
    ready.fields["streamDownSince"] = health.since
    if health.down is not None:
        return Verdict("Degraded", health.down.reason, health.down.message, ready.domain, ready.fields), None
    return ready, health.recheck_seconds


def _soonest(*delays: float | None) -> float | None:
    present = [delay for delay in delays if delay is not None]
    return min(present) if present else None


async def reconcile_streamingwindow(ctx: Context, body: Manifest) -> float | None:
    owner = Owner.of(body)
    spec = _spec(StreamingWindowSpec, body)
    if body["metadata"].get("deletionTimestamp"):
        return await _finalize_window(ctx, body, None if isinstance(spec, Problem) else spec)
    fields = _window_fields(body)
    carried = [_carried(body, "SchemaRegistered"), _carried(body, topics.CONDITION)]
    if isinstance(spec, Problem):
        await _write_status(ctx, body, _stalled(spec, carried, fields))
        return None
    fields["windowNames"] = ",".join(w.suffix for w in spec.windows)
    view = await _checked_view(
        ctx, owner.namespace, spec.feature_view,
        lambda v: streamingwindow.check(spec, spec.feature_view, v, ctx.settings.max_windows_per_event,
                                     ctx.settings.checkpoint_storage is not None))
    if isinstance(view, Problem):
        await _write_status(ctx, body, _stalled(view, carried, fields))
        return None
    await _set_finalizer(ctx, body, present=_deletion_policy(ctx, spec) == "Delete")
    schema = await _ensure_schema(ctx, body, spec, fields)
    if schema.blocking is not None:
        schema.blocking.domain.append(carried[1])
        await _write_status(ctx, body, schema.blocking)
        return schema.retry
    topic = await _ensure_topic(ctx, body, spec, fields)
    domain = [schema.cond, topic.cond]
    desired = streamingwindow.render(owner, spec, view, ctx.settings)
    children = (streamingwindow.COMPONENT, streamingwindow.CHILD_KINDS)
    report, retry = await _sync_or_stall(ctx, body, owner, children, desired, domain, fields)
    if report is None:
        return None if retry is None else _soonest(retry, schema.retry, topic.retry)
    grace = streamhealth.grace_seconds(spec, ctx.settings)
    verdict, recheck = _window_verdict(body, spec, grace, _ready(report, desired, domain, fields), topic)
    await _write_status(ctx, body, verdict)
    return _soonest(schema.retry, topic.retry, recheck)


RECONCILERS = {
    "FeatureView": reconcile_featureview,
    "StreamingWindow": reconcile_streamingwindow,
    "DriftMonitor": reconcile_driftmonitor,
}
