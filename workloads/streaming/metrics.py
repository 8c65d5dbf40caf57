"""The streaming job's Prometheus metrics, fed from Spark's query progress reports (names in docs/metrics.md)."""

import json
import time
from collections import deque
from datetime import datetime
from typing import Any

from prometheus_client import CollectorRegistry

from streamguard.workloads.metricfamily import Family

LABELS = ("namespace", "streamingwindow", "view")
SEEN_LIMIT = 1000
"""Progress reports remembered to count each once (Spark keeps the last 100)."""


def parse_spark_time(text: str | None) -> float | None:
    """Seconds since the epoch of Spark's ``2024-01-01T00:00:00.000Z`` timestamps."""
    if not text:
        return None
    return datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


class StreamMetrics:
    def __init__(self, namespace: str, name: str, view: str, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        family = Family(self.registry, LABELS)
        labels = (namespace, name, view)
        self.input_rate = family.gauge("streamguard_stream_input_rows_per_second",
                                       "Rows per second arriving from Kafka in the last micro-batch.").labels(*labels)
        self.processed_rate = family.gauge("streamguard_stream_processed_rows_per_second",
                                           "Rows per second processed in the last micro-batch.").labels(*labels)
        self.batch_duration = family.histogram("streamguard_stream_batch_duration_seconds",
                                               "Wall-clock duration of each micro-batch (including the Redis write).",
                                               (0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 120)).labels(*labels)
        self.event_time_lag = family.gauge("streamguard_stream_event_time_lag_seconds",
                                           "Wall clock minus the newest event time processed.").labels(*labels)
        self.watermark = family.gauge("streamguard_stream_watermark_timestamp_seconds",
                                      "Current event-time watermark (seconds since the epoch).").labels(*labels)
        self.late_dropped = family.counter("streamguard_stream_late_groups_dropped",
                                           "Partial aggregates (entity x pane x input partition of a batch) Spark "
                                           "dropped because every window containing the pane had closed "
                                           "(numRowsDroppedByWatermark): not a count of events.").labels(*labels)
        self.late_windows = family.counter("streamguard_stream_late_windows_missed",
                                           "(entity, window) pairs a batch's events missed because the window had "
                                           "closed while a longer one containing their pane was still open."
                                           ).labels(*labels)
        self.dead_letters = family.counter("streamguard_stream_dead_letter_events",
                                           "Records that could not be decoded, sent to the dead-letter topic."
                                           ).labels(*labels)
        self.dead_letter_checked = family.counter(
            "streamguard_stream_dead_letter_checked_records",
            "Records the dead-letter query's batches covered (offsets; the first batch of a checkpoint: records)."
        ).labels(*labels)
        self.dead_letter_reread = family.counter(
            "streamguard_stream_dead_letter_reread_records",
            "Records the dead-letter query read from Kafka and decoded a second time: those no windows batch free of "
            "dead letters covered (usually none).").labels(*labels)
        self.lag = family.gauge("streamguard_stream_lag_records",
                                "Records between the windows query's committed offsets and the topic's end offsets "
                                "at the last check, summed over partitions.").labels(*labels)
        self.progress = family.gauge("streamguard_stream_progress_timestamp_seconds",
                                     "Newest moment the job was caught up with its topic while healthy (the progress "
                                     "record's progress_at_ms).").labels(*labels)
        self.windows_written = family.counter("streamguard_stream_windows_written",
                                              "Window hashes written to Redis.").labels(*labels)
        self.query_restarts = family.counter("streamguard_stream_query_restarts",
                                             "Times the streaming query was restarted from its checkpoint.", "reason")
        self.reseed_duration = family.histogram("streamguard_stream_reseed_duration_seconds",
                                                "Duration of each re-seed of the open windows (a Kafka replay after "
                                                "the online store lost its generation).",
                                                (1, 2, 5, 10, 20, 30, 60, 120, 300)).labels(*labels)
        self._labels = labels
        self._seen: set[tuple[str, int, str]] = set()
        self._order: deque[tuple[str, int, str]] = deque()
        self.last_batch_id: int | None = None
        self.last_watermark_ms: int | None = None
        self.last_summary = ""
        """One line on the newest batch, for the periodic progress log."""

    def restarted(self, reason: str) -> None:
        self.query_restarts.labels(*self._labels, reason).inc()

    def reseeded(self, seconds: float) -> None:
        self.reseed_duration.observe(seconds)

    def observe(self, progress: dict[str, Any], now: float | None = None) -> bool:
        """Account one progress report of the windows query once; False when it was already seen."""
        ident = (str(progress.get("runId")), int(progress.get("batchId", -1)), str(progress.get("timestamp")))
        if ident in self._seen:
            return False
        self._seen.add(ident)
        self._order.append(ident)
        if len(self._order) > SEEN_LIMIT:
            self._seen.discard(self._order.popleft())
        now = time.time() if now is None else now
        self.input_rate.set(float(progress.get("inputRowsPerSecond") or 0.0))
        self.processed_rate.set(float(progress.get("processedRowsPerSecond") or 0.0))
        duration_ms = (progress.get("durationMs") or {}).get("triggerExecution")
        if duration_ms is not None:
            self.batch_duration.observe(duration_ms / 1000)
        event_time = progress.get("eventTime") or {}
        newest = parse_spark_time(event_time.get("max"))
        if newest is not None:
            self.event_time_lag.set(max(0.0, now - newest))
        watermark = parse_spark_time(event_time.get("watermark"))
        if watermark:  # Spark reports the epoch until the first event arrives
            self.watermark.set(watermark)
            self.last_watermark_ms = int(watermark * 1000)
        dropped = sum(int(op.get("numRowsDroppedByWatermark") or 0) for op in progress.get("stateOperators", []))
        if dropped:
            self.late_dropped.inc(dropped)
        self.last_batch_id = int(progress.get("batchId", -1))
        self.last_summary = (
            f"batch {self.last_batch_id}: {progress.get('numInputRows', 0)} rows in "
            f"{(duration_ms or 0) / 1000:.2f}s ("
            + ", ".join(f"{k} {v / 1000:.2f}s" for k, v in sorted((progress.get("durationMs") or {}).items())
                        if k != "triggerExecution" and v >= 50)
            + f"), {dropped} late partial aggregates dropped"
        )
        return True

    def observe_all(self, reports: list[Any]) -> list[dict[str, Any]]:
        """Account Spark progress objects (or their JSON) not seen yet; returns the new ones, oldest first."""
        fresh = []
        for report in reports:
            data = json.loads(report.json) if hasattr(report, "json") else dict(report)
            if self.observe(data):
                fresh.append(data)
        return fresh
