"""The request path: per slice of entity rows, one Redis pipeline of ``HMGET``s for every view and row, then
statuses. Slices (``slice_rows`` rows each) are looked up one after the other, each in its own round trip
with its own reads of the records below, and the event loop takes a turn between two slices: a large lookup
never holds another request for more than one slice's work. Every slice is judged at the request's time.

Reads per entity row and selected view:

- batch features: the entity's Feast hash, fields ``_ts:<view>`` + every batch feature of the view;
- the selected windows (suffixes) of one StreamingWindow: one ``HMGET`` of its pane hash for the entity, the
  fields of the panes of each window ending at ``floor(now / slide) * slide + slide``, combined here
  (:mod:`streamguard.serving.pane_read`);
- once per view with windows: the streaming job's progress record (``sgw-hb:{<store project>}:<view>``);
- once per store project: the store's generation marker (``sg-gen:{<store project>}``), and once per view its
  coverage (``sg-cov:{<store project>}:<view>``), compared with the server identity the pool keeps
  (:mod:`streamguard.onlinestore.generation`).

Statuses (docs/semantics.md explains them for users) come from :mod:`streamguard.serving.progress`:
:func:`~streamguard.serving.progress.batch_rule` and :func:`~streamguard.serving.progress.window_rule`
(stream progress + coverage), then per batch row its TTL (``expired``). Batch values carry the row's
``_ts`` as event timestamp, window values the progress record's ``progress_at``.

Reads may come from the in-process cache (:mod:`streamguard.serving.cache`), each at most
``cache_staleness`` seconds old. A view's window reads and progress record are cached under its job's batch
counter (:mod:`streamguard.serving.written`), so they are read again once the job has written a batch. The
progress record is judged at the request's time, so a view turns ``stale`` at the latest ``cache_staleness``
seconds after its record says so. The generation marker is read again whenever a request goes to Redis (values
read now are never judged by an older marker); only a request answered entirely from the cache uses the cached
marker, as old as its values.
"""

import asyncio
import time
from collections.abc import Hashable, Mapping, Sequence
from dataclasses import dataclass, field

from streamguard.onlinestore.feast_layout import redis_key_of, serialize_entity_key
from streamguard.onlinestore.generation import Generation, current_generation
from streamguard.onlinestore.pane_layout import pane_key
from streamguard.onlinestore.valueproto import Scalar, decode_timestamp_seconds, decode_value
from streamguard.onlinestore.window_layout import PROGRESS_FIELDS, StreamProgress
from streamguard.serving.cache import TTLCache
from streamguard.serving.catalog import ServedView
from streamguard.serving.errors import EntityError, StoreUnavailableError
from streamguard.serving.pane_read import PaneRead
from streamguard.serving.progress import (
    COVERAGE_FIELDS,
    EXPIRED,
    MARKER_FIELDS,
    STALE,
    BatchRule,
    StoreView,
    WindowRule,
    batch_rule,
    iso,
    parse_coverage,
    parse_marker,
    parse_progress,
    window_rule,
)
from streamguard.serving.redisio import RedisUnavailableError, StorePool, Unreachable, pack_tail
from streamguard.serving.selection import Selection
from streamguard.serving.written import WrittenBatches

_UNVOUCHED = WindowRule(STALE, STALE, False, False, None)
"""The windows of a view whose progress record's node did not answer: nothing says they are fresh."""
_ABSENT = object()
"""A batch field missing from an existing row (the feature was never written for this entity)."""
_PROGRESS_FIELDS = pack_tail(*PROGRESS_FIELDS)
_PROGRESS = "progress"
_MARKER = "marker"
_COVERAGE = "coverage"
_MARKER_READ = (pack_tail(*MARKER_FIELDS), len(MARKER_FIELDS), _MARKER)
_COVERAGE_READ = (pack_tail(*COVERAGE_FIELDS), len(COVERAGE_FIELDS), _COVERAGE)

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


class Lookup:
    """Reads feature vectors for a resolved :class:`Selection`."""

    def __init__(self, pool: StorePool, cache: TTLCache, written: WrittenBatches | None = None) -> None:
        self.pool = pool
        self.cache = cache
        self.written = WrittenBatches() if written is None else written

    def _stores(self, views: Sequence[ServedView], found: Mapping[Hashable, object]) -> list[StoreView]:
        """Per selected view what the store says: its project's current generation and its coverage."""
        identity = self.pool.identity
        out = []
        for view in views:
            marker = found[view.generation_key]
            coverage = found[view.coverage_key]
            if isinstance(marker, Unreachable) or isinstance(coverage, Unreachable):
                out.append(StoreView(None, None, None, False))  # nothing vouched for: every value stale
                continue
            assert marker is None or isinstance(marker, Generation)
            assert isinstance(coverage, tuple)
            batch, stream = coverage
            current = None if identity is None else current_generation(marker, identity)
            out.append(StoreView(current, batch, stream, identity is not None and identity.evicting))
        return out

    async def read(
        self, selection: Selection, rows: Sequence[EntityRow], now: float | None = None, slice_rows: int = 50
    ) -> tuple[list[list[Scalar]], list[list[str]], list[list[str | None]], ReadStats]:
        """Values, statuses and event timestamps per row (aligned with ``selection.refs``), read ``slice_rows``
        rows at a time."""
        now = time.time() if now is None else now
        if len(rows) <= slice_rows:
            return await self._read_slice(selection, rows, 0, now)
        values: list[list[Scalar]] = []
        statuses: list[list[str]] = []
        stamps: list[list[str | None]] = []
        stats = ReadStats()
        for start in range(0, len(rows), slice_rows):
            if start:
                await asyncio.sleep(0)  # a turn for the other requests, even when the slice came from the cache
            part = await self._read_slice(selection, rows[start : start + slice_rows], start, now)
            values += part[0]
            statuses += part[1]
            stamps += part[2]
            stats.cache_hits += part[3].cache_hits
            stats.cache_misses += part[3].cache_misses
            for view, ts in part[3].newest_batch_ts.items():
                stats.newest_batch_ts[view] = max(ts, stats.newest_batch_ts.get(view, 0.0))
        return values, statuses, stamps, stats

    async def _read_slice(
        self, selection: Selection, rows: Sequence[EntityRow], first: int, now: float
    ) -> tuple[list[list[Scalar]], list[list[str]], list[list[str | None]], ReadStats]:
        """:meth:`read` of consecutive rows, the first of them at position ``first`` of the request."""
        now_ms = int(now * 1000)
        stats = ReadStats()
        views = selection.views
        # Plan: one cache key per read; per row and view the keys of its batch and window reads (the
        # progress record, coverage and generation marker are read once per view or project).
        wanted: dict[Hashable, Read] = {}
        markers: set[Hashable] = set()
        progress_keys = [(view.heartbeat_key, self.written.of(view.heartbeat_key)) for view in views]
        for view in views:
            markers.add(view.generation_key)
            wanted[view.generation_key] = (view.generation_key, *_MARKER_READ)
            wanted[view.coverage_key] = (view.coverage_key, *_COVERAGE_READ)
        pane_reads = selection.pane_reads.at(now_ms)
        plans: list[list[tuple[Hashable, dict[str, Hashable]]]] = []
        for position, row in enumerate(rows, first):
            memo: dict[tuple[str, ...], bytes] = {}
            row_plan = []
            for view, needs_batch, groups, reads, progress_key in zip(
                views, selection.needs_batch, selection.groups, pane_reads, progress_keys, strict=True
            ):
                entity = _entity_key(view, row, position, memo)
                batch_key: Hashable = None
                if needs_batch:
                    redis_key = redis_key_of(entity, view.project_bytes)
                    batch_key = (view.name, redis_key)
                    wanted[batch_key] = (redis_key, view.packed_batch_fields, len(view.batch_fields), view)
                window_keys: dict[str, Hashable] = {}
                if groups:
                    for read in reads:
                        redis_key = pane_key(read.prefix, entity)
                        read_key = (redis_key, read.ends_key, progress_key[1])  # under the view's batch counter
                        wanted[read_key] = (redis_key, read.packed_fields, read.count, read)
                        for group, _, _ in read.groups:
                            window_keys[group.suffix] = read_key
                    wanted[progress_key] = (
                        view.heartbeat_key,
                        _PROGRESS_FIELDS,
                        len(PROGRESS_FIELDS),
                        _PROGRESS,
                    )
                row_plan.append((batch_key, window_keys))
            plans.append(row_plan)

        found = await self._fetch(wanted, markers, now, stats)
        stores = self._stores(views, found)
        batch_rules: dict[int, BatchRule] = {}
        rules: dict[tuple[int, str], WindowRule] = {}
        for position, (view, needs_batch, groups) in enumerate(
            zip(views, selection.needs_batch, selection.groups, strict=True)
        ):
            if needs_batch:
                batch_rules[position] = batch_rule(view, stores[position], now)
            if groups:
                progress = found[progress_keys[position]]
                for suffix in groups:
                    if isinstance(progress, Unreachable):
                        rules[position, suffix] = _UNVOUCHED
                        continue
                    assert progress is None or isinstance(progress, StreamProgress)
                    rules[position, suffix] = window_rule(view, view.windows[suffix], progress, stores[position], now)

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
                    brule = batch_rules[column.view]
                    batch = found[batch_key]
                    if batch is None or isinstance(batch, Unreachable):
                        values.append(None)
                        statuses.append(brule.missing_status if batch is None else STALE)
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
                        statuses.append(brule.missing_status)
                    else:
                        values.append(value)  # type: ignore[arg-type]
                        statuses.append(brule.status)
                    continue
                rule = rules[column.view, column.group]
                stamps.append(rule.stamp)
                windows = found[window_keys[column.group]]
                if isinstance(windows, Unreachable):
                    values.append(None)
                    statuses.append(STALE)
                    continue
                assert isinstance(windows, dict)
                window = windows[column.group]
                if window is not None:
                    values.append(None if rule.withhold else window[column.index])
                    statuses.append(rule.status)
                else:
                    values.append(view.windows[column.group].empty[column.index] if rule.missing_empty else None)
                    statuses.append(rule.missing_status)
            all_values.append(values)
            all_statuses.append(statuses)
            all_stamps.append(stamps)
        return all_values, all_statuses, all_stamps, stats

    async def _fetch(
        self, wanted: Mapping[Hashable, Read], markers: set[Hashable], now: float, stats: ReadStats
    ) -> dict[Hashable, object]:
        """Decoded reads by cache key: cache hits first, the rest in one pipeline round trip. The
        ``markers`` are read again whenever anything is (never a cached marker with fresh values)."""
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
            if missing:
                for key in markers & found.keys():
                    del found[key]
                    missing.append((key, wanted[key]))
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
            if isinstance(raw, Unreachable):
                found[key] = raw  # never cached
                continue
            kind = read[3]
            decoded: object
            assert isinstance(raw, list)
            if isinstance(kind, ServedView):
                decoded = _decode_batch(raw)
                if decoded is not None:
                    newest = stats.newest_batch_ts.get(kind.name, 0.0)
                    if decoded.ts > newest:
                        stats.newest_batch_ts[kind.name] = decoded.ts
            elif isinstance(kind, PaneRead):
                decoded = kind.decode(raw)
            elif kind == _MARKER:
                decoded = parse_marker(raw)
            elif kind == _COVERAGE:
                decoded = parse_coverage(raw)
            else:
                decoded = parse_progress(raw)
            found[key] = decoded
            if cache.enabled:
                cache.put(key, decoded, now, _reply_bytes(read[0], raw))
        return found


ENTRY_OVERHEAD_BYTES = 256
"""Per cached read, on top of its key and reply bytes: the tuples and decoded objects holding them."""


def _reply_bytes(redis_key: object, raw: list[object]) -> int:
    """The estimated memory of one cached read: its Redis key, the reply's bytes and a fixed overhead."""
    size = ENTRY_OVERHEAD_BYTES + (len(redis_key) if isinstance(redis_key, bytes | str) else 64)
    return size + sum(len(item) if isinstance(item, bytes) else 16 for item in raw)
