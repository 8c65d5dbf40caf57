"""Freshness of the served views and readiness.

A view's freshness is the age of its newest data. For a view with a batch source: ``now`` minus the
newest event time known from the materializer's freshness record
(:mod:`streamguard.onlinestore.freshness`), the FeatureView's status (``lastMaterializedAt -
freshnessSeconds``, when watching the cluster) or the newest ``_ts`` this server has read, whichever
is newest. For a view fed by a StreamingWindow: ``now`` minus the stream heartbeat's ``processed_at``.
A view with both is as fresh as its stalest part. The server is ready when Redis answers and every
served view is within its freshness SLA.
"""

from collections.abc import Mapping
from dataclasses import dataclass

from streamguard.onlinestore.freshness import NEWEST_EVENT, freshness_key
from streamguard.onlinestore.window_layout import HEARTBEAT_PROCESSED_AT, heartbeat_key
from streamguard.serving.catalog import Catalog, ServedView
from streamguard.serving.redisio import RedisPool, RedisUnavailableError, pack


@dataclass(frozen=True)
class ViewFreshness:
    view: str
    sla_seconds: float
    newest: float | None
    """Epoch seconds of the view's newest data (its stalest part); ``None`` when unknown."""
    source: str
    reason: str

    def age(self, now: float) -> float | None:
        return None if self.newest is None else max(0.0, now - self.newest)

    def fresh(self, now: float) -> bool:
        age = self.age(now)
        return age is not None and age <= self.sla_seconds


@dataclass(frozen=True)
class Health:
    redis_error: str | None
    views: tuple[ViewFreshness, ...]
    catalog_loaded: bool = True

    def reasons(self, now: float) -> list[str]:
        reasons = []
        if not self.catalog_loaded:
            reasons.append("feature catalog not loaded yet")
        if self.redis_error is not None:
            reasons.append(f"Redis unreachable: {self.redis_error}")
        for view in self.views:
            age = view.age(now)
            if age is None:
                reasons.append(f"FeatureView {view.view}: {view.reason}")
            elif age > view.sla_seconds:
                reasons.append(
                    f"FeatureView {view.view}: data is {age:.0f}s old, over its freshness SLA of "
                    f"{view.sla_seconds:.0f}s ({view.source})"
                )
        return reasons


def _batch_part(view: ServedView) -> bool:
    return view.has_batch or not view.has_stream


def assess(
    catalog: Catalog,
    recorded: Mapping[str, float | None],
    heartbeats: Mapping[str, float | None],
    newest_seen: Mapping[str, float],
) -> tuple[ViewFreshness, ...]:
    """Pure: per served view, the newest data time from what was read from Redis (epoch seconds)."""
    out = []
    for name, view in catalog.views.items():
        parts: list[float | None] = []
        sources: list[str] = []
        reason = ""
        if _batch_part(view):
            known = (recorded.get(name), view.status_newest, newest_seen.get(name))
            candidates = [t for t in known if t is not None]
            parts.append(max(candidates) if candidates else None)
            sources.append("materializer")
            if not candidates:
                reason = "never materialized (no freshness record and no rows read)"
        if view.has_stream:
            parts.append(heartbeats.get(name))
            sources.append("stream")
            if heartbeats.get(name) is None:
                reason = "no stream heartbeat (streaming job not running?)"
        newest = None if any(p is None for p in parts) else min(p for p in parts if p is not None)
        out.append(ViewFreshness(name, view.sla_seconds, newest, "+".join(sources), reason))
    return tuple(out)


async def check(pool: RedisPool, catalog: Catalog, newest_seen: Mapping[str, float]) -> Health:
    """Read every freshness record and heartbeat in one round trip."""
    views = list(catalog.views.values())
    commands = [pack(b"PING")]
    for view in views:
        if _batch_part(view):
            commands.append(pack(b"HGET", freshness_key(view.project, view.name), NEWEST_EVENT))
        if view.has_stream:
            commands.append(pack(b"HGET", heartbeat_key(view.project, view.name), HEARTBEAT_PROCESSED_AT))
    try:
        replies = iter(await pool.execute(b"".join(commands), len(commands)))
    except RedisUnavailableError as error:
        return Health(str(error), assess(catalog, {}, {}, newest_seen))
    next(replies)
    recorded: dict[str, float | None] = {}
    heartbeats: dict[str, float | None] = {}
    for view in views:
        if _batch_part(view):
            raw = next(replies)
            recorded[view.name] = None if raw is None else float(raw) / 1000.0  # type: ignore[arg-type]
        if view.has_stream:
            raw = next(replies)
            heartbeats[view.name] = None if raw is None else float(raw) / 1000.0  # type: ignore[arg-type]
    return Health(None, assess(catalog, recorded, heartbeats, newest_seen))
