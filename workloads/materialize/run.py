"""One incremental materialization run of one FeatureView (Feast's ``materialize_incremental``).

``start`` = the watermark (``status.materializedUntil``), else ``spec.materialization.start``, else
``end - ttl``; ``end`` = now (whole seconds) unless given. The latest row per entity in
``[start, end]`` goes to Redis in Feast's layout, rows not newer than what Redis holds are skipped, and
only then does the watermark move to ``end``. Any failure leaves the watermark where it was and marks
the view not ``Materialized`` and not ``Fresh``.

The run knows what the store holds (:mod:`streamguard.onlinestore.generation`): it takes the store project's
current generation first (starting one if the store has none). When the watermark belongs to another
generation, or the view's batch coverage is not in this one, the store lost the view's data (flush,
restart, failover, eviction): the run backfills the TTL's interval (``Materialized=False
Backfilling``, and ``Fresh=False`` with the reason of
:func:`~streamguard.onlinestore.generation.coverage_verdict`: ``StoreGenerationMissing`` or
``NotReseeded``) instead of only the increment. After writing it commits the coverage; a generation that ended during
the run fails it (``StoreChanged``), and a write Redis refuses for lack of memory fails it too
(``StoreFull``). The CronJob's retry then repeats the run from the same watermark.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import cast

import redis

from streamguard.api.durations import parse_duration
from streamguard.api.featureview import FeatureViewSpec
from streamguard.onlinestore.client import Store
from streamguard.onlinestore.feast_layout import feature_field, timestamp_field
from streamguard.onlinestore.freshness import NEWEST_EVENT, FreshnessRecord, freshness_key
from streamguard.onlinestore.generation import BATCH, EVERYTHING_MS, Coverage, coverage_verdict
from streamguard.onlinestore.tenancy import DEFAULT_NAMESPACE, store_project
from streamguard.onlinestore.writers import commit_coverage, ensure_generation, read_coverage
from streamguard.workloads.materialize.encode import encode_column, encode_timestamps, entity_keys
from streamguard.workloads.materialize.errors import MaterializeError
from streamguard.workloads.materialize.metrics import Metrics
from streamguard.workloads.materialize.source import Interval, read_interval
from streamguard.workloads.materialize.status import RunReport
from streamguard.workloads.materialize.watermark import Watermarks
from streamguard.workloads.materialize.writer import FeastRedisWriter, WriteStats

ProgressFactory = Callable[[int, str], Callable[[int], object]]
"""``(total rows, description) -> update(n)``: a progress bar (tqdm when run by hand)."""


@dataclass(frozen=True)
class RunResult:
    view: str
    start: datetime
    end: datetime
    rows_scanned: int
    entities: int
    stats: WriteStats
    seconds: float
    freshness_seconds: int | None
    feature_count: int
    backfill: str | None = None
    """Why the run backfilled the TTL's interval (``None``: an increment or the first run)."""

    @property
    def feature_values(self) -> int:
        """Feature values written (rows written x features)."""
        return self.stats.written * self.feature_count


def _lower_bound(spec: FeatureViewSpec) -> datetime | None:
    start = spec.materialization.start
    if start is None:
        return None
    return start if start.tzinfo else start.replace(tzinfo=UTC)


def resolve_start(spec: FeatureViewSpec, watermark: datetime | None, end: datetime) -> datetime:
    if watermark is not None:
        return watermark
    return _lower_bound(spec) or end - parse_duration(spec.ttl)


@dataclass(frozen=True)
class Plan:
    """Where a run starts, and why it backfills the TTL's interval (``None``: the increment, or the view's
    first run)."""

    start: datetime
    backfill: str | None
    since_ms: int
    """The coverage the run gives the generation, from its start (:data:`EVERYTHING_MS` from the
    view's ``spec.materialization.start`` on: nothing older is ever written)."""


def plan_run(
    spec: FeatureViewSpec,
    end: datetime,
    watermark: datetime | None,
    recorded: str | None,
    current: str,
    coverage: Coverage | None,
    start: datetime | None = None,
) -> Plan:
    """Pure: the run's start from the watermark, the generation recorded with it, the store's current
    generation and the view's batch coverage; ``start`` is an interval asked by hand."""
    lower = _lower_bound(spec)
    reseed = coverage is None or coverage.generation != current or recorded != current
    backfill = None
    if start is None:
        start = resolve_start(spec, watermark, end)
        if watermark is not None and reseed:
            ttl_start = end - parse_duration(spec.ttl)
            start = min(watermark, max(ttl_start, lower) if lower else ttl_start)
            if recorded != current:
                why = f"the watermark belongs to generation {recorded or '(none)'}"
            else:
                why = "the view's coverage is not in it"
            backfill = (
                f"the online store's generation is {current} and {why} (the store was flushed, restarted, "
                "failed over or evicted keys)"
            )
    since = EVERYTHING_MS if lower is not None and start <= lower else int(start.timestamp() * 1000)
    return Plan(start, backfill, since)


def write_interval(
    client: Store,
    store: str,
    view: str,
    spec: FeatureViewSpec,
    interval: Interval,
    progress: Callable[[int], object] | None = None,
) -> WriteStats:
    """Encode the interval's rows a column at a time and write them under the store project ``store``
    (Feast's layout and skip rule)."""
    rows = interval.rows
    keys = entity_keys(store, spec.entities, rows)
    micros = rows.column("timestamp").to_numpy()
    columns = [encode_column(f.dtype, rows.column(f.name)) for f in spec.features]
    writer = FeastRedisWriter(client, timestamp_field(view), [feature_field(view, f.name) for f in spec.features])
    nanos = (micros * 1000).tolist()
    return writer.write(keys, nanos, encode_timestamps(micros), columns, progress)


def record_freshness(client: Store, store: str, view: str, interval: Interval, rows: int, now: datetime) -> None:
    """The serving-side freshness record (``streamguard.onlinestore.freshness``); newest never moves back."""
    key = freshness_key(store, view)
    previous = cast(bytes | None, client.hget(key, NEWEST_EVENT))  # type: ignore[arg-type]
    newest_ms = max(int(previous) if previous else 0, (interval.newest_micros or 0) // 1000)
    record = FreshnessRecord(newest_ms, int(interval.end.timestamp() * 1000), int(now.timestamp() * 1000), rows)
    client.hset(key, mapping=record.mapping())  # type: ignore[arg-type]


def _freshness(spec: FeatureViewSpec, newest_micros: int | None, now: datetime) -> tuple[int | None, bool, str, str]:
    sla = parse_duration(spec.freshness_sla)
    if newest_micros is None:
        return None, False, "NoData", "the source has no rows up to the end of the run"
    newest = datetime.fromtimestamp(newest_micros / 1e6, UTC)
    age = max(0, int((now - newest).total_seconds()))
    if age <= sla.total_seconds():
        return (
            age,
            True,
            "WithinSLA",
            f"newest row {newest:%Y-%m-%dT%H:%M:%SZ} is {age}s old (SLA {spec.freshness_sla})",
        )
    return (
        age,
        False,
        "Stale",
        f"newest row {newest:%Y-%m-%dT%H:%M:%SZ} is {age}s old, over the SLA {spec.freshness_sla}",
    )


def record_failure(
    watermarks: Watermarks, view: str, error: Exception, now: datetime, metrics: Metrics | None = None
) -> MaterializeError:
    """Record a failed run in ``watermarks`` (the watermark does not move; the FeatureView's conditions say why)
    and count it; the error to raise (``error`` itself when it is a :class:`MaterializeError`)."""
    if isinstance(error, redis.exceptions.OutOfMemoryError):
        error = MaterializeError(
            view,
            "online store",
            f"Redis refused a write for lack of memory (OOM {error}); the watermark did not move. Raise "
            "maxmemory or free memory (see docs/online-store.md for sizing)",
            "StoreFull",
        )
    reason = error.reason if isinstance(error, MaterializeError) else type(error).__name__
    message = str(error) if isinstance(error, MaterializeError) else f"FeatureView {view}: {error}"
    failure = RunReport(
        False,
        reason,
        message,
        now,
        fresh=False,
        fresh_reason="StoreFull" if reason == "StoreFull" else "MaterializationFailed",
        fresh_message=(
            "the online store refused writes for lack of memory; it holds older values"
            if reason == "StoreFull"
            else "the last materialization failed; the online store may be stale"
        ),
    )
    try:
        watermarks.record(failure)
    except Exception as record_error:
        return MaterializeError(view, "status", f"{message}; recording the failure failed too: {record_error}", reason)
    if metrics:
        metrics.failed(view)
    if isinstance(error, MaterializeError):
        return error
    return MaterializeError(view, "online store", str(error), reason)


def materialize_incremental(
    client: Store,
    view: str,
    spec: FeatureViewSpec,
    watermarks: Watermarks,
    *,
    end: datetime | None = None,
    start: datetime | None = None,
    base_dir: Path | None = None,
    progress: ProgressFactory | None = None,
    metrics: Metrics | None = None,
    namespace: str = DEFAULT_NAMESPACE,
) -> RunResult:
    """Run once; record the outcome in ``watermarks`` (success or failure) and return or raise. Keys carry
    :func:`~streamguard.onlinestore.tenancy.store_project` of ``namespace`` (the FeatureView's) and
    ``spec.project``."""
    began = time.perf_counter()
    store = store_project(namespace, spec.project)
    now = datetime.now(UTC).replace(microsecond=0)
    end = (end or now).astimezone(UTC)
    try:
        watermark = watermarks.load()
        generation, started = ensure_generation(client, store, int(now.timestamp() * 1000))
        coverage = read_coverage(client, store, view, BATCH)
        plan = plan_run(
            spec, end, watermark, watermarks.generation, generation, coverage, start.astimezone(UTC) if start else None
        )
        first = plan.start
        if end < first:
            raise MaterializeError(
                view,
                "status.materializedUntil" if watermark and not start else "end",
                f"empty time range: end {end.isoformat()} is before start {first.isoformat()}",
                "EmptyTimeRange",
            )
        if plan.backfill:
            doing = f"{plan.backfill}: backfilling [{first:%Y-%m-%dT%H:%M:%SZ}, {end:%Y-%m-%dT%H:%M:%SZ}]"
            needed = int((end - parse_duration(spec.ttl)).timestamp() * 1000)
            verdict = coverage_verdict(view, BATCH, None if started else generation, coverage, needed)
            fresh_reason, fresh_message = (
                ("Backfilling", doing) if verdict.covered else (verdict.reason, f"{verdict.message}; {doing}")
            )
            watermarks.record(
                RunReport(
                    False,
                    "Backfilling",
                    doing,
                    now,
                    fresh=False,
                    fresh_reason=fresh_reason,
                    fresh_message=fresh_message,
                )
            )
        interval = read_interval(view, spec, first, end, base_dir or Path.cwd())
        update = progress(interval.rows.num_rows, view) if progress else None
        stats = write_interval(client, store, view, spec, interval, update)
        if commit_coverage(client, store, view, BATCH, generation, plan.since_ms) is None:
            raise MaterializeError(
                view,
                "online store",
                f"the online store's generation {generation} ended during the run (flushed, restarted, failed "
                "over or evicted); the next run backfills",
                "StoreChanged",
            )
        record_freshness(client, store, view, interval, stats.written, now)
    except Exception as error:
        failure = record_failure(watermarks, view, error, now, metrics)
        if failure is error:
            raise
        raise failure from error
    age, fresh, fresh_reason, fresh_message = _freshness(spec, interval.newest_micros, now)
    if interval.rows.num_rows:
        message = (
            f"{stats.written} entities written ({stats.skipped} not newer than Redis) from "
            f"{interval.scanned} rows in [{first:%Y-%m-%dT%H:%M:%SZ}, {end:%Y-%m-%dT%H:%M:%SZ}]"
        )
        reason = "Materialized"
    else:
        message = f"no source rows in [{first:%Y-%m-%dT%H:%M:%SZ}, {end:%Y-%m-%dT%H:%M:%SZ}]"
        reason = "NoNewData"
    if plan.backfill:
        reason, message = "Backfilled", f"{message}; backfilled because {plan.backfill}"
    watermarks.record(
        RunReport(True, reason, message, now, end, stats.written, age, fresh, fresh_reason, fresh_message, generation)
    )
    result = RunResult(
        view,
        first,
        end,
        interval.scanned,
        interval.rows.num_rows,
        stats,
        time.perf_counter() - began,
        age,
        len(spec.features),
        plan.backfill,
    )
    if metrics:
        metrics.succeeded(view, stats.written, len(spec.features), result.seconds, age, plan.backfill is not None)
    return result
