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


async def sync_children(
    kube: Kube, owner: Owner, component: str, kinds: tuple[str, ...], desired: list[Manifest]
) -> ChildReport:
    """Apply what changed among ``desired`` and delete this owner's children of ``kinds`` not in it."""
    report = ChildReport()
    selector = label_selector(owner, component)
    live: dict[tuple[str, str], Manifest] = {}
    for kind in kinds:
        for item in await kube.select(kind, owner.namespace, selector):
            if owned_by(item, owner):
                live[(kind, item["metadata"]["name"])] = item
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
