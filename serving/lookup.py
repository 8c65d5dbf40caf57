"""The request path: one Redis pipeline of ``HMGET``s for every view and entity row, then statuses.

Reads per entity row and selected view:

- batch features: the entity's Feast hash, fields ``_ts:<view>`` + every batch feature of the view;
- each selected window (suffix): the window hash whose end is ``floor(now / slide) * slide + slide``;
- once per view with windows: the streaming job's progress record (``sgw-hb:<project>:<view>``).

Statuses (docs/semantics.md explains them for users):

- batch value: ``expired`` when its ``_ts`` is older than the view's TTL, ``not_found`` when the entity
  (or the field) is absent, else ``present``; its event timestamp is the row's ``_ts``.
- window value, judged once per request from the progress record by the freshness rule
  (:mod:`streamguard.serving.progress`) at the request's time:

  - ``not_found``: neither a progress record nor the window hash exists;
  - ``expired``: the stream last caught up longer ago than the view's TTL (value withheld);
  - ``stale``: the view is not fresh: the value as last written, or null when the hash is absent;
  - ``partial``: fresh, but the window starts before the job's ``complete_from`` (events missing);
  - ``present``: fresh and complete. An absent hash reads as the empty window (count 0, sum 0, others
    null) only then, and as the empty window's partial value under ``partial``.

  Its event timestamp is the record's ``progress_at`` (up to when the stream was last caught up).

Reads may come from the in-process cache (:mod:`streamguard.serving.cache`), each at most
``cache_staleness`` seconds old; the progress record is judged at the request's time, so a view turns
``stale`` at the latest ``cache_staleness`` seconds after its record says so.
"""

import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from streamguard.onlinestore.feast_layout import serialize_entity_key
from streamguard.onlinestore.valueproto import Scalar, decode_timestamp_seconds, decode_value
from streamguard.onlinestore.window_layout import PROGRESS_FIELDS, StreamProgress
from streamguard.serving.cache import TTLCache
from streamguard.serving.catalog import ServedView, WindowGroup
from streamguard.serving.errors import EntityError, StoreUnavailableError
from streamguard.serving.progress import judge, parse_progress
from streamguard.serving.redisio import RedisPool, RedisUnavailableError, pack_tail
from streamguard.serving.selection import Selection

PRESENT, NOT_FOUND, EXPIRED, STALE, PARTIAL = "present", "not_found", "expired", "stale", "partial"
_ABSENT = object()
"""A batch field missing from an existing row (the feature was never written for this entity)."""
_PROGRESS_FIELDS = pack_tail(*PROGRESS_FIELDS)
_PROGRESS = "progress"

EntityRow = Mapping[str, str | int]
Read = tuple[bytes, bytes, int, object]
"""(Redis key, packed fields, field count, what decodes the reply)."""


@dataclass(frozen=True, slots=True)
class BatchRow:
    ts: float
    iso: str | None
    values: tuple[object, ...]


@dataclass
class ReadStats:
    """Counters of one lookup, for metrics."""

    cache_hits: int = 0
    cache_misses: int = 0
    newest_batch_ts: dict[str, float] = field(default_factory=dict)


def iso(ts: float | None) -> str | None:
    return None if ts is None else datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _entity_key(view: ServedView, row: EntityRow, position: int, memo: dict[tuple[str, ...], bytes]) -> bytes:
    names = tuple(name for name, _ in view.join_keys)
    key = memo.get(names)
    if key is not None:
        return key
    values: dict[str, str | int] = {}
    for name, value_type in view.join_keys:
        value = row.get(name)
        if value is None:
            raise EntityError(f"entities[{position}]: missing join key {name!r} (needed by FeatureView {view.name!r})")
        if value_type == "INT64" and type(value) is not int:
            raise EntityError(f"entities[{position}].{name}: expected an integer for FeatureView {view.name!r}")
        if value_type == "STRING" and type(value) is not str:
            raise EntityError(f"entities[{position}].{name}: expected a string for FeatureView {view.name!r}")
        values[name] = value
    key = memo[names] = serialize_entity_key(values)
    return key


def _decode_batch(raw: list[bytes | None]) -> BatchRow | None:
    ts = decode_timestamp_seconds(raw[0])
    if ts is None:
        return None
    values = tuple(_ABSENT if item is None else decode_value(item) for item in raw[1:])
    return BatchRow(ts, iso(ts), values)


def _decode_window(group: WindowGroup, raw: list[bytes | None]) -> tuple[Scalar, ...] | None:
    if all(item is None for item in raw):
        return None
    return tuple(cast(item) for cast, item in zip(group.casts, raw, strict=True))


@dataclass(frozen=True, slots=True)
class WindowRule:
    """How one window group's values are answered in one request (the same for every entity row)."""

    status: str
    """Status of a value whose window hash exists."""
    missing_status: str
    """Status when the hash is absent."""
    missing_empty: bool
    """An absent hash reads as the empty window (else null)."""
    withhold: bool
    """Values are withheld (null) even when the hash exists."""
    stamp: str | None


def window_rule(view: ServedView, group: WindowGroup, progress: StreamProgress | None, now: float) -> WindowRule:
    """Pure: the statuses of a window group's values at ``now`` from the view's progress record."""
    progress_at = None if progress is None or progress.progress_at_ms is None else progress.progress_at_ms / 1000.0
    stamp = iso(progress_at)
    if progress is None:
        return WindowRule(STALE, NOT_FOUND, False, False, None)
    if progress_at is not None and view.ttl_seconds and now - progress_at > view.ttl_seconds:
        return WindowRule(EXPIRED, EXPIRED, False, True, stamp)
    if not judge(progress, view.sla_seconds, now).fresh:
        return WindowRule(STALE, STALE, False, False, stamp)
    start_ms = group.shape.end_as_of(int(now * 1000)) - group.shape.length_ms
    if progress.complete_from_ms is not None and start_ms < progress.complete_from_ms:
        return WindowRule(PARTIAL, PARTIAL, True, False, stamp)
    return WindowRule(PRESENT, PRESENT, True, False, stamp)


class Lookup:
    """Reads feature vectors for a resolved :class:`Selection`."""

    def __init__(self, pool: RedisPool, cache: TTLCache) -> None:
        self.pool = pool
        self.cache = cache

    async def read(
        self, selection: Selection, rows: Sequence[EntityRow], now: float | None = None
    ) -> tuple[list[list[Scalar]], list[list[str]], list[list[str | None]], ReadStats]:
        """Values, statuses and event timestamps per row (aligned with ``selection.refs``)."""
        now = time.time() if now is None else now
        now_ms = int(now * 1000)
        stats = ReadStats()
        views = selection.views
        # Plan: one cache key per read; per row and view the keys of its batch and window reads (the
        # progress record is read once per view, under its Redis key).
        wanted: dict[Hashable, Read] = {}
        plans: list[list[tuple[Hashable, dict[str, bytes]]]] = []
        for position, row in enumerate(rows):
            memo: dict[tuple[str, ...], bytes] = {}
            row_plan = []
            for view, needs_batch, groups in zip(views, selection.needs_batch, selection.groups, strict=True):
                entity = _entity_key(view, row, position, memo)
                batch_key: Hashable = None
                if needs_batch:
                    redis_key = entity + view.project_bytes
                    batch_key = (view.name, redis_key)
                    wanted[batch_key] = (redis_key, view.packed_batch_fields, len(view.batch_fields), view)
                window_keys: dict[str, bytes] = {}
                if groups:
                    prefix = b"sgw:" + entity
                    for suffix in groups:
                        group = view.windows[suffix]
                        redis_key = b"%s%s%d" % (prefix, group.key_infix, group.shape.end_as_of(now_ms))
                        window_keys[suffix] = redis_key
                        wanted[redis_key] = (redis_key, group.packed_fields, len(group.fields), group)
                    wanted[view.heartbeat_key] = (
                        view.heartbeat_key,
                        _PROGRESS_FIELDS,
                        len(PROGRESS_FIELDS),
                        _PROGRESS,
                    )
                row_plan.append((batch_key, window_keys))
            plans.append(row_plan)

        found = await self._fetch(wanted, now, stats)
        rules: dict[tuple[int, str], WindowRule] = {}
        for position, (view, groups) in enumerate(zip(views, selection.groups, strict=True)):
            if groups:
                progress = found[view.heartbeat_key]
                assert progress is None or isinstance(progress, StreamProgress)
                for suffix in groups:
                    rules[position, suffix] = window_rule(view, view.windows[suffix], progress, now)

        all_values: list[list[Scalar]] = []
        all_statuses: list[list[str]] = []
        all_stamps: list[list[str | None]] = []
        for row_plan in plans:
            values: list[Scalar] = []
            statuses: list[str] = []
            stamps: list[str | None] = []
            for column in selection.columns:
                view = views[column.view]
                batch_key, window_keys = row_plan[column.view]
                if column.group is None:
                    batch = found[batch_key]
                    if batch is None:
                        values.append(None)
                        statuses.append(NOT_FOUND)
                        stamps.append(None)
                        continue
                    assert isinstance(batch, BatchRow)
                    stamps.append(batch.iso)
                    if view.ttl_seconds and now - batch.ts > view.ttl_seconds:
                        values.append(None)
                        statuses.append(EXPIRED)
                        continue
                    value = batch.values[column.index]
                    if value is _ABSENT:
                        values.append(None)
                        statuses.append(NOT_FOUND)
                    else:
                        values.append(value)  # type: ignore[arg-type]
                        statuses.append(PRESENT)
                    continue
                rule = rules[column.view, column.group]
                stamps.append(rule.stamp)
                window = found[window_keys[column.group]]
                if window is not None:
                    assert isinstance(window, tuple)
                    values.append(None if rule.withhold else window[column.index])
                    statuses.append(rule.status)
                else:
                    values.append(view.windows[column.group].empty[column.index] if rule.missing_empty else None)
                    statuses.append(rule.missing_status)
            all_values.append(values)
            all_statuses.append(statuses)
            all_stamps.append(stamps)
        return all_values, all_statuses, all_stamps, stats

    async def _fetch(self, wanted: Mapping[Hashable, Read], now: float, stats: ReadStats) -> dict[Hashable, object]:
        """Decoded reads by cache key: cache hits first, the rest in one pipeline round trip."""
        found: dict[Hashable, object] = {}
        missing: list[tuple[Hashable, Read]]
        cache = self.cache
        if cache.enabled:
            missing = []
            for key, read in wanted.items():
                hit, value = cache.get(key, now)
                if hit:
                    found[key] = value
                else:
                    missing.append((key, read))
            stats.cache_hits = len(found)
            stats.cache_misses = len(missing)
        else:
            missing = list(wanted.items())
        if not missing:
            return found
        try:
            replies = await self.pool.hmget_many([(key, fields, count) for _, (key, fields, count, _) in missing])
        except RedisUnavailableError as error:
            raise StoreUnavailableError(f"online store (Redis) unavailable: {error}") from error
        for (key, read), raw in zip(missing, replies, strict=True):
            kind = read[3]
            decoded: object
            assert isinstance(raw, list)
            if isinstance(kind, ServedView):
                decoded = _decode_batch(raw)
                if decoded is not None:
                    newest = stats.newest_batch_ts.get(kind.name, 0.0)
                    if decoded.ts > newest:
                        stats.newest_batch_ts[kind.name] = decoded.ts
            elif isinstance(kind, WindowGroup):
                decoded = _decode_window(kind, raw)
            else:
                decoded = parse_progress(raw)
            found[key] = decoded
            if cache.enabled:
                cache.put(key, decoded, now)
        return found
