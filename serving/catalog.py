"""What the server can serve, derived from the FeatureView and StreamingWindow resources (pure).

Everything the request path needs is precomputed here once per catalog change: per view the Redis
fields to ``HMGET`` (Feast layout) and per streaming window where its panes are (the pane hash of its
StreamingWindow, :mod:`streamguard.onlinestore.pane_layout`) and how to combine and decode them, the TTL,
and named feature sets. One window suffix of a view comes from one StreamingWindow.

A feature of a view is a *window feature* when a StreamingWindow targeting the view produces it
(``<aggregation>_<window suffix>``); every other feature is read from Feast's layout. Window features
the FeatureView does not declare are served too, typed INT64 for ``count`` and FLOAT64 otherwise.
A feature set is named by the annotation :data:`FEATURE_SETS_ANNOTATION` (comma-separated names) on
FeatureViews: the set holds every feature of every view carrying its name (views in name order,
features in declaration order).
"""

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field

from streamguard.api.durations import duration_seconds
from streamguard.api.featureview import FeatureViewSpec
from streamguard.api.streamingwindow import StreamingWindowSpec
from streamguard.onlinestore.feast_layout import feature_field, timestamp_field
from streamguard.onlinestore.generation import coverage_key, generation_key
from streamguard.onlinestore.pane_layout import PaneAggregation, PaneShape, pane_prefix, shape_of
from streamguard.onlinestore.tenancy import DEFAULT_NAMESPACE, store_project
from streamguard.onlinestore.valueproto import Scalar
from streamguard.onlinestore.window_layout import heartbeat_key
from streamguard.serving.redisio import pack_tail
from streamguard.windows import WindowShape, empty_value

FEATURE_SETS_ANNOTATION = "streamguard.dev/feature-sets"


@dataclass(frozen=True)
class ViewResource:
    """A FeatureView as the server sees it: its name, spec and annotations."""

    name: str
    spec: FeatureViewSpec
    annotations: Mapping[str, str] = field(default_factory=dict)
    status_newest: float | None = None
    """Newest event time (epoch seconds) per the status: ``lastMaterializedAt - freshnessSeconds``."""
    namespace: str = DEFAULT_NAMESPACE
    """Its ``metadata.namespace``: part of every key of the view (:mod:`streamguard.onlinestore.tenancy`)."""


@dataclass(frozen=True)
class WindowResource:
    name: str
    spec: StreamingWindowSpec


@dataclass(frozen=True)
class WindowGroup:
    """The features of one window (suffix) of one view, combined from the panes of its StreamingWindow."""

    suffix: str
    shape: WindowShape
    pane_prefix: bytes
    """``sgp:<store project>:<view>:<state id>:`` of its StreamingWindow's pane hashes (the entity follows)."""
    slide_number: int
    """The number its panes' fields carry (``<slide number>:<pane start ms>``)."""
    offsets: tuple[tuple[str, int], ...]
    """Per aggregation of the group: its function and where its partials are in a pane's value."""
    width: int
    """How many partials a pane's value holds."""
    empty: tuple[Scalar, ...]
    """Each aggregation's value over an empty window, already cast to the feature's type."""
    casts: tuple[Callable[[float | int | None], Scalar], ...]


@dataclass(frozen=True)
class FeatureSlot:
    """Where one feature's value is found: a batch field index, or a window group and field index."""

    dtype: str
    group: str | None
    index: int


@dataclass(frozen=True)
class ServedView:
    name: str
    project: str
    store_project: str
    """The name its keys carry: :func:`~streamguard.onlinestore.tenancy.store_project` of its namespace and
    ``project``."""
    join_keys: tuple[tuple[str, str], ...]
    """(join key, value type) in declaration order."""
    ttl_seconds: float
    """Greater than 0 for every spec the API accepts (0 would mean values never expire)."""
    sla_seconds: float
    has_batch: bool
    """Freshness comes from the materializer (the view has a batch source)."""
    status_newest: float | None
    batch_features: tuple[str, ...]
    batch_fields: tuple[bytes, ...]
    """``_ts:<view>`` first, then one field per batch feature."""
    packed_batch_fields: bytes
    project_bytes: bytes
    """Suffix of the view's Feast keys (entity key + store project: namespace and ``spec.project``)."""
    heartbeat_key: bytes
    generation_key: bytes
    """The store project's generation marker (:mod:`streamguard.onlinestore.generation`)."""
    coverage_key: bytes
    """The view's coverage hash."""
    windows: Mapping[str, WindowGroup]
    slots: Mapping[str, FeatureSlot]
    feature_names: tuple[str, ...]

    @property
    def has_stream(self) -> bool:
        return bool(self.windows)


@dataclass(frozen=True)
class Catalog:
    views: Mapping[str, ServedView]
    feature_sets: Mapping[str, tuple[str, ...]]
    problems: tuple[str, ...] = ()
    """Resources that could not be served, each naming the resource and why."""


_INT_TYPES = frozenset({"INT64", "INT32"})
_FLOAT_TYPES = frozenset({"FLOAT64", "FLOAT32"})


def _window_cast(dtype: str) -> Callable[[float | int | None], Scalar]:
    """One combined aggregate as the feature's type (``None`` for a null aggregate)."""
    if dtype in _INT_TYPES:
        return lambda value: None if value is None else int(value)
    if dtype in _FLOAT_TYPES:
        return lambda value: None if value is None else float(value)
    if dtype == "BOOL":
        return lambda value: None if value is None else value != 0
    return lambda value: None if value is None else str(value)


def _cast_scalar(dtype: str, value: float | int | None) -> Scalar:
    if value is None:
        return None
    if dtype in _INT_TYPES:
        return int(value)
    if dtype in _FLOAT_TYPES:
        return float(value)
    return value


def _window_features(
    view: ViewResource, windows: list[WindowResource], problems: list[str]
) -> dict[str, tuple[str, WindowShape, str, str]]:
    """feature name -> (window suffix, shape, aggregation, function) of every window feature."""
    found: dict[str, tuple[str, WindowShape, str, str]] = {}
    owner: dict[str, str] = {}
    suffix_owner: dict[str, str] = {}
    for window in windows:
        for w in window.spec.windows:
            shape = WindowShape.parse(w.length, w.slide)
            if suffix_owner.setdefault(w.suffix, window.name) != window.name:
                problems.append(
                    f"StreamingWindow {window.name}: window {w.suffix!r} of FeatureView {view.name} is also a window "
                    f"of StreamingWindow {suffix_owner[w.suffix]} (another StreamingWindow's panes); its features "
                    "are not served"
                )
                continue
            for aggregation in window.spec.aggregations:
                name = f"{aggregation.name}_{w.suffix}"
                if name in found:
                    problems.append(
                        f"StreamingWindow {window.name}: feature {name!r} of FeatureView {view.name} is also "
                        f"written by StreamingWindow {owner[name]}; serving the latter"
                    )
                    continue
                found[name] = (w.suffix, shape, aggregation.name, aggregation.function)
                owner[name] = window.name
    return found


def _refused_features(view: ViewResource, windows: list[WindowResource], problems: list[str]) -> set[str]:
    """Features of ``windows`` that cannot be served: a window writes one key field, so a view with several
    join keys would always read empty (the operator stalls such a window too)."""
    if len(view.spec.entities) == 1:
        return set()
    keys = ", ".join(e.join_key for e in view.spec.entities)
    for window in windows:
        problems.append(
            f"StreamingWindow {window.name}: spec.featureView {view.name!r} has {len(view.spec.entities)} join keys "
            f"({keys}); a StreamingWindow can only feed a single-entity view, its features are not served"
        )
    return {name for window in windows for name in window.spec.feature_names()}


def panes_of(view_name: str, view: FeatureViewSpec, spec: StreamingWindowSpec, store: str) -> tuple[bytes, PaneShape]:
    """Where the streaming job of ``spec`` keeps its panes for ``view`` (a single-entity view) in store project
    ``store``, and their shape."""
    shape = shape_of(
        spec.key_field, view.entities[0].value_type, spec.event_time_field,
        ((s.length_ms, s.slide_ms) for s in (WindowShape.parse(w.length, w.slide) for w in spec.windows)),
        (PaneAggregation(a.name, a.function, a.field if a.function != "count" else None) for a in spec.aggregations),
    )
    return pane_prefix(store, view_name, shape.state_id()), shape


def _build_view(view: ViewResource, windows: list[WindowResource], problems: list[str]) -> ServedView:
    spec = view.spec
    store = store_project(view.namespace, spec.project)
    refused = _refused_features(view, windows, problems)
    if refused:
        windows = []
    declared = {f.name: f.dtype for f in spec.features if f.name not in refused}
    window_of = _window_features(view, windows, problems)

    def dtype_of(name: str, function: str) -> str:
        return declared.get(name, "INT64" if function == "count" else "FLOAT64")

    slots: dict[str, FeatureSlot] = {}
    batch = [name for name in declared if name not in window_of]
    for index, name in enumerate(batch):
        slots[name] = FeatureSlot(declared[name], None, index)

    members: dict[str, list[tuple[str, str, str]]] = {}
    shapes: dict[str, WindowShape] = {}
    for name, (suffix, shape, aggregation, function) in window_of.items():
        members.setdefault(suffix, []).append((name, aggregation, function))
        shapes[suffix] = shape
    panes: dict[str, tuple[bytes, PaneShape]] = {}
    for window in windows:  # the first StreamingWindow with a suffix owns it (``_window_features``)
        where = panes_of(view.name, view.spec, window.spec, store)
        for w in window.spec.windows:
            panes.setdefault(w.suffix, where)
    groups: dict[str, WindowGroup] = {}
    for suffix, group in members.items():
        aggregations = list(dict.fromkeys(aggregation for _, aggregation, _ in group))
        prefix, shape_of_panes = panes[suffix]
        offsets = dict(zip((a.name for a in shape_of_panes.aggregations), shape_of_panes.offsets(), strict=True))
        casts, empties = [], []
        for aggregation in aggregations:
            name, _, function = next(m for m in group if m[1] == aggregation)
            casts.append(_window_cast(dtype_of(name, function)))
            empties.append(_cast_scalar(dtype_of(name, function), empty_value(function)))
        groups[suffix] = WindowGroup(
            suffix, shapes[suffix], prefix, shape_of_panes.slide_number(shapes[suffix].slide_ms),
            tuple(offsets[a] for a in aggregations), shape_of_panes.width, tuple(empties), tuple(casts)
        )
        for name, aggregation, function in group:
            slots[name] = FeatureSlot(dtype_of(name, function), suffix, aggregations.index(aggregation))

    ordered = [*declared, *(n for n in window_of if n not in declared)]
    batch_fields = (timestamp_field(view.name), *(feature_field(view.name, n) for n in batch))
    return ServedView(
        name=view.name,
        project=spec.project,
        store_project=store,
        join_keys=tuple((e.join_key, e.value_type) for e in spec.entities),
        ttl_seconds=float(duration_seconds(spec.ttl)),
        sla_seconds=float(duration_seconds(spec.freshness_sla)),
        has_batch=spec.source is not None and not spec.materialization.suspend,
        status_newest=view.status_newest,
        batch_features=tuple(batch),
        batch_fields=batch_fields,
        packed_batch_fields=pack_tail(*batch_fields),
        project_bytes=store.encode(),
        heartbeat_key=heartbeat_key(store, view.name),
        generation_key=generation_key(store),
        coverage_key=coverage_key(store, view.name),
        windows=groups,
        slots=slots,
        feature_names=tuple(ordered),
    )


def build_catalog(views: Iterable[ViewResource], windows: Iterable[WindowResource]) -> Catalog:
    """The catalog of every online FeatureView, with the StreamingWindows that target it.

    Never raises for one resource: a view that cannot be built is left out and reported in ``problems``,
    and every other view is served.
    """
    problems: list[str] = []
    by_view: dict[str, list[WindowResource]] = {}
    for window in sorted(windows, key=lambda w: w.name):
        by_view.setdefault(window.spec.feature_view, []).append(window)
    served: dict[str, ServedView] = {}
    sets: dict[str, list[str]] = {}
    for view in sorted(views, key=lambda v: v.name):
        if not view.spec.online:
            continue
        try:
            served[view.name] = _build_view(view, by_view.pop(view.name, []), problems)
        except Exception as error:  # one absurd view (bypassed admission, older CRD) must not hide the others
            problems.append(f"FeatureView {view.name}: cannot be served: {type(error).__name__}: {error}")
            continue
        for set_name in view.annotations.get(FEATURE_SETS_ANNOTATION, "").split(","):
            if set_name.strip():
                refs = sets.setdefault(set_name.strip(), [])
                refs.extend(f"{view.name}:{n}" for n in served[view.name].feature_names)
    for view_name, orphans in sorted(by_view.items()):
        for window in orphans:
            problems.append(
                f"StreamingWindow {window.name}: spec.featureView {view_name!r} is not an online FeatureView"
            )
    return Catalog(served, {k: tuple(v) for k, v in sorted(sets.items())}, tuple(problems))
