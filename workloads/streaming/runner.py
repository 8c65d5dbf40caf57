"""The driver of the streaming job: starts the two queries, supervises them, never dies of bad input, and
writes the progress record (``window_layout.StreamProgress``) and the ``StreamRunning`` condition.

* Before the queries start: the topic must exist (else ``TopicMissing``, checked again with backoff), the
  subject's schema ids are resolved (an unreachable registry: ``RegistryUnavailable``, retried), and a job
  without a checkpoint gets its start position (``offsets.plan_start``).
* A query that fails because it met a writer schema id it has not resolved yet is restarted from its
  checkpoint once the id is resolved (``schemas.SchemaResolver``: unknown ids are looked up again for a grace
  period, ``SchemaIdUnknown``, before they become dead letters). Until then nothing is committed or
  dead-lettered and the job makes no progress.
* Ids dead-lettered as unknown are looked up again every ``UNKNOWN_RECHECK_S``; once the registry knows one
  again (a lost subject registered again), the queries restart from their checkpoint and decode its records.
* Any other failure (Kafka or Redis unavailable, ...) is ``QueryFailed`` and retried with backoff, again from
  the checkpoint: the failed batch is replayed and its writes are idempotent.
* While running, every poll reads the topic's end offsets (lag) and dead letters above the threshold are
  ``DeadLettering``. SIGTERM stops the queries cleanly.
"""

import logging
import signal
import time
from dataclasses import dataclass
from types import FrameType

import redis
from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from prometheus_client import start_http_server
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming.query import StreamingQuery

from streamguard.contracts.registry import RegistryError, SchemaRegistry
from streamguard.workloads.streaming import job
from streamguard.workloads.streaming.decode import WriterSchemas, unknown_ids
from streamguard.workloads.streaming.metrics import StreamMetrics
from streamguard.workloads.streaming.offsets import Start, TopicMissingError, TopicProbe, plan_start
from streamguard.workloads.streaming.plan import StreamPlan
from streamguard.workloads.streaming.progress import (
    QUERY_FAILED,
    REGISTRY_UNAVAILABLE,
    RUNNING,
    SCHEMA_ID_UNKNOWN,
    TOPIC_MISSING,
    BatchReport,
    DeadLetterRate,
    ProgressTracker,
)
from streamguard.workloads.streaming.schemas import SchemaResolver
from streamguard.workloads.streaming.sink import RedisSink
from streamguard.workloads.streaming.status import ConditionReporter

log = logging.getLogger(__name__)
POLL_S = 1.0
PROGRESS_LOG_S = 30.0
PARTITIONS_REFRESH_S = 30.0
MAX_BACKOFF_S = 30.0
RESOLVE_MAX_BACKOFF_S = 15.0
UNKNOWN_RECHECK_S = 10.0
"""How often ids dead-lettered as unknown to the registry are looked up again."""
KNOWN_AGAIN = "writer schema id(s) known to the registry again"


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Endpoints:
    kafka_bootstrap: str
    registry_url: str
    redis_url: str


def ensure_dead_letter_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    future = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic]
    try:
        future.result(timeout=30)
    except KafkaException as error:
        if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise


def first_line(text: str) -> str:
    return text.strip().splitlines()[0][:2000] if text.strip() else text


class StreamRunner:
    def __init__(self, plan: StreamPlan, endpoints: Endpoints) -> None:
        self.plan = plan
        self.endpoints = endpoints
        self.metrics = StreamMetrics(plan.namespace, plan.name, plan.view)
        self.reporter = ConditionReporter(plan.namespace, plan.name, plan.generation)
        self.sink = RedisSink(redis.Redis.from_url(endpoints.redis_url), plan)
        self.schemas = WriterSchemas()
        self.resolver = SchemaResolver(SchemaRegistry(endpoints.registry_url), plan, self.schemas,
                                       plan.unknown_schema_grace_ms / 1000)
        self.probe = TopicProbe(endpoints.kafka_bootstrap, plan.topic)
        self.tracker = ProgressTracker(None, None, DeadLetterRate(plan.dead_letter_max_ratio,
                                                                  plan.dead_letter_window_ms))
        self._stopping = False
        self._queries: list[StreamingQuery] = []
        self._partitions: list[int] = []
        self._partitions_at = 0.0
        self._subject_resolved = False
        self._last_write = ""
        self._next_publish = 0.0
        self._next_recheck = 0.0

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the current batch", signum)
        self._stopping = True

    def _write_windows(self, frame: DataFrame, batch_id: int) -> None:
        started = time.monotonic()
        columns = job.arrow_columns(frame)
        computed = time.monotonic()
        written = self.sink.write(columns)
        self.metrics.windows_written.inc(written)
        self._last_write = (f"batch {batch_id} wrote {written} windows (Spark {computed - started:.2f}s, "
                            f"Redis {time.monotonic() - computed:.2f}s)")

    def _write_dead_letters(self, frame: DataFrame, batch_id: int) -> None:
        records, reasons = job.write_dead_letters(frame, self.endpoints.kafka_bootstrap, self.plan.dead_letter_topic)
        sent = sum(reasons.values())
        if sent:
            log.warning("batch %d: %d of %d records sent to %s (%s)", batch_id, sent, records,
                        self.plan.dead_letter_topic, ", ".join(f"{r}: {n}" for r, n in sorted(reasons.items())))
            self.metrics.dead_letters.inc(sent)
        self.tracker.dead_letters.add(now_ms(), records, reasons)

    # -- the progress record and the condition ------------------------------------------------------------

    def _publish(self) -> None:
        """Write the progress record and, when it changed, the condition (at most once per poll)."""
        if time.monotonic() < self._next_publish:
            return
        self._next_publish = time.monotonic() + POLL_S
        now = now_ms()
        record = self.tracker.record(now)
        try:
            self.sink.publish(record)
        except redis.RedisError as error:
            log.warning("could not write the progress record: %s", error)
        if record.lag is not None:
            self.metrics.lag.set(record.lag)
        if record.progress_at_ms is not None:
            self.metrics.progress.set(record.progress_at_ms / 1000)
        condition = self.tracker.condition(now)
        if condition is not None:
            self.reporter.report(*condition)
        elif self.tracker.active and self.tracker.seen_batch:
            self.reporter.report("True", RUNNING, self._running_message())

    def _fail(self, reason: str, message: str) -> None:
        self.tracker.fail(reason, message)
        self._next_publish = 0.0
        self._publish()

    def _wait(self, seconds: float) -> None:
        """Sleep, still writing the progress record (the job is alive, and says why it is not progressing)."""
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            self._publish()
            time.sleep(0.2)

    # -- before the queries start -------------------------------------------------------------------------

    def _prepare(self) -> Start | None:
        """Wait until the topic exists and the subject's schema ids are resolved; the start position.
        ``None`` when a stop was requested meanwhile."""
        backoff = 1.0
        while not self._stopping:
            try:
                self._partitions = self.probe.partitions()
                self._partitions_at = time.monotonic()
                ensure_dead_letter_topic(self.endpoints.kafka_bootstrap, self.plan.dead_letter_topic)
                if not self._subject_resolved:
                    self.resolver.resolve(self.resolver.subject_ids())
                    self._subject_resolved = True
                start = plan_start(self.plan, self.probe, self._partitions, now_ms())
                if self.tracker.complete_from_ms != start.complete_from_ms:
                    log.info("windows complete from event time %d on", start.complete_from_ms)
                self.tracker.complete_from_ms = start.complete_from_ms
                return start
            except TopicMissingError as error:
                self._fail(TOPIC_MISSING, f"{error}: waiting for it")
            except RegistryError as error:
                self._fail(REGISTRY_UNAVAILABLE, f"reading the writer schemas of subject {self.plan.subject}: "
                                                 f"{error} (retrying)")
            except KafkaException as error:
                self._fail(QUERY_FAILED, f"Kafka unavailable: {error} (retrying)")
            log.warning("not starting yet: %s", self.tracker.failure.message if self.tracker.failure else "")
            self._wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
        return None

    def _resolve(self, ids: set[int]) -> bool:
        """Resolve newly met writer schema ids, retrying with backoff while the registry is unreachable or
        does not know them yet (within the grace period). False when a stop was requested meanwhile."""
        backoff = 1.0
        while not self._stopping:
            try:
                pending = self.resolver.resolve(ids)
            except RegistryError as error:
                self._fail(REGISTRY_UNAVAILABLE, f"resolving writer schema id(s) {sorted(ids)}: {error} "
                                                 "(retrying; nothing is dead-lettered)")
            else:
                if not pending:
                    return True
                ids = pending
                grace = int(self.resolver.grace_s)
                self._fail(SCHEMA_ID_UNKNOWN,
                           f"writer schema id(s) {', '.join(map(str, sorted(pending)))} unknown to the registry: "
                           f"looking again for up to {grace}s before their records go to "
                           f"{self.plan.dead_letter_topic}")
            log.warning("%s (next look in %.0fs)", self.tracker.failure.message if self.tracker.failure else "",
                        backoff)
            self._wait(min(backoff, max(0.5, min(self.resolver.grace_left(i) for i in ids) + 0.1)))
            backoff = min(backoff * 2, RESOLVE_MAX_BACKOFF_S)
        return False

    # -- running ------------------------------------------------------------------------------------------

    def _start(self, spark: SparkSession, start: Start) -> None:
        bootstrap = self.endpoints.kafka_bootstrap
        self._queries = [
            job.start_windows(spark, self.plan, bootstrap, self.schemas, self._write_windows,
                              start.starting_timestamp_ms),
            job.start_dead_letters(spark, self.plan, bootstrap, self.schemas, self._write_dead_letters,
                                   start.starting_timestamp_ms),
        ]
        self.tracker.started()

    def _stop(self) -> None:
        for query in self._queries:
            try:
                query.stop()
            except Exception as error:  # a failed query (or a gone JVM) may refuse to stop
                log.debug("stopping a query: %s", error)
        self._queries = []

    def _running_message(self) -> str:
        ids = ", ".join(str(i) for i in sorted(self.schemas.readable)) or "none yet"
        return (f"consuming {self.plan.topic} into {self.plan.view} "
                f"({len(self.plan.windows)} windows; writer schema ids {ids})")

    def _check_end_offsets(self) -> None:
        """Lag against the topic's end offsets now (a quiet, caught-up topic is progress)."""
        try:
            if time.monotonic() - self._partitions_at > PARTITIONS_REFRESH_S:
                self._partitions = self.probe.partitions()
                self._partitions_at = time.monotonic()
            checked_at = now_ms()
            end = self.probe.end_offsets(self._partitions)
        except (KafkaException, TopicMissingError) as error:
            log.debug("end offsets of %s: %s", self.plan.topic, error)
            self.tracker.probe_error = f"cannot read the end offsets of {self.plan.topic}: {error}"
            return
        self.tracker.on_end_offsets(checked_at, end, now_ms())

    def _supervise(self) -> str | None:
        """Poll until a query ends (returns its error text) or a stop is requested (returns None)."""
        next_log = time.monotonic() + PROGRESS_LOG_S
        while not self._stopping:
            for query in self._queries:
                if not query.isActive:
                    error = query.exception()
                    return str(error) if error is not None else f"query {query.name} terminated"
            for progress in self.metrics.observe_all(self._queries[0].recentProgress):
                self.tracker.on_batch(BatchReport.of(progress, self.plan.topic), now_ms())
            self._check_end_offsets()
            self._publish()
            known = self._recheck_unknown()
            if known:
                return f"{KNOWN_AGAIN}: {', '.join(map(str, sorted(known)))}"
            if time.monotonic() >= next_log and self.metrics.last_summary:
                log.info("%s; %s", self.metrics.last_summary, self._last_write)
                next_log = time.monotonic() + PROGRESS_LOG_S
            time.sleep(POLL_S)
        return None

    def _recheck_unknown(self) -> set[int]:
        """Ids dead-lettered as unknown that the registry knows again (looked up every ``UNKNOWN_RECHECK_S``)."""
        if not self.schemas.unknown or time.monotonic() < self._next_recheck:
            return set()
        self._next_recheck = time.monotonic() + UNKNOWN_RECHECK_S
        try:
            return self.resolver.recheck_unknown()
        except RegistryError as error:
            log.debug("looking unknown schema ids up again: %s", error)
            return set()

    def _failed(self, outcome: str) -> None:
        """Report a query failure: ``TopicMissing`` when the topic is gone, else ``QueryFailed``."""
        try:
            self.probe.partitions()
        except TopicMissingError as error:
            self._fail(TOPIC_MISSING, f"{error} (the query stopped; waiting for it)")
            return
        except KafkaException:
            pass
        self._fail(QUERY_FAILED, f"{first_line(outcome)} (restarting from the checkpoint)")

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        start_http_server(self.plan.metrics_port, registry=self.metrics.registry)
        log.info("metrics on :%d/metrics", self.plan.metrics_port)
        try:
            previous = self.sink.previous()
        except redis.RedisError as error:
            log.warning("could not read the previous progress record: %s", error)
            previous = None
        self.tracker = ProgressTracker(previous, None, self.tracker.dead_letters)
        self._publish()
        spark = job.spark_session(f"streamguard-{self.plan.namespace}-{self.plan.name}")
        backoff = 1.0
        while not self._stopping:
            start = self._prepare()
            if start is None:
                break
            try:
                self._start(spark, start)
                outcome = self._supervise()
            except Exception as error:  # starting can fail while Kafka is away; retried below
                outcome = f"{type(error).__name__}: {error}"
            self._stop()
            if outcome is None:
                break
            if outcome.startswith(KNOWN_AGAIN):
                log.info("%s: restarting from the checkpoint to decode their records", outcome)
                self.metrics.restarted("schema-id-known-again")
                backoff = 1.0
                continue
            fresh = unknown_ids(outcome) - set(self.schemas.known())
            if fresh:
                log.info("new writer schema id(s) %s: resolving and restarting from the checkpoint", sorted(fresh))
                self.tracker.fail(SCHEMA_ID_UNKNOWN, f"resolving writer schema id(s) {sorted(fresh)}")
                self.metrics.restarted("new-schema-id")
                if not self._resolve(fresh):
                    break
                backoff = 1.0
                continue
            log.error("streaming query failed, restarting from the checkpoint in %.0fs: %s", backoff,
                      first_line(outcome))
            self._failed(outcome)
            self.metrics.restarted("failure")
            self._wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
        self.tracker.fail("Stopped", f"stopped consuming {self.plan.topic}")
        self._next_publish = 0.0
        self._publish()
        try:
            spark.stop()
        except Exception as error:  # the JVM may already be gone on shutdown
            log.debug("stopping Spark: %s", error)
        return 0
