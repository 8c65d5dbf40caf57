"""How far the job is and whether it is healthy: the pure rules behind the progress record
(``streamguard.onlinestore.window_layout.StreamProgress``) and the ``StreamRunning`` condition.

Caught up means: everything the topic held at some moment is in Redis. Two observations prove it:

* a windows batch whose ``endOffset`` reached, on every partition, the ``latestOffset`` Spark saw when that
  batch started (under load, every batch that is not rate-limited); the moment is the batch's start;
* an end-offset check against Kafka (every poll) that finds the topic's end offsets equal to the offsets
  the last completed batch committed (a quiet topic); the moment is the check's.

``progress_at_ms`` takes the newest such moment, but only while the queries run, nothing fails and the
dead-letter rate is under its threshold: a failing query, a missing topic, an unresolved schema id or
dead-lettering never advance it.
"""

import threading
from collections import Counter, deque
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from streamguard.onlinestore.window_layout import StreamProgress, StreamState

Offsets = dict[int, int]
"""Partition -> offset of one topic."""

RUNNING, TOPIC_MISSING, QUERY_FAILED, DEAD_LETTERING = "Running", "TopicMissing", "QueryFailed", "DeadLettering"
REGISTRY_UNAVAILABLE, SCHEMA_ID_UNKNOWN = "RegistryUnavailable", "SchemaIdUnknown"
STORE_FULL, STORE_UNAVAILABLE, STORE_CHANGED = "StoreFull", "StoreUnavailable", "StoreChanged"
KAFKA_UNAVAILABLE, CHECKPOINT_UNAVAILABLE = "KafkaUnavailable", "CheckpointUnavailable"
SPARK_UNAVAILABLE = "SparkUnavailable"
"""Reasons of the ``StreamRunning`` condition."""


def spark_time_ms(text: str | None) -> int | None:
    """Epoch ms of Spark's ``2024-01-01T00:00:00.000Z`` timestamps."""
    if not text:
        return None
    return int(datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp() * 1000)


def topic_offsets(value: Any, topic: str) -> Offsets | None:
    """One topic's offsets from a Kafka source's ``startOffset``/``endOffset``/``latestOffset``."""
    if not isinstance(value, Mapping) or not isinstance(value.get(topic), Mapping):
        return None
    return {int(p): int(o) for p, o in value[topic].items()}


@dataclass(frozen=True)
class BatchReport:
    """What one progress report of the windows query says about progress."""

    batch_id: int
    started_ms: int
    rows: int
    end: Offsets | None
    latest: Offsets | None
    newest_event_ms: int | None
    watermark_ms: int | None

    @classmethod
    def of(cls, progress: Mapping[str, Any], topic: str) -> "BatchReport":
        source = (progress.get("sources") or [{}])[0]
        event_time = progress.get("eventTime") or {}
        watermark = spark_time_ms(event_time.get("watermark"))
        return cls(
            batch_id=int(progress.get("batchId", -1)),
            started_ms=spark_time_ms(progress.get("timestamp")) or 0,
            rows=int(progress.get("numInputRows") or 0),
            end=topic_offsets(source.get("endOffset"), topic),
            latest=topic_offsets(source.get("latestOffset"), topic),
            newest_event_ms=spark_time_ms(event_time.get("max")),
            watermark_ms=watermark or None,  # Spark reports the epoch until the first event arrives
        )

    @property
    def caught_up(self) -> bool:
        """The batch consumed the topic up to the end offsets as they stood at its start."""
        if self.end is None or self.latest is None:
            return False
        return all(self.end.get(p, -1) >= o for p, o in self.latest.items())


def lag(end: Mapping[int, int], committed: Mapping[int, int]) -> int:
    """Records between the committed offsets and the topic's end offsets, summed over partitions."""
    return sum(max(0, o - committed.get(p, 0)) for p, o in end.items())


def describe_dead_letter(reason: str) -> str:
    """A dead-letter header (``schema-id-unknown:3``, ``avro-decode-failed``) as words."""
    kind, _, schema_id = reason.partition(":")
    words = {
        "schema-id-unknown": f"schema id {schema_id} unknown to the registry",
        "schema-id-unreadable": f"schema id {schema_id} not readable with the contract",
        "not-confluent-wire-format": "not Confluent wire format",
        "avro-decode-failed": "Avro body does not decode",
    }
    return words.get(kind, reason.replace("-", " "))


class DeadLetterRate:
    """Dead letters against records read, over a sliding window of batches."""

    def __init__(self, max_ratio: float, window_ms: int) -> None:
        self.max_ratio = max_ratio
        self.window_ms = window_ms
        self._batches: deque[tuple[int, int, Counter[str]]] = deque()
        self._lock = threading.Lock()
        """Batches are added from Spark's callback thread."""

    def add(self, at_ms: int, records: int, reasons: Mapping[str, int]) -> None:
        """One dead-letter batch: ``records`` read, ``reasons`` -> how many of them were dead letters."""
        with self._lock:
            self._batches.append((at_ms, records, Counter(reasons)))

    def verdict(self, now_ms: int) -> str | None:
        """A sentence when the rate is above the threshold, else ``None``."""
        with self._lock:
            while self._batches and self._batches[0][0] < now_ms - self.window_ms:
                self._batches.popleft()
            batches = list(self._batches)
        records = sum(b[1] for b in batches)
        reasons: Counter[str] = sum((b[2] for b in batches), Counter())
        bad = sum(reasons.values())
        if not bad or bad <= self.max_ratio * records:
            return None
        top, count = reasons.most_common(1)[0]
        share = 100 * bad / max(records, bad)
        span = f"{self.window_ms // 1000}s" if self.window_ms != 60_000 else "minute"
        return (f"dead-lettered {share:.0f}% of {max(records, bad)} records in the last {span}: "
                f"{describe_dead_letter(top)} ({count})")


@dataclass(frozen=True)
class Failure:
    """Why the job is not making progress: a ``StreamRunning`` reason and a sentence."""

    reason: str
    message: str


class ProgressTracker:
    """Accumulates batches, end-offset checks and failures into the progress record."""

    def __init__(self, previous: StreamProgress | None, complete_from_ms: int | None,
                 dead_letters: DeadLetterRate) -> None:
        self.progress_at_ms = previous.progress_at_ms if previous else None
        self.newest_event_ms = previous.newest_event_ms if previous else None
        self.complete_from_ms = complete_from_ms
        self.dead_letters = dead_letters
        self.watermark_ms: int | None = None
        self.batch_id: int | None = None
        self.committed: Offsets | None = None
        self.lag: int | None = None
        self.last_caught_up = False
        self.failure: Failure | None = None
        self.active = False
        """Both queries run."""
        self.seen_batch = False
        """A progress report arrived since the queries (re)started."""
        self.probe_error: str | None = None
        """Why the last end-offset check failed (Kafka unreachable while the queries run)."""
        self.checkpoint_error: str | None = None
        """Why the last check of the checkpoint's object store failed (unreachable while the queries run)."""

    def started(self) -> None:
        """The queries (re)started: the failure is over until they fail again."""
        self.active, self.failure, self.seen_batch = True, None, False

    def fail(self, reason: str, message: str) -> None:
        """The queries are stopped or failed for ``reason``: no progress until :meth:`started`."""
        self.active, self.failure = False, Failure(reason, message)

    def healthy(self, now_ms: int) -> bool:
        return (self.active and self.failure is None and self.probe_error is None and self.checkpoint_error is None
                and self.dead_letters.verdict(now_ms) is None)

    def _advance(self, at_ms: int, now_ms: int) -> None:
        if self.healthy(now_ms):
            self.progress_at_ms = max(self.progress_at_ms or 0, at_ms)

    def on_batch(self, report: BatchReport, now_ms: int) -> None:
        """A progress report of the windows query (a batch, or an idle trigger)."""
        self.seen_batch = True
        self.batch_id = report.batch_id
        if report.newest_event_ms is not None:
            self.newest_event_ms = max(self.newest_event_ms or 0, report.newest_event_ms)
        if report.watermark_ms is not None:
            self.watermark_ms = report.watermark_ms
        if report.end is not None:
            self.committed = report.end
        if report.latest is not None:
            self.last_caught_up = report.caught_up
        if report.caught_up:
            self._advance(report.started_ms, now_ms)

    def on_end_offsets(self, checked_at_ms: int, end: Mapping[int, int], now_ms: int) -> None:
        """The topic's end offsets as read from Kafka at ``checked_at_ms``."""
        self.probe_error = None
        if self.committed is None:
            return
        self.lag = lag(end, self.committed)
        if self.lag == 0:
            self.last_caught_up = True
            self._advance(checked_at_ms, now_ms)

    def health(self, now_ms: int) -> tuple[StreamState, str]:
        """The record's ``state`` and ``reason``."""
        if self.failure is not None:
            return "failing", self.failure.message
        dead = self.dead_letters.verdict(now_ms)
        if dead is not None:
            return "dead-lettering", dead
        if self.probe_error is not None:
            return "failing", self.probe_error
        if self.checkpoint_error is not None:
            return "failing", self.checkpoint_error
        if not self.active or not self.seen_batch:
            return "starting", "starting the streaming queries"
        if not self.last_caught_up:
            behind = f" ({self.lag} records behind)" if self.lag else ""
            return "catching-up", f"catching up with the topic{behind}"
        return "running", "caught up with the topic"

    def condition(self, now_ms: int) -> tuple[str, str, str] | None:
        """``(status, reason, message)`` of ``StreamRunning`` for the failing states; ``None`` otherwise."""
        if self.failure is not None:
            return "False", self.failure.reason, self.failure.message
        dead = self.dead_letters.verdict(now_ms)
        if dead is not None:
            return "False", DEAD_LETTERING, dead
        if self.probe_error is not None:
            return "False", KAFKA_UNAVAILABLE, self.probe_error
        if self.checkpoint_error is not None:
            return "False", CHECKPOINT_UNAVAILABLE, self.checkpoint_error
        return None

    def record(self, now_ms: int) -> StreamProgress:
        state, reason = self.health(now_ms)
        return StreamProgress(
            processed_at_ms=now_ms, state=state, reason=reason, progress_at_ms=self.progress_at_ms,
            newest_event_ms=self.newest_event_ms, lag=self.lag, watermark_ms=self.watermark_ms,
            batch_id=self.batch_id, complete_from_ms=self.complete_from_ms,
        )
