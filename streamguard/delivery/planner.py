"""``streamguard plan`` / ``validate`` put together: load, compare, validate, check contracts.

:func:`make_plan` is the imperative shell (cluster, registry, Git); :func:`contract_checks` and the
modules it calls are pure and unit-tested.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from streamguard.api.streamingwindow import StreamingWindowSpec
from streamguard.contracts.registry import RegistryError, RegistryUnavailableError, SchemaRegistry
from streamguard.delivery import celrules, cluster, feastplan
from streamguard.delivery.checks import cross_check
from streamguard.delivery.compat import CompatResult, ContractError, backward_offline, backward_registry
from streamguard.delivery.diff import Action, Change, compare
from streamguard.delivery.gitbase import GitUnavailableError, folder_at
from streamguard.delivery.resources import Key, Problem, Resource, load_folder


@dataclass
class PlanOptions:
    path: Path
    namespace: str = "default"
    empty: bool = False
    """Compare with an empty cluster instead of the live one (no cluster needed)."""
    kubeconfig: str | None = None
    registry_url: str | None = None
    base: str | None = "HEAD"
    """Git revision holding the previous contracts; ``None`` to skip."""
    feast: bool = True
    feast_registry: Path | None = None
    """A Feast registry file to plan against (copied first); ``None`` for an empty one."""


@dataclass
class Plan:
    path: str
    target: str
    changes: list[Change] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    compat: list[tuple[Key, CompatResult]] = field(default_factory=list)
    feast: feastplan.FeastPlan | None = None
    offline: bool = False
    """``streamguard validate``: no cluster, no registry."""

    @property
    def breaking(self) -> bool:
        return bool(self.problems) or (self.feast is not None and not self.feast.ok)

    def count(self, action: Action) -> int:
        return sum(1 for c in self.changes if c.action is action)


def _contract(resource: Resource | None) -> tuple[str, str] | None:
    """``(subject, schema)`` of a StreamingWindow resource."""
    if resource is None or resource.key.kind != "StreamingWindow":
        return None
    try:
        spec = StreamingWindowSpec.model_validate(resource.spec)
    except ValueError:
        return None
    return spec.subject_in(resource.key.namespace), spec.contract.schema_


RegistryCheck = Callable[[str, str], CompatResult | None]
"""``(subject, schema) -> verdict`` against the registry's latest version (``None``: new subject); raises
:class:`~streamguard.contracts.registry.RegistryError` when the registry gives no verdict."""


def contract_checks(
    changes: list[Change],
    previous: dict[Key, tuple[Resource, str]],
    registry: RegistryCheck | None,
) -> tuple[list[tuple[Key, CompatResult]], list[str]]:
    """BACKWARD checks for every new or changed contract.

    ``previous`` maps a key to the resource holding its previous contract and a label saying where it
    came from (the live cluster, a Git revision). The registry's verdict and the offline verdict against
    the previous contract are both recorded; either failing breaks the plan. A registry that gives no
    verdict is noted and asked nothing more: the rest is checked offline only.
    """
    results: list[tuple[Key, CompatResult]] = []
    notes: list[str] = []
    for change in changes:
        new = _contract(change.desired)
        if new is None:
            continue
        subject, schema = new
        touched = change.action is Action.CREATE or any(f.path.startswith(".spec.contract") for f in change.fields)
        prior = previous.get(change.key)
        old = _contract(prior[0]) if prior else None
        if not touched and (old is None or old == new):
            continue
        if registry is not None:
            try:
                verdict = registry(subject, schema)
            except RegistryError as error:
                said = str(error) if isinstance(error, RegistryUnavailableError) else f"schema registry: {error}"
                notes.append(f"{said}; contracts checked offline only")
                registry = None
            else:
                if verdict is None:
                    notes.append(f"{change.key}: subject {subject!r} is new to the registry")
                else:
                    results.append((change.key, verdict))
        if old is not None and prior is not None and old != new:
            if old[0] != subject:
                notes.append(f"{change.key}: contract moves from subject {old[0]!r} to {subject!r} "
                             "(a new subject starts a new compatibility history)")
                continue
            try:
                results.append((change.key, backward_offline(subject, schema, old[1], prior[1])))
            except ContractError as error:
                notes.append(f"{change.key}: not compared with {prior[1]}: {error}")
    return results, notes


_RISKY_FIELDS = {
    ".spec.entities": "changes the online key layout: values written under the old keys are not found "
    "until the view is materialized again",
    ".spec.project": "moves the view to another Feast project: online values are not found until the view "
    "is materialized again",
    ".spec.source.topic": "reads another topic: the streaming job starts over from spec.source.startingOffsets",
}
_MORE_PARTITIONS = (
    "may raise the topic's partitions: Kafka hashes each key to a partition, so a key's new records can land on "
    "another partition than its old ones (order per key holds within a partition)"
)
_DELETE_EFFECT = {
    "FeatureView": "removes its Feast registry entries and materialization CronJob; serving stops answering "
    "for its features",
    "StreamingWindow": "stops its streaming job and deletes its checkpoint",
    "DriftMonitor": "stops its drift exporter and alerts",
}


def risks(changes: list[Change]) -> list[str]:
    """Changes that apply cleanly but lose data or availability, worth a reviewer's look."""
    warnings = []
    for change in changes:
        if change.action is Action.DELETE:
            warnings.append(f"{change.key}: deleting it {_DELETE_EFFECT.get(change.key.kind, 'removes it')}")
        for prefix, effect in _RISKY_FIELDS.items():
            if any(f.path.startswith(prefix) for f in change.fields) and change.action is Action.CHANGE:
                warnings.append(f"{change.key}: {prefix} {effect}")
        for f in change.fields if change.action is Action.CHANGE else []:
            if f.path == ".spec.source.partitions" and not f.removed and (f.added or f.new > f.old):
                warnings.append(f"{change.key}: {f.path} {_MORE_PARTITIONS}")
    return warnings


def partition_problems(changes: list[Change]) -> list[Problem]:
    """A StreamingWindow asking for fewer partitions than its live spec: Kafka cannot lower them, so the
    operator refuses (``Stalled``, ``PartitionDecreaseRefused``)."""
    problems = []
    for change in changes:
        if change.key.kind != "StreamingWindow" or change.action is not Action.CHANGE:
            continue
        for f in change.fields:
            if f.path == ".spec.source.partitions" and not f.added and not f.removed and f.new < f.old:
                problems.append(Problem(str(change.key), f"lowers the topic's partitions from {f.old} to {f.new}; "
                                        "Kafka cannot, and the operator refuses (Stalled, PartitionDecreaseRefused)",
                                        f.path, "topic"))
    return problems


def make_plan(options: PlanOptions) -> Plan:
    folder = load_folder(options.path, options.namespace)
    plan = Plan(str(options.path), "an empty cluster", problems=list(folder.problems))
    if folder.skipped:
        plan.notes.append(f"ignored {len(folder.skipped)} document(s) of other kinds: {', '.join(folder.skipped)}")
    live: dict[Key, Resource] = {}
    api = None
    if not options.empty:
        api = cluster.connect(options.kubeconfig)
        plan.target = f"the cluster at {api.configuration.host}"
        namespaces = {k.namespace for k in folder.resources} | {options.namespace}
        live, notes = cluster.live_resources(api, namespaces)
        plan.notes.extend(notes)
    plan.changes = compare(folder.resources, live)
    for resource in folder.resources.values():
        if api is not None:
            problems, notes = cluster.dry_run_apply(api, resource)
        else:
            checked = celrules.check(resource)
            problems, notes = checked.problems, checked.notes
        plan.problems.extend(problems)
        plan.notes.extend(notes)
    plan.problems.extend(cross_check(folder.resources.values()).problems)
    plan.problems.extend(partition_problems(plan.changes))
    plan.warnings.extend(risks(plan.changes))

    previous: dict[Key, tuple[Resource, str]] = {k: (r, "the live cluster") for k, r in live.items()}
    if options.base and any(c.key.kind == "StreamingWindow" and c.desired for c in plan.changes):
        try:
            base = folder_at(options.base, options.path, options.namespace)
        except GitUnavailableError as error:
            plan.notes.append(f"no previous contracts from git revision {options.base!r}: {error}")
        else:
            for key, resource in base.resources.items():
                previous.setdefault(key, (resource, f"git {options.base}"))
    if options.registry_url:
        with SchemaRegistry(options.registry_url) as client:
            plan.compat, notes = contract_checks(
                plan.changes, previous, lambda subject, schema: backward_registry(client, subject, schema))
    else:
        plan.compat, notes = contract_checks(plan.changes, previous, None)
    plan.notes.extend(notes)
    for key, result in plan.compat:
        if not result.compatible:
            plan.problems.extend(Problem(str(key), f"incompatible with {result.against}: {issue.describe()}",
                                         ".spec.contract.schema", "compatibility") for issue in result.issues)
    if options.feast and not folder.problems:
        plan.feast = feastplan.run(list(folder.resources.values()), options.feast_registry)
    return plan
