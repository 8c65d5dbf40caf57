"""Freshness of the served views and readiness.

A view's freshness is the age of its newest data. For a view with a batch source: ``now`` minus the
newest event time known from the materializer's freshness record
(:mod:`streamguard.onlinestore.freshness`), the FeatureView's status (``lastMaterializedAt -
freshnessSeconds``, when watching the cluster) or the newest ``_ts`` this server has read, whichever
is newest. For a view fed by a StreamingWindow: the freshness rule of :mod:`streamguard.serving.progress`
over the job's progress record (never its liveness beat). A view with both is as fresh as its stalest
part. Either part is also not fresh while the online store does not cover what the view serves in its
current generation (:func:`streamguard.serving.progress.coverage_verdicts`: ``StoreGenerationMissing``,
``NotReseeded``, ``CoverageTooShort``); every tick reads the markers, the coverage and the server's
identity (``INFO``), which the lookups then compare the marker with.

Readiness follows the :class:`ReadinessPolicy`: the server is ready when the catalog is loaded, Redis
answers and every *required* view is fresh. Problems of *advisory* views are reported (``/readyz``
body, metrics) but keep the server ready.
"""

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from typing import cast

from streamguard.onlinestore.freshness import NEWEST_EVENT, freshness_key
from streamguard.onlinestore.generation import Verdict, current_generation
from streamguard.onlinestore.window_layout import PROGRESS_FIELDS, StreamProgress
from streamguard.serving.catalog import Catalog, ServedView
from streamguard.serving.progress import (
    COVERAGE_FIELDS,
    MARKER_FIELDS,
    StoreView,
    complete_until,
    coverage_verdicts,
    judge,
    parse_coverage,
    parse_marker,
    parse_progress,
)
from streamguard.serving.redisio import HMGet, RedisUnavailableError, StorePool, pack_tail

MATERIALIZER, STREAM = "materializer", "stream"
_GLOB = frozenset("*?[")


@dataclass(frozen=True)
class ReadinessPolicy:
    """Which views readiness depends on: a view is *required* when its name matches a ``required`` glob
    and no ``advisory`` glob; every other view is *advisory* (metrics and alerts only)."""

    required: tuple[str, ...] = ("*",)
    advisory: tuple[str, ...] = ()

    def requires(self, view: str) -> bool:
        return any(fnmatchcase(view, p) for p in self.required) and not any(fnmatchcase(view, p) for p in self.advisory)

    def unserved(self, served: Iterable[str]) -> list[str]:
        """Views required by exact name (no glob) that the catalog does not serve."""
        names = set(served)
        return [p for p in self.required if not _GLOB & set(p) and p not in names and self.requires(p)]


ALL_REQUIRED = ReadinessPolicy()


@dataclass(frozen=True)
class ViewFreshness:
    view: str
    sla_seconds: float
    parts: tuple[str, ...]
    """Where freshness comes from: :data:`MATERIALIZER`, :data:`STREAM` or both."""
    batch_newest: float | None = None
    """Epoch seconds of the newest batch data; ``None`` when unknown (or no batch part)."""
    stream: StreamProgress | None = None
    """The streaming job's progress record; ``None`` when never written (or no stream part)."""
    required: bool = True
    served: ServedView | None = None
    store: StoreView | None = None
    """What the online store said at the last check; ``None`` when unknown (not checked, Redis down)."""

    @property
    def source(self) -> str:
        return "+".join(self.parts)

    @property
    def newest(self) -> float | None:
        """Epoch seconds up to which the view's data is known complete (its stalest part)."""
        times = []
        if MATERIALIZER in self.parts:
            times.append(self.batch_newest)
        if STREAM in self.parts:
            times.append(complete_until(self.stream))
        return None if any(t is None for t in times) else min(t for t in times if t is not None)

    def age(self, now: float) -> float | None:
        newest = self.newest
        return None if newest is None else max(0.0, now - newest)

    def coverage(self, now: float) -> dict[str, Verdict]:
        """Per writer part (``batch``, ``stream``) whether the store covers what the view serves at ``now``;
        empty when unknown."""
        if self.served is None or self.store is None:
            return {}
        parts = coverage_verdicts(self.served, self.store, now, MATERIALIZER in self.parts, STREAM in self.parts)
        return dict(parts)

    def problems(self, now: float) -> list[str]:
        """Why the view is not fresh at ``now`` (empty when fresh)."""
        out = [
            f"{verdict.reason}: {verdict.message.removeprefix(f'FeatureView {self.view}: ')}"
            for verdict in self.coverage(now).values()
            if not verdict.covered
        ]
        if MATERIALIZER in self.parts:
            if self.batch_newest is None:
                out.append("never materialized (no freshness record and no rows read)")
            elif now - self.batch_newest > self.sla_seconds:
                out.append(
                    f"data is {now - self.batch_newest:.0f}s old, over its freshness SLA of "
                    f"{self.sla_seconds:.0f}s (materializer)"
                )
        if STREAM in self.parts:
            verdict = judge(self.stream, self.sla_seconds, now)
            if not verdict.fresh:
                out.append(verdict.reason)
        return out

    def fresh(self, now: float) -> bool:
        return not self.problems(now)


@dataclass(frozen=True)
class Health:
    redis_error: str | None
    views: tuple[ViewFreshness, ...]
    catalog_loaded: bool = True
    unserved: tuple[str, ...] = field(default=())
    """Required views (named exactly by the policy) that the catalog does not serve."""

    def _view_problems(self, now: float, required: bool) -> list[str]:
        return [
            f"FeatureView {view.view}: {problem}"
            for view in self.views
            if view.required == required
            for problem in view.problems(now)
        ]

    def reasons(self, now: float) -> list[str]:
        """Why the server is not ready: catalog, Redis and required views (empty when ready)."""
        reasons = []
        if not self.catalog_loaded:
            reasons.append("feature catalog not loaded yet")
        if self.redis_error is not None:
            reasons.append(f"Redis unreachable: {self.redis_error}")
        reasons.extend(f"FeatureView {name}: required by the readiness policy but not served" for name in self.unserved)
        return reasons + self._view_problems(now, required=True)

    def advisories(self, now: float) -> list[str]:
        """Problems of advisory views (reported, never a reason to be unready)."""
        return self._view_problems(now, required=False)


def _batch_part(view: ServedView) -> bool:
    return view.has_batch or not view.has_stream


def assess(
    catalog: Catalog,
    recorded: Mapping[str, float | None],
    progress: Mapping[str, StreamProgress | None],
    newest_seen: Mapping[str, float],
    policy: ReadinessPolicy = ALL_REQUIRED,
    stores: Mapping[str, StoreView] | None = None,
) -> tuple[ViewFreshness, ...]:
    """Pure: per served view, what its freshness is judged from (times in epoch seconds); ``stores``: what
    the online store said per view (``None``: not known)."""
    out = []
    for name, view in catalog.views.items():
        parts: list[str] = []
        batch_newest = None
        if _batch_part(view):
            parts.append(MATERIALIZER)
            known = [t for t in (recorded.get(name), view.status_newest, newest_seen.get(name)) if t is not None]
            batch_newest = max(known) if known else None
        if view.has_stream:
            parts.append(STREAM)
        out.append(
            ViewFreshness(
                name,
                view.sla_seconds,
                tuple(parts),
                batch_newest,
                progress.get(name),
                policy.requires(name),
                view,
                None if stores is None else stores.get(name),
            )
        )
    return tuple(out)


_MARKER_READ = pack_tail(*MARKER_FIELDS)
_COVERAGE_READ = pack_tail(*COVERAGE_FIELDS)
_NEWEST_EVENT_READ = pack_tail(NEWEST_EVENT)
_PROGRESS_READ = pack_tail(*PROGRESS_FIELDS)


async def check(
    pool: StorePool, catalog: Catalog, newest_seen: Mapping[str, float], policy: ReadinessPolicy = ALL_REQUIRED
) -> Health:
    """Read the store's identity, every generation marker, coverage, freshness and progress record in one
    round trip (per node of a cluster); the identity is kept in the pool for the lookups."""
    views = list(catalog.views.values())
    unserved = tuple(policy.unserved(catalog.views))
    markers = sorted({view.generation_key for view in views})
    reads: list[HMGet] = [(key, _MARKER_READ, len(MARKER_FIELDS)) for key in markers]
    for view in views:
        reads.append((view.coverage_key, _COVERAGE_READ, len(COVERAGE_FIELDS)))
        if _batch_part(view):
            reads.append((freshness_key(view.store_project, view.name), _NEWEST_EVENT_READ, 1))
        if view.has_stream:
            reads.append((view.heartbeat_key, _PROGRESS_READ, len(PROGRESS_FIELDS)))
    try:
        identity, answers = await pool.observe_and_hmget(reads)
        replies = iter(answers)
    except RedisUnavailableError as error:
        return Health(str(error), assess(catalog, {}, {}, newest_seen, policy), unserved=unserved)
    current = {key: current_generation(parse_marker(next(replies)), identity) for key in markers}  # type: ignore[arg-type]
    recorded: dict[str, float | None] = {}
    progress: dict[str, StreamProgress | None] = {}
    stores: dict[str, StoreView] = {}
    for view in views:
        batch, stream = parse_coverage(next(replies))  # type: ignore[arg-type]
        stores[view.name] = StoreView(current[view.generation_key], batch, stream, identity.evicting)
        if _batch_part(view):
            newest = cast(list[bytes | None], next(replies))[0]
            recorded[view.name] = None if newest is None else float(newest) / 1000.0
        if view.has_stream:
            progress[view.name] = parse_progress(next(replies))  # type: ignore[arg-type]
    return Health(None, assess(catalog, recorded, progress, newest_seen, policy, stores), unserved=unserved)
