"""Resolve the features a request asks for (``view:feature`` references or a feature set) against the
catalog, once per distinct list: the result says which Redis reads each entity row needs."""

from collections.abc import Sequence
from dataclasses import dataclass, field

from streamguard.serving.catalog import Catalog, ServedView, WindowGroup
from streamguard.serving.errors import UnknownFeatureError
from streamguard.serving.pane_read import PaneReads


@dataclass(frozen=True)
class Column:
    """One output value: view ``view`` (index into :attr:`Selection.views`), batch field ``index`` when
    ``group`` is ``None``, else aggregation ``index`` of window group ``group``."""

    view: int
    group: str | None
    index: int


@dataclass(frozen=True)
class Selection:
    refs: tuple[str, ...]
    views: tuple[ServedView, ...]
    needs_batch: tuple[bool, ...]
    groups: tuple[tuple[str, ...], ...]
    """Per view, the window groups (suffixes) to read."""
    columns: tuple[Column, ...]
    pane_reads: PaneReads = field(compare=False, repr=False)
    """Per view, the reads of its selected windows' panes (one per StreamingWindow)."""


def resolve(catalog: Catalog, refs: Sequence[str]) -> Selection:
    """Raise :class:`UnknownFeatureError` naming the first unknown view or feature."""
    views: list[ServedView] = []
    index_of: dict[str, int] = {}
    needs_batch: list[bool] = []
    groups: list[list[str]] = []
    columns: list[Column] = []
    for ref in refs:
        view_name, sep, feature = ref.partition(":")
        if not sep or not view_name or not feature:
            raise UnknownFeatureError(f"feature reference {ref!r} is not of the form 'view:feature'")
        view = catalog.views.get(view_name)
        if view is None:
            raise UnknownFeatureError(f"unknown FeatureView {view_name!r} (in feature reference {ref!r})")
        slot = view.slots.get(feature)
        if slot is None:
            raise UnknownFeatureError(f"FeatureView {view_name!r} has no feature {feature!r}")
        position = index_of.get(view_name)
        if position is None:
            position = index_of[view_name] = len(views)
            views.append(view)
            needs_batch.append(False)
            groups.append([])
        if slot.group is None:
            needs_batch[position] = True
        elif slot.group not in groups[position]:
            groups[position].append(slot.group)
        columns.append(Column(position, slot.group, slot.index))
    by_view: list[dict[bytes, list[WindowGroup]]] = []
    for view, suffixes in zip(views, groups, strict=True):
        by_prefix: dict[bytes, list[WindowGroup]] = {}
        for suffix in suffixes:
            by_prefix.setdefault(view.windows[suffix].pane_prefix, []).append(view.windows[suffix])
        by_view.append(by_prefix)
    return Selection(tuple(refs), tuple(views), tuple(needs_batch), tuple(tuple(g) for g in groups), tuple(columns),
                     PaneReads(by_view))


def feature_set_refs(catalog: Catalog, name: str) -> tuple[str, ...]:
    refs = catalog.feature_sets.get(name)
    if refs is None:
        known = ", ".join(sorted(catalog.feature_sets)) or "none defined"
        raise UnknownFeatureError(f"unknown feature set {name!r} (known: {known})")
    return refs
