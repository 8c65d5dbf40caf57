"""The serving state behind the HTTP routes: catalog, Redis client, cache, metrics and health.

Request handling returns ``(status, JSON bytes)`` so the route can answer without FastAPI's response
validation: the lookup response is a plain dict dumped with orjson, shaped as
:class:`streamguard.serving.models.LookupResponse`.
"""

import asyncio
import logging
import time
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from streamguard.onlinestore.client import store_url
from streamguard.serving.budget import ClientBudget, ClientRate
from streamguard.serving.cache import TTLCache
from streamguard.serving.catalog import Catalog
from streamguard.serving.errors import BatchTooLargeError, ServingError, StoreUnavailableError
from streamguard.serving.health import Health, ReadinessPolicy, ViewFreshness, check
from streamguard.serving.lookup import Lookup
from streamguard.serving.metrics import ServingMetrics
from streamguard.serving.models import EntityRow, LookupRequest
from streamguard.serving.periodic import forever
from streamguard.serving.redis_cluster import ClusterPool
from streamguard.serving.redis_sentinel import SentinelPool
from streamguard.serving.redisio import PoolOptions, RedisPool, StorePool
from streamguard.serving.selection import Selection, feature_set_refs, resolve
from streamguard.serving.settings import Settings
from streamguard.serving.sources import CatalogSource
from streamguard.serving.written import WrittenBatches

log = logging.getLogger(__name__)
_REQUEST = TypeAdapter(LookupRequest)
_ENTITIES = TypeAdapter(list[EntityRow])
SELECTION_REF_BYTES = 160
"""Estimated memory of one reference in a resolved selection (its string, column and tuple slots)."""


def _error(status: int, detail: object) -> tuple[int, bytes]:
    return status, orjson.dumps({"detail": detail})


class _RowsInvalidError(Exception):
    """Entity rows from ``start`` on failed validation (their locations are relative to ``start``)."""

    def __init__(self, start: int, error: ValidationError) -> None:
        super().__init__(str(error))
        self.start = start
        self.error = error


def _invalid(error: ValidationError | _RowsInvalidError) -> tuple[int, bytes]:
    """A 422 listing what was wrong where (a row's location counted in the whole request)."""
    if isinstance(error, _RowsInvalidError):
        start, error = error.start, error.error
        prefix: tuple[str, ...] = ("entities",)
    else:
        start, prefix = 0, ()
    details = error.errors(include_url=False, include_context=False, include_input=False)
    items = []
    for d in details:
        loc = list(d["loc"])
        if prefix:
            loc = [*prefix, int(loc[0]) + start, *loc[1:]]
        items.append({"loc": loc, "msg": d["msg"], "type": d["type"]})
    return 422, orjson.dumps({"detail": items})


def connect(settings: Settings) -> StorePool:
    """The bounded pool with short timeouts (connections open lazily: Redis may be down at start), of one server,
    of every master of a Redis Cluster, or of the master Redis Sentinels name."""
    url, cluster, sentinels = store_url(settings.redis_url)
    options = PoolOptions(settings.max_connections, settings.connect_timeout, settings.socket_timeout,
                          settings.pool_timeout)
    if sentinels:
        return SentinelPool(url, sentinels, options)
    return (ClusterPool if cluster else RedisPool)(url, options)


class FeatureService:
    def __init__(self, settings: Settings, source: CatalogSource, pool: StorePool) -> None:
        self.settings = settings
        self.source = source
        self.pool = pool
        self.cache = TTLCache(settings.cache_staleness, settings.cache_max_entries, settings.cache_max_bytes)
        self.written = WrittenBatches()
        self.lookup = Lookup(pool, self.cache, self.written)
        self.newest_seen: dict[str, float] = {}
        self.policy = ReadinessPolicy(settings.required_views, settings.advisory_views)
        self.health: Health | None = None
        self.metrics = ServingMetrics(self._freshness_snapshot)
        self.bytes_in_flight = ClientBudget(settings.client_bytes_in_flight)
        """Body bytes of lookups in progress per client (checked before the body is read)."""
        self.values_in_flight = ClientBudget(settings.client_values_in_flight)
        """Values (rows x features) being looked up per client (checked once the body is parsed)."""
        self.values_rate = ClientRate(settings.client_values_per_second)
        """Values looked up per second per client (charged once the body is parsed, checked before the next)."""
        self._catalog: Catalog | None = None
        self._selections: dict[tuple[str, ...], Selection] = {}
        self._selection_bytes = 0

    def _freshness_snapshot(self) -> tuple[ViewFreshness, ...]:
        return self.health.views if self.health else ()

    def catalog(self) -> Catalog | None:
        catalog = self.source.current()
        if catalog is not self._catalog:
            self._catalog = catalog
            self._selections, self._selection_bytes = {}, 0
            self.cache.clear()
        return catalog

    def _select(self, catalog: Catalog, request: LookupRequest) -> Selection:
        """The resolved features (a repeated reference collapsed into its first place), cached within a byte
        budget (oldest lists dropped first)."""
        refs = tuple(dict.fromkeys(request.features)) if request.features is not None else None
        if refs is None:
            assert request.feature_set is not None
            refs = feature_set_refs(catalog, request.feature_set)
        selection = self._selections.get(refs)
        if selection is None:
            selection = resolve(catalog, refs)
            size = sum(len(ref) for ref in refs) + SELECTION_REF_BYTES * len(refs)
            budget = self.settings.selection_cache_bytes
            if size <= budget:
                while self._selections and self._selection_bytes + size > budget:
                    oldest = next(iter(self._selections))
                    self._selection_bytes -= sum(len(r) for r in oldest) + SELECTION_REF_BYTES * len(oldest)
                    del self._selections[oldest]
                self._selections[refs] = selection
                self._selection_bytes += size
        return selection

    async def _validate(self, raw: object) -> tuple[LookupRequest, list[EntityRow]]:
        """The request and its entity rows, validated ``slice_rows`` rows at a time (the event loop takes a turn
        between two slices); a :class:`ValidationError` locates the row in the whole request."""
        entities = raw.get("entities") if isinstance(raw, dict) else None
        step = self.settings.slice_rows
        if not isinstance(entities, list) or len(entities) <= step:
            request = _REQUEST.validate_python(raw)
            return request, request.entities
        assert isinstance(raw, dict)
        request = _REQUEST.validate_python({**raw, "entities": entities[:step]})
        rows = list(request.entities)
        for start in range(step, len(entities), step):
            await asyncio.sleep(0)
            try:
                rows += _ENTITIES.validate_python(entities[start : start + step])
            except ValidationError as error:
                raise _RowsInvalidError(start, error) from error
        return request, rows

    async def features(self, body: bytes, client: str) -> tuple[int, bytes]:
        """Answer ``POST /features`` for ``client`` (whose values in progress are bounded: 429 beyond)."""
        try:
            raw = orjson.loads(body)
        except orjson.JSONDecodeError as error:
            return _error(422, [{"loc": ["body"], "msg": f"invalid JSON: {error}", "type": "json_invalid"}])
        try:
            if isinstance(raw, dict):
                entities = raw.get("entities")
                if isinstance(entities, list) and len(entities) > self.settings.max_batch:
                    raise BatchTooLargeError(
                        f"{len(entities)} entity rows in one request; the limit is {self.settings.max_batch}"
                    )
                limit = self.settings.max_entity_keys
                if isinstance(entities, list) and any(isinstance(e, dict) and len(e) > limit for e in entities):
                    raise BatchTooLargeError(f"an entity row has more than {limit} keys")
            try:
                request, rows = await self._validate(raw)
            except (ValidationError, _RowsInvalidError) as error:
                return _invalid(error)
            catalog = self.catalog()
            if catalog is None:
                raise StoreUnavailableError("feature catalog not loaded yet (FeatureViews not read)")
            selection = self._select(catalog, request)
            cost = len(rows) * len(selection.refs)
            budget = self.values_in_flight
            if not budget.acquire(client, cost):
                held = budget.held(client)
                return _error(429, f"this client has {held} values being looked up (limit {budget.limit}); retry later")
            self.values_rate.charge(client, cost, time.monotonic())
            try:
                values, statuses, stamps, stats = await self.lookup.read(
                    selection, rows, slice_rows=self.settings.slice_rows
                )
            finally:
                budget.release(client, cost)
        except StoreUnavailableError as error:
            self.metrics.redis_errors.inc()
            return _error(error.status_code, error.detail)
        except ServingError as error:
            return _error(error.status_code, error.detail)
        if stats.cache_hits:
            self.metrics.cache_hits.inc(stats.cache_hits)
        if stats.cache_misses:
            self.metrics.cache_misses.inc(stats.cache_misses)
        for view, ts in stats.newest_batch_ts.items():
            if ts > self.newest_seen.get(view, 0.0):
                self.newest_seen[view] = ts
        results = [
            {"values": v, "statuses": s, "eventTimestamps": t} for v, s, t in zip(values, statuses, stamps, strict=True)
        ]
        return 200, orjson.dumps({"features": selection.refs, "results": results})

    async def check_health(self) -> Health:
        catalog = self.catalog()
        if catalog is None:
            health = Health(None, (), catalog_loaded=False)
        else:
            try:
                # asyncio.timeout, not wait_for: on 3.11 wait_for swallows a cancellation that arrives as the
                # check completes, and the refresher would then outlive the app's shutdown
                async with asyncio.timeout(2.0):
                    health = await check(self.pool, catalog, self.newest_seen, self.policy)
            except TimeoutError:
                health = Health("no answer within 2s", ())
        if health.redis_error is not None:
            self.metrics.redis_errors.inc()
        self.health = health
        return health

    async def readiness(self) -> tuple[int, dict[str, Any]]:
        """``/readyz``: 503 only for the catalog, Redis or a required view; advisory problems listed."""
        health = await self.check_health()
        now = time.time()
        reasons = health.reasons(now)
        views = []
        for v in health.views:
            problems = v.problems(now)
            views.append(
                {
                    "view": v.view,
                    "required": v.required,
                    "fresh": not problems,
                    "freshness_seconds": v.age(now),
                    "sla_seconds": v.sla_seconds,
                    "source": v.source,
                    "reason": "; ".join(problems),
                    "stream_state": v.stream.state if v.stream is not None else None,
                    "coverage": {part: verdict.reason for part, verdict in v.coverage(now).items()},
                }
            )
        body = {
            "ready": not reasons,
            "reasons": reasons,
            "advisories": health.advisories(now),
            "redis": "ok" if health.redis_error is None else health.redis_error,
            "policy": {"required": list(self.policy.required), "advisory": list(self.policy.advisory)},
            "views": views,
        }
        return (200 if not reasons else 503), body

    async def refresh_forever(self) -> None:
        """Keep the freshness gauges current between readiness probes."""
        await forever(self.check_health, self.settings.freshness_interval, "freshness refresh")

    async def watch_written_forever(self) -> None:
        """Keep the batch counters of the catalog's views with windows current (only while the cache is on)."""

        def keys() -> list[bytes]:
            catalog = self.catalog()
            return [] if catalog is None else [v.heartbeat_key for v in catalog.views.values() if v.has_stream]

        await self.written.watch_forever(self.pool, keys)

    def catalog_body(self) -> dict[str, Any]:
        catalog = self.catalog()
        if catalog is None:
            return {"views": {}, "feature_sets": {}, "problems": ["feature catalog not loaded yet"]}
        return {
            "views": {
                name: {
                    "project": view.project,
                    "entities": [key for key, _ in view.join_keys],
                    "features": list(view.feature_names),
                    "ttl_seconds": view.ttl_seconds,
                    "freshness_sla_seconds": view.sla_seconds,
                    "required": self.policy.requires(name),
                }
                for name, view in catalog.views.items()
            },
            "feature_sets": {name: list(refs) for name, refs in catalog.feature_sets.items()},
            "problems": list(catalog.problems),
        }
