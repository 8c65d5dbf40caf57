"""One incremental materialization run of one FeatureView (Feast's ``materialize_incremental``).

``start`` = the watermark (``status.materializedUntil``), else ``spec.materialization.start``, else
``end - ttl``; ``end`` = now (whole seconds) unless given. The latest row per entity in
``[start, end]`` goes to Redis in Feast's layout, rows not newer than what Redis holds are skipped, and
only then does the watermark move to ``end``. Any failure leaves the watermark where it was and marks
the view not ``Materialized`` and not ``Fresh``.
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
from streamguard.onlinestore.feast_layout import feature_field, timestamp_field
from streamguard.onlinestore.freshness import NEWEST_EVENT, FreshnessRecord, freshness_key
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

    @property
    def feature_values(self) -> int:
        """Feature values written (rows written x features)."""
        return self.stats.written * self.feature_count


def resolve_start(spec: FeatureViewSpec, watermark: datetime | None, end: datetime) -> datetime:
    if watermark is not None:
        return watermark
    if spec.materialization.start is not None:
        start = spec.materialization.start
        return start if start.tzinfo else start.replace(tzinfo=UTC)
    return end - parse_duration(spec.ttl)


def write_interval(
    client: redis.Redis,
    view: str,
    spec: FeatureViewSpec,
    interval: Interval,
    progress: Callable[[int], object] | None = None,
) -> WriteStats:
    """Encode the interval's rows a column at a time and write them (Feast's layout and skip rule)."""
    rows = interval.rows
    keys = entity_keys(spec.project, spec.entities, rows)
    micros = rows.column("timestamp").to_numpy()
    columns = [encode_column(f.dtype, rows.column(f.name)) for f in spec.features]
    writer = FeastRedisWriter(client, timestamp_field(view), [feature_field(view, f.name) for f in spec.features])
    nanos = (micros * 1000).tolist()
    return writer.write(keys, nanos, encode_timestamps(micros), columns, progress)


def record_freshness(
    client: redis.Redis, view: str, spec: FeatureViewSpec, interval: Interval, rows: int, now: datetime
) -> None:
    """The serving-side freshness record (``streamguard.onlinestore.freshness``); newest never moves back."""
    key = freshness_key(spec.project, view)
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


def materialize_incremental(
    client: redis.Redis,
    view: str,
    spec: FeatureViewSpec,
    watermarks: Watermarks,
    *,
    end: datetime | None = None,
    start: datetime | None = None,
    base_dir: Path | None = None,
    progress: ProgressFactory | None = None,
    metrics: Metrics | None = None,
) -> RunResult:
    """Run once; record the outcome in ``watermarks`` (success or failure) and return or raise."""
    began = time.perf_counter()
    now = datetime.now(UTC).replace(microsecond=0)
    end = (end or now).astimezone(UTC)
    try:
        watermark = watermarks.load()
        first = start.astimezone(UTC) if start else resolve_start(spec, watermark, end)
        if end < first:
            raise MaterializeError(
                view,
                "status.materializedUntil" if watermark and not start else "end",
                f"empty time range: end {end.isoformat()} is before start {first.isoformat()}",
                "EmptyTimeRange",
            )
        interval = read_interval(view, spec, first, end, base_dir or Path.cwd())
        update = progress(interval.rows.num_rows, view) if progress else None
        stats = write_interval(client, view, spec, interval, update)
        record_freshness(client, view, spec, interval, stats.written, now)
    except Exception as error:
        reason = error.reason if isinstance(error, MaterializeError) else type(error).__name__
        message = str(error) if isinstance(error, MaterializeError) else f"FeatureView {view}: {error}"
        failure = RunReport(
            False,
            reason,
            message,
            now,
            fresh=False,
            fresh_reason="MaterializationFailed",
            fresh_message="the last materialization failed; the online store may be stale",
        )
        try:
            watermarks.record(failure)
        except Exception as record_error:
            raise MaterializeError(
                view, "status", f"{message}; recording the failure failed too: {record_error}", reason
            ) from error
        if metrics:
            metrics.failed(view)
        if isinstance(error, MaterializeError):
            raise
        raise MaterializeError(view, "online store", str(error), reason) from error
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
    watermarks.record(
        RunReport(True, reason, message, now, end, stats.written, age, fresh, fresh_reason, fresh_message)
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
    )
    if metrics:
        metrics.succeeded(view, stats.written, len(spec.features), result.seconds, age)
    return result
