"""The driver of the streaming job: starts the two queries, supervises them, and never dies of bad input.

A query that fails because it met a writer schema id it has not resolved yet is restarted from its
checkpoint once the id is resolved (readable: decoded from then on; unknown to the registry or not
readable with the job's contract: dead-lettered). Any other failure (Kafka or Redis unavailable, ...) is
reported in the ``StreamRunning`` condition and retried with backoff, again from the checkpoint: the
failed batch is replayed and its writes are idempotent. SIGTERM stops the queries cleanly.
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

from streamguard.contracts.compatibility import can_read, explain
from streamguard.contracts.registry import SchemaRegistry
from streamguard.workloads.streaming import job
from streamguard.workloads.streaming.decode import WriterSchemas, unknown_ids
from streamguard.workloads.streaming.metrics import StreamMetrics
from streamguard.workloads.streaming.plan import StreamPlan
from streamguard.workloads.streaming.sink import RedisSink
from streamguard.workloads.streaming.status import ConditionReporter

log = logging.getLogger(__name__)
POLL_S = 1.0
PROGRESS_LOG_S = 30.0
MAX_BACKOFF_S = 30.0


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


def resolve_ids(registry: SchemaRegistry, plan: StreamPlan, ids: set[int], schemas: WriterSchemas) -> None:
    """Sort ``ids`` into readable (with their writer schema) and dead."""
    for schema_id in sorted(ids):
        writer = registry.schema_by_id(schema_id)
        if writer is None:
            log.warning("schema id %d is unknown to the registry: its records go to %s", schema_id,
                        plan.dead_letter_topic)
            schemas.dead.add(schema_id)
            continue
        problems = can_read(plan.reader_schema, writer)
        if problems:
            log.warning("schema id %d cannot be read with the contract of %s (%s): its records go to %s",
                        schema_id, plan.ref, explain(problems), plan.dead_letter_topic)
            schemas.dead.add(schema_id)
        else:
            log.info("writer schema id %d resolved", schema_id)
            schemas.readable[schema_id] = writer


def subject_ids(registry: SchemaRegistry, subject: str) -> set[int]:
    return {s.id for s in registry.history(subject)}


class StreamRunner:
    def __init__(self, plan: StreamPlan, endpoints: Endpoints) -> None:
        self.plan = plan
        self.endpoints = endpoints
        self.metrics = StreamMetrics(plan.namespace, plan.name, plan.view)
        self.reporter = ConditionReporter(plan.namespace, plan.name, plan.generation)
        self.sink = RedisSink(redis.Redis.from_url(endpoints.redis_url), plan)
        self.registry = SchemaRegistry(endpoints.registry_url)
        self.schemas = WriterSchemas()
        self._stopping = False
        self._queries: list[StreamingQuery] = []
        self._last_write = ""

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
        sent = job.write_dead_letters(frame, self.endpoints.kafka_bootstrap, self.plan.dead_letter_topic)
        if sent:
            log.warning("batch %d: %d undecodable records sent to %s", batch_id, sent, self.plan.dead_letter_topic)
            self.metrics.dead_letters.inc(sent)

    def _start(self, spark: SparkSession) -> None:
        bootstrap = self.endpoints.kafka_bootstrap
        self._queries = [
            job.start_windows(spark, self.plan, bootstrap, self.schemas, self._write_windows),
            job.start_dead_letters(spark, self.plan, bootstrap, self.schemas, self._write_dead_letters),
        ]

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

    def _supervise(self) -> str | None:
        """Poll until a query ends (returns its error text) or a stop is requested (returns None)."""
        running_reported = False
        next_log = time.monotonic() + PROGRESS_LOG_S
        while not self._stopping:
            for query in self._queries:
                if not query.isActive:
                    error = query.exception()
                    return str(error) if error is not None else f"query {query.name} terminated"
            windows = self._queries[0]
            self.metrics.observe_all(windows.recentProgress)
            self.sink.heartbeat(self.metrics.last_batch_id, self.metrics.last_watermark_ms)
            if time.monotonic() >= next_log and self.metrics.last_summary:
                log.info("%s; %s", self.metrics.last_summary, self._last_write)
                next_log = time.monotonic() + PROGRESS_LOG_S
            if not running_reported and self.metrics.last_batch_id is not None:
                self.reporter.report("True", "Running", self._running_message())
                running_reported = True
            time.sleep(POLL_S)
        return None

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        start_http_server(self.plan.metrics_port, registry=self.metrics.registry)
        log.info("metrics on :%d/metrics", self.plan.metrics_port)
        ensure_dead_letter_topic(self.endpoints.kafka_bootstrap, self.plan.dead_letter_topic)
        resolve_ids(self.registry, self.plan, subject_ids(self.registry, self.plan.subject), self.schemas)
        spark = job.spark_session(f"streamguard-{self.plan.namespace}-{self.plan.name}")
        backoff = 1.0
        while not self._stopping:
            try:
                self._start(spark)
                outcome = self._supervise()
            except Exception as error:  # starting can fail while Kafka is away; retried below
                outcome = f"{type(error).__name__}: {error}"
            self._stop()
            if outcome is None:
                break
            fresh = unknown_ids(outcome) - set(self.schemas.known())
            if fresh:
                log.info("new writer schema id(s) %s: resolving and restarting from the checkpoint", sorted(fresh))
                resolve_ids(self.registry, self.plan, fresh, self.schemas)
                self.metrics.restarted("new-schema-id")
                backoff = 1.0
                continue
            first_line = outcome.strip().splitlines()[0][:2000] if outcome.strip() else outcome
            log.error("streaming query failed, restarting from the checkpoint in %.0fs: %s", backoff, first_line)
            self.reporter.report("False", "QueryFailed", f"{first_line} (restarting from the checkpoint)")
            self.metrics.restarted("failure")
            self._sleep(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
        self.reporter.report("False", "Stopped", f"stopped consuming {self.plan.topic}")
        try:
            spark.stop()
        except Exception as error:  # the JVM may already be gone on shutdown
            log.debug("stopping Spark: %s", error)
        return 0

    def _sleep(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while not self._stopping and time.monotonic() < deadline:
            time.sleep(0.2)
