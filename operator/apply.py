"""Bring an owner's children to their desired state: server-side apply, prune, and skip no-op writes."""

import logging
from dataclasses import dataclass, field
from typing import Any

from streamguard.operator.kube import Kube
from streamguard.operator.render.common import APPLIED_HASH_ANNOTATION, Manifest, Owner, digest, label_selector

logger = logging.getLogger(__name__)


@dataclass
class ChildReport:
    applied: list[str] = field(default_factory=list)
    pruned: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    conflicts: list[str] = field(default_factory=list)
    """Children not applied: an object of that name exists without this owner's controller reference."""

    @property
    def changed(self) -> bool:
        return bool(self.applied or self.pruned)


def contains(desired: Any, live: Any) -> bool:
    """Whether every field of ``desired`` has the same value in ``live`` (server defaults are ignored)."""
    if isinstance(desired, dict):
        return isinstance(live, dict) and all(
            key in live and contains(value, live[key]) for key, value in desired.items()
        )
    if isinstance(desired, list):
        return (
            isinstance(live, list)
            and len(desired) == len(live)
            and all(contains(d, lv) for d, lv in zip(desired, live, strict=True))
        )
    return bool(desired == live)


def with_applied_hash(manifest: Manifest) -> Manifest:
    """The manifest annotated with a hash of itself, so a later removal of a field is noticed too."""
    annotated = {**manifest, "metadata": {**manifest["metadata"]}}
    annotated["metadata"]["annotations"] = {
        **manifest["metadata"].get("annotations", {}),
        APPLIED_HASH_ANNOTATION: digest(manifest),
    }
    return annotated


def up_to_date(desired: Manifest, live: Manifest | None) -> bool:
    """``desired`` carries its applied hash; the live object matches when that hash and every field agree."""
    if live is None:
        return False
    live_hash = live["metadata"].get("annotations", {}).get(APPLIED_HASH_ANNOTATION)
    return bool(live_hash == desired["metadata"]["annotations"][APPLIED_HASH_ANNOTATION] and contains(desired, live))


def owned_by(live: Manifest, owner: Owner) -> bool:
    return any(
        ref.get("uid") == owner.uid and ref.get("controller") for ref in live["metadata"].get("ownerReferences", [])
    )


async def conflicts(
    kube: Kube, owner: Owner, desired: list[Manifest], live: dict[tuple[str, str], Manifest]
) -> list[str]:
    """``Kind/name`` of each child not among ``live`` whose name is taken by an object ``owner`` does not control."""
    found = []
    for manifest in desired:
        kind, name = manifest["kind"], manifest["metadata"]["name"]
        if (kind, name) not in live:
            existing = await kube.get(kind, owner.namespace, name)
            if existing is not None and not owned_by(existing, owner):
                found.append(f"{kind}/{name}")
    return found


async def sync_children(
    kube: Kube, owner: Owner, component: str, kinds: tuple[str, ...], desired: list[Manifest]
) -> ChildReport:
    """Apply what changed among ``desired`` and delete this owner's children of ``kinds`` not in it.

    When an object of a child's name exists that this owner does not control (made by someone else, or
    another resource's child), nothing is applied or pruned: the children refer to each other by name (a
    Deployment mounts its ConfigMap), so none may run beside a stranger's object. ``conflicts`` names them.
    """
    report = ChildReport()
    selector = label_selector(owner, component)
    live: dict[tuple[str, str], Manifest] = {}
    for kind in kinds:
        for item in await kube.select(kind, owner.namespace, selector):
            if owned_by(item, owner):
                live[(kind, item["metadata"]["name"])] = item
    report.conflicts = await conflicts(kube, owner, desired, live)
    if report.conflicts:
        logger.warning("%s/%s: not applying over unowned %s", owner.namespace, owner.name, report.conflicts)
        return report
    wanted = set()
    for manifest in desired:
        key = (manifest["kind"], manifest["metadata"]["name"])
        wanted.add(key)
        annotated = with_applied_hash(manifest)
        label = f"{key[0]}/{key[1]}"
        if up_to_date(annotated, live.get(key)):
            report.unchanged.append(label)
            continue
        logger.debug("applying %s/%s (%s)", owner.namespace, label, "changed" if key in live else "missing")
        await kube.apply(annotated)
        report.applied.append(label)
    for (kind, name), item in sorted(live.items()):
        if (kind, name) not in wanted:
            await kube.delete(kind, owner.namespace, name, uid=item["metadata"]["uid"])
            report.pruned.append(f"{kind}/{name}")
    return report
