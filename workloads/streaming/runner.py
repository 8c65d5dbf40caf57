"""The driver of the streaming job: starts the two queries, supervises them, never dies of bad input, and
writes the progress record (``window_layout.StreamProgress``) and the ``StreamRunning`` condition.

* Before the queries start: Redis must answer (else ``StoreUnavailable``), the topic must exist (else
  ``TopicMissing``; an unreachable broker: ``KafkaUnavailable``), the subject's schema ids are resolved (an
  unreachable registry: ``RegistryUnavailable``), each asked again every ``PROBE_S``, and a job without a
  checkpoint gets its start position (``offsets.plan_start``).
* A query that fails because it met a writer schema id it has not resolved yet is restarted from its
  checkpoint once the id is resolved (``schemas.SchemaResolver``: unknown ids are looked up again for a grace
  period, ``SchemaIdUnknown``, before they become dead letters). Until then nothing is committed or
  dead-lettered and the job makes no progress.
* A schema id's verdict (readable, unknown, unreadable) changes only when the queries start, and only for
  records after the last batch either query planned (``verdicts``): every record is either counted by the
  windows query or sent by the dead-letter query, once, however the two lag and restart.
* The checkpoint may live on an object store (``checkpoint``). One that cannot be reached keeps the queries
  from starting (``CheckpointUnavailable``, asked again every ``PROBE_S``); while they run it is asked every
  poll, and the job makes no progress while it is away (the queries fail on it and restart from the
  checkpoint once it answers).
* Every windows batch checks the online store's generation and re-seeds the open windows when the store lost
  them (``reseed``). A batch the store fails (out of memory: ``StoreFull``; unreachable: ``StoreUnavailable``;
  the generation ended during a re-seed: ``StoreChanged``) commits nothing and is retried with backoff.
* A query that failed because Kafka or Redis is away restarts from its checkpoint as soon as ``_prepare``
  finds the dependency back. Any other failure is ``QueryFailed`` and retried with backoff, again from the
  checkpoint: the failed batch is replayed and its writes are idempotent.
* The values wait for the windows query, so it goes first: the dead-letter query starts after the windows
  query's first batch, and each dead-letter batch waits (at most ``DEAD_LETTERS_HOLD_S``) until the windows
  query has written the records it reads and every batch it planned. It then reads and decodes only the records
  no clean windows batch covered (``clean_ranges``), usually none.
* While running, every poll reads the topic's end offsets (lag) and dead letters above the threshold are
  ``DeadLettering``. SIGTERM stops the queries cleanly.
"""

import json
import logging
import signal
import threading
import time
from dataclasses import dataclass, field
from types import FrameType

from confluent_kafka import KafkaError, KafkaException
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from prometheus_client import start_http_server
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming.query import StreamingQuery

from streamguard.clientsecurity import KafkaEndpoint, RegistrySecurity
from streamguard.contracts.registry import RegistryError, SchemaRegistry
from streamguard.jobspec import spark_on_kubernetes
from streamguard.onlinestore.client import ERRORS, UNREACHABLE, connect, store_url
from streamguard.workloads.streaming import checkpoint, driver, job, reseed
from streamguard.workloads.streaming.checkpoint import CheckpointUnavailableError
from streamguard.workloads.streaming.clean_ranges import CleanRanges, Ranges, proof_of
from streamguard.workloads.streaming.decode import WriterSchemas, unknown_ids
from streamguard.workloads.streaming.metrics import StreamMetrics
from streamguard.workloads.streaming.offsets import (
    ADMIN_CONFIG,
    DEAD_LETTERS,
    WINDOWS,
    Start,
    TopicMissingError,
    TopicProbe,
    batch_end_offsets,
    late_watermark,
    plan_start,
    planned_ends,
    reached,
    replace_stale_state,
)
from streamguard.workloads.streaming.panes import NEVER
from streamguard.workloads.streaming.plan import StreamPlan
from streamguard.workloads.streaming.progress import (
    CHECKPOINT_UNAVAILABLE,
    KAFKA_UNAVAILABLE,
    QUERY_FAILED,
    REGISTRY_UNAVAILABLE,
    RUNNING,
    SCHEMA_ID_UNKNOWN,
    SPARK_UNAVAILABLE,
    STORE_CHANGED,
    STORE_FULL,
    STORE_UNAVAILABLE,
    TOPIC_MISSING,
    BatchReport,
    DeadLetterRate,
    ProgressTracker,
)
from streamguard.workloads.streaming.reseed import WindowSeeder
from streamguard.workloads.streaming.schemas import RECHECK_UNKNOWN_S, SchemaResolver
from streamguard.workloads.streaming.sink import FULL, RedisSink, store_failure
from streamguard.workloads.streaming.status import ConditionReporter
from streamguard.workloads.streaming.verdicts import VerdictLog, live

log = logging.getLogger(__name__)
POLL_S = 1.0
PROGRESS_LOG_S = 30.0
PARTITIONS_REFRESH_S = 30.0
MAX_BACKOFF_S = 5.0
"""Restarts after a query failed for another reason than an away dependency are at most this far apart."""
PROBE_S = 1.0
"""An away dependency (Kafka, the registry, Redis) is asked again this often: a cheap call (a refused
connection answers at once; a Kafka metadata request waits at most ``offsets.TIMEOUT_S``), so the queries
restart within about a second of its return instead of after a grown backoff."""
RESOLVE_MAX_BACKOFF_S = 5.0
"""An id the registry answers it does not know is asked for again at most this far apart."""
DEAD_LETTERS_HOLD_S = 60.0
"""A dead-letter batch waits at most this long for the windows query to have written the records it reads."""
WAITING_LOG_S = 30.0
"""While the job waits for a dependency, the same reason is logged again at most this often."""
PROOF_WAIT_S = 2.0
"""A dead-letter batch waits at most this long for the windows query's reports of the records it reads (a report
follows its batch's commit by milliseconds)."""
DEPENDENCY_AWAY = frozenset({KAFKA_UNAVAILABLE, STORE_UNAVAILABLE, TOPIC_MISSING, CHECKPOINT_UNAVAILABLE})
"""Query failures caused by an away dependency: the queries restart as soon as ``_prepare`` finds it back."""
WARM_UP_GROUP = "streamguard-warm-up"
"""Spark job group of the warm-up: cancelled when the queries start, so it never competes with their first batch."""
SCHEMAS_SETTLED = "schema ids held for unknown are known to the registry now"
"""The outcome of a supervision that stopped the queries to decode ids the registry learned meanwhile."""


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass(frozen=True)
class Endpoints:
    kafka: KafkaEndpoint
    registry_url: str
    redis_url: str
    registry_security: RegistrySecurity = field(default_factory=RegistrySecurity)


def ensure_dead_letter_topic(kafka: KafkaEndpoint, topic: str) -> None:
    admin = AdminClient(kafka.confluent(**ADMIN_CONFIG))
    future = admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])[topic]
    try:
        future.result(timeout=30)
    except KafkaException as error:
        if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise


def spark_start_failure(error: BaseException) -> str:
    """What to report when Spark did not start: the JVM's exception when there is one (py4j's own text around
    it says nothing), and where to look when the job has executors on Kubernetes."""
    java = getattr(error, "java_exception", None)
    cause = first_line(str(java) if java is not None else f"{type(error).__name__}: {error}")
    where = (" (with executors on Kubernetes, the job pod's log says why its executor pods failed)"
             if spark_on_kubernetes() else "")
    return f"Spark did not start: {cause}{where}; the pod exits and is restarted"


def first_line(text: str) -> str:
    return text.strip().splitlines()[0][:2000] if text.strip() else text


class StreamRunner:
    def __init__(self, plan: StreamPlan, endpoints: Endpoints) -> None:
        self.plan = plan
        self.endpoints = endpoints
        self.metrics = StreamMetrics(plan.namespace, plan.name, plan.view)
        self.reporter = ConditionReporter(plan.namespace, plan.name, plan.generation)
        store_url(endpoints.redis_url)  # a bad URL fails the start; its server may be away (``sink``)
        self._sink: RedisSink | None = None
        self._seeder: WindowSeeder | None = None
        self._store_failure: tuple[str, str] | None = None
        """Why the last windows batch failed on the store: ``(reason, message)`` for the condition."""
        self.checkpoint = checkpoint.at(plan.checkpoint_dir)
        self.verdicts = VerdictLog()
        self._verdicts_loaded = False
        """The log is read from the checkpoint before the queries first start (``_prepare``: it may be away)."""
        self.schemas = WriterSchemas()
        registry = SchemaRegistry(endpoints.registry_url, security=endpoints.registry_security)
        self.resolver = SchemaResolver(registry, plan, self.schemas, plan.unknown_schema_grace_ms / 1000)
        self.probe = TopicProbe(endpoints.kafka, plan.topic)
        self.tracker = ProgressTracker(None, None, DeadLetterRate(plan.dead_letter_max_ratio,
                                                                  plan.dead_letter_window_ms))
        self._stopping = False
        self._queries: dict[str, StreamingQuery] = {}
        self._windows_start: Start | None = None
        """The start position the running windows query was started with (the dead-letter query's too)."""
        self._partitions: list[int] = []
        self._partitions_at = 0.0
        self._subject_resolved = False
        self._last_write = ""
        self._next_publish = 0.0
        self._next_recheck = 0.0
        self._waiting_logged: tuple[str, float] = ("", 0.0)
        self._warm_up: threading.Thread | None = None
        self._warm_up_done = threading.Event()
        """Set when the queries start: the warm-up runs no further step."""
        self._windows_written: dict[int, int] = {}
        """Partition -> end offset of the last windows batch written to the store."""
        self.clean = CleanRanges()
        self._proofs_through: tuple[str, int] = ("", -1)
        """``(run id, batch id)`` of the newest windows report taken into :attr:`clean`."""
        self._dead_letter_schemas = WriterSchemas()
        """The schemas the dead-letter query started with (the windows query's: both start on a change)."""

    @property
    def sink(self) -> RedisSink:
        """The online store's writer, its client made on first use: a Redis Cluster's client reads the slot table
        when it is made, so while no node answers this raises (one of ``UNREACHABLE``) and the next use tries
        again, the job reporting ``StoreUnavailable`` meanwhile as for one server."""
        if self._sink is None:
            self._sink = RedisSink(connect(self.endpoints.redis_url), self.plan)
        return self._sink

    @property
    def seeder(self) -> WindowSeeder:
        if self._seeder is None:
            self._seeder = WindowSeeder(self.sink.client, self.plan)
        return self._seeder

    def _on_signal(self, signum: int, _frame: FrameType | None) -> None:
        log.info("signal %d: stopping after the current batch", signum)
        self._stopping = True

    def _write_windows(self, frame: DataFrame, batch_id: int) -> None:
        """One batch: the generation check (and a re-seed when needed), the batch's windows, the coverage.
        A store error fails the batch (nothing committed) and is remembered for the condition."""
        started = time.monotonic()
        try:
            generation = self.seeder.check(now_ms())
            reseeded = None if generation is None else (generation, self._reseed(frame.sparkSession, batch_id))
            seeded = time.monotonic()
            floor = self.seeder.floor_ms if reseeded is None or batch_id == 0 else reseeded[1]
            written, missed = job.write_windows(frame, self.plan, self.endpoints.redis_url,
                                                late_watermark(self.plan.checkpoint_dir, batch_id), floor)
            if reseeded is not None:
                since = self.seeder.commit(*reseeded, replayed=batch_id > 0)
                log.info("batch %d: windows of %s whole in the store's generation %s since event time %d",
                         batch_id, self.plan.view, reseeded[0], since)
            if written or reseeded is not None:
                self.sink.count_written()
        except reseed.GenerationEndedError as error:
            self._store_failure = (STORE_CHANGED, str(error))
            raise
        except Exception as error:
            failure = store_failure(error)
            if failure is not None:
                kind, detail = failure
                self._store_failure = (
                    (STORE_FULL, f"Redis refused a write for lack of memory (OOM {detail}); the batch failed and "
                                 "is retried, no offsets committed and no progress. Raise maxmemory or free "
                                 "memory (docs/online-store.md, sizing)") if kind == FULL else
                    (STORE_UNAVAILABLE, f"Redis unreachable ({detail}); the batch failed and is retried, no "
                                        "offsets committed and no progress"))
            raise
        self.metrics.windows_written.inc(written)
        self.metrics.late_windows.inc(missed)
        self._windows_written = batch_end_offsets(self.plan.checkpoint_dir, batch_id, self.plan.topic)
        self._last_write = (f"batch {batch_id} wrote {written} windows (re-seed check {seeded - started:.2f}s, "
                            f"Spark and Redis {time.monotonic() - seeded:.2f}s)")

    def _reseed(self, spark: SparkSession, batch_id: int) -> int:
        """Rewrite every open window whole before the batch writes (``reseed``); the coverage's ``since``."""
        complete = self.tracker.complete_from_ms
        if batch_id == 0:
            return complete or 0  # a new checkpoint: the stream's state holds everything since its start
        began = time.monotonic()
        since = reseed.replay_since(self.plan, now_ms(), complete)
        end = batch_end_offsets(self.plan.checkpoint_dir, batch_id, self.plan.topic)
        ranges = reseed.replay_ranges(self.probe.offsets_for_time(sorted(end), since), end)
        replay = job.arrow_columns(job.replay_panes(spark, self.plan, self.endpoints.kafka, self.schemas, ranges))
        written, _ = self.sink.write_panes(reseed.starting_from(replay, since), NEVER, since)
        seconds = time.monotonic() - began
        self.metrics.reseeded(seconds)
        log.info("batch %d: re-seeded %d windows of %s from %d records (event time %d on) in %.1fs", batch_id,
                 written, self.plan.view, sum(e - s for s, e in ranges.values()), since, seconds)
        return since

    def _write_dead_letters(self, frame: DataFrame, batch_id: int) -> None:
        """One dead-letter batch: the records no clean windows batch covered are read again as one range per
        partition and decoded; the first batch of a checkpoint (its start is not in the offset log) is read whole."""
        self._hold_dead_letters(batch_id)
        span = self._dead_letter_span(batch_id)
        source: DataFrame | None = frame
        if span is not None:
            self._learn_clean(span)
            unproven = self.clean.unproven(span)
            source = (job.kafka_range(frame.sparkSession, self.plan, self.endpoints.kafka, unproven)
                      if unproven else None)
        read, reasons = (0, {}) if source is None else job.write_dead_letters(
            source, self._dead_letter_schemas, self.plan, self.endpoints.kafka)
        records = read if span is None else sum(end - start for start, end in span.values())
        if span is not None:
            self.clean.forget_below({p: end for p, (_, end) in span.items()})
        self.metrics.dead_letter_checked.inc(records)
        self.metrics.dead_letter_reread.inc(read)
        sent = sum(reasons.values())
        if sent:
            log.warning("batch %d: %d of %d records sent to %s (%s)", batch_id, sent, records,
                        self.plan.dead_letter_topic, ", ".join(f"{r}: {n}" for r, n in sorted(reasons.items())))
            self.metrics.dead_letters.inc(sent)
        self.tracker.dead_letters.add(now_ms(), records, reasons)

    def _dead_letter_span(self, batch_id: int) -> Ranges | None:
        """Partition -> ``[start, end)`` of dead-letter batch ``batch_id`` from the offset log; ``None`` for the
        first batch of a checkpoint, or a partition new since the previous batch."""
        end = batch_end_offsets(self.plan.checkpoint_dir, batch_id, self.plan.topic, DEAD_LETTERS)
        try:
            start = batch_end_offsets(self.plan.checkpoint_dir, batch_id - 1, self.plan.topic, DEAD_LETTERS)
        except FileNotFoundError:
            return None
        if not set(end) <= set(start):
            return None
        return {partition: (start[partition], offset) for partition, offset in end.items()}

    def _learn_clean(self, span: Ranges) -> None:
        """Take in the windows query's progress reports, waiting at most ``PROOF_WAIT_S`` for those that reach
        the end of ``span``."""
        ends = {partition: end for partition, (_, end) in span.items()}
        deadline = time.monotonic() + PROOF_WAIT_S
        while True:
            query = self._queries.get(WINDOWS)
            for report in query.recentProgress if query is not None else []:
                mark = (str(report.runId), report.batchId)
                if mark[0] == self._proofs_through[0] and mark[1] <= self._proofs_through[1]:
                    continue
                self._proofs_through = mark
                proof = proof_of(json.loads(report.json), self.plan.topic)
                if proof is not None:
                    self.clean.add(*proof)
            if query is None or self._stopping or reached(self.clean.seen, ends) or time.monotonic() >= deadline:
                return
            time.sleep(0.05)

    def _hold_dead_letters(self, batch_id: int) -> None:
        """Hold dead-letter batch ``batch_id`` (before it computes anything) while the windows query has not
        written every record this batch reads, or has planned a batch it has not written yet: at most
        ``DEAD_LETTERS_HOLD_S``, and only while both queries run. After a start or a Kafka outage both queries
        have a batch to run at once; Spark's task slots (``local[2]``) then go to the windows batch, which the
        values wait for, instead of being shared with the dead letters."""
        wanted = batch_end_offsets(self.plan.checkpoint_dir, batch_id, self.plan.topic, DEAD_LETTERS)
        began = time.monotonic()
        while not self._stopping and {WINDOWS, DEAD_LETTERS} <= self._queries.keys():
            planned = planned_ends(self.plan.checkpoint_dir, self.plan.topic, (WINDOWS,))
            if reached(self._windows_written, wanted, planned) or time.monotonic() - began >= DEAD_LETTERS_HOLD_S:
                break
            time.sleep(0.2)
        if time.monotonic() - began >= 1.0:
            log.info("dead-letter batch %d waited %.1fs for the windows query", batch_id, time.monotonic() - began)

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
        except ERRORS as error:
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

    def _log_waiting(self, prefix: str) -> None:
        """Log why the job waits, when the reason changed or ``WAITING_LOG_S`` after it was last logged."""
        message = self.tracker.failure.message if self.tracker.failure else ""
        last, at = self._waiting_logged
        if message != last or time.monotonic() - at >= WAITING_LOG_S:
            log.warning("%s: %s", prefix, message)
            self._waiting_logged = (message, time.monotonic())

    def _warm(self, spark: SparkSession) -> None:
        """When the job has to wait for a dependency before its queries ever started, warm Spark up meanwhile
        (``job.warm_up``, once), in the background: the job goes on asking the dependency and writing its
        progress record. ``_start`` cancels what is left of it."""
        if self._warm_up is not None or self._windows_start is not None:
            return
        schemas = self.schemas.copy()

        def run() -> None:
            began = time.monotonic()
            spark.sparkContext.setJobGroup(WARM_UP_GROUP, "warming up while the job waits", interruptOnCancel=True)
            try:
                job.warm_up(spark, self.plan, schemas, self.endpoints.redis_url,
                            lambda: not self._warm_up_done.is_set())
            except Exception as error:  # only an optimisation (or cancelled): the queries start as they are
                log.info("warm-up ended after %.1fs: %s", time.monotonic() - began, first_line(str(error)))
                return
            log.info("warm-up done in %.1fs", time.monotonic() - began)

        self._warm_up = threading.Thread(target=run, name="warm-up", daemon=True)
        self._warm_up.start()

    def _prepare(self, spark: SparkSession) -> Start | None:
        """Wait until Kafka and Redis answer, the topic exists and the subject's schema ids are resolved
        (each asked again every ``PROBE_S``, Spark warming up meanwhile); the start position. ``None`` when a
        stop was requested meanwhile."""
        while not self._stopping:
            try:
                self.sink.client.ping()
                self._partitions = self.probe.partitions()
                self._partitions_at = time.monotonic()
                ensure_dead_letter_topic(self.endpoints.kafka, self.plan.dead_letter_topic)
                if not self._subject_resolved:
                    self.resolver.resolve(self.resolver.subject_ids())
                    self._subject_resolved = True
                self.checkpoint.probe()
                replace_stale_state(self.plan)
                if not self._verdicts_loaded:
                    self.verdicts = VerdictLog.load(self.plan.checkpoint_dir)
                    self.schemas.segments = self.verdicts.segments
                    self._verdicts_loaded = True
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
                self._fail(KAFKA_UNAVAILABLE, f"Kafka unavailable: {error} (retrying)")
            except UNREACHABLE as error:
                self._fail(STORE_UNAVAILABLE, f"Redis unreachable ({error}): waiting for it before starting the "
                                              "queries, no progress")
            except CheckpointUnavailableError as error:
                self._fail(CHECKPOINT_UNAVAILABLE, f"{error}: waiting for it before starting the queries, "
                                                   "no progress")
            self._log_waiting("not starting yet")
            self._warm(spark)
            self._wait(PROBE_S)
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
                self._log_waiting("not restarting yet")
                self._wait(PROBE_S)
                continue
            else:
                if not pending:
                    return True
                ids = pending
                grace = int(self.resolver.grace_s)
                self._fail(SCHEMA_ID_UNKNOWN,
                           f"writer schema id(s) {', '.join(map(str, sorted(pending)))} unknown to the registry: "
                           f"looking again for up to {grace}s before their records go to "
                           f"{self.plan.dead_letter_topic}")
            self._log_waiting(f"next look in {backoff:.0f}s")
            self._wait(min(backoff, max(0.5, min(self.resolver.grace_left(i) for i in ids) + 0.1)))
            backoff = min(backoff * 2, RESOLVE_MAX_BACKOFF_S)
        return False

    # -- running ------------------------------------------------------------------------------------------

    def _start(self, spark: SparkSession, start: Start) -> None:
        """Start the windows query unless it still runs (a failure of the dead-letter query alone leaves it
        running); the dead-letter query follows in ``_start_dead_letters``. A query that ended while the job
        waited for a dependency (the same outage ended both) is restarted too."""
        self._warm_up_done.set()
        self._cancel_warm_up(spark)
        for name in [n for n, q in self._queries.items() if not q.isActive]:
            self._stop(name)  # ended by the outage the job waited for: restarts now, not reported as a failure
        if WINDOWS not in self._queries:
            self._stamp_verdicts()
            self._queries[WINDOWS] = job.start_windows(spark, self.plan, self.endpoints.kafka, self.schemas,
                                                       self._write_windows, start.starting_timestamp_ms)
            self._windows_start = start
            self._cancel_warm_up(spark)  # a Spark job the warm-up submitted while the query was being planned
        self.tracker.started()

    def _cancel_warm_up(self, spark: SparkSession) -> None:
        """Cancel the warm-up's running Spark jobs once the queries start, so their first batch has the cores."""
        if self._warm_up_done.is_set() and self._warm_up is not None and self._warm_up.is_alive():
            spark.sparkContext.cancelJobGroup(WARM_UP_GROUP)

    def _stamp_verdicts(self) -> None:
        """Before the queries start with changed verdicts: the earlier verdict of each changed id holds for the
        records below the last batch either query planned (``verdicts``), kept in the checkpoint."""
        now = live(self.schemas.readable, self.schemas.unknown, self.schemas.unreadable)
        if now == self.verdicts.started_with:
            return
        self._stop(DEAD_LETTERS)  # both queries start with the new verdicts
        stamped = self.verdicts.stamped(now, planned_ends(self.plan.checkpoint_dir, self.plan.topic,
                                                          (WINDOWS, DEAD_LETTERS)))
        for segment in stamped.segments[len(self.verdicts.segments):]:
            log.info("schema id %d: records below offsets %s keep the verdict %s the queries had for them; later "
                     "ones get the job's verdict now (%s)", segment.schema_id, dict(segment.until),
                     segment.verdict.kind, now[segment.schema_id].kind if segment.schema_id in now else "unresolved")
        stamped.save(self.plan.checkpoint_dir)
        self.verdicts = stamped
        self.schemas.segments = stamped.segments

    def _start_dead_letters(self, spark: SparkSession, windows_reports: int) -> None:
        """Start the dead-letter query once the windows query has finished a trigger since it started: the
        first batch after a start or an outage, which the values wait for, has the cores to itself. It starts
        from the windows query's start position (Spark ignores it once there is a checkpoint)."""
        if DEAD_LETTERS in self._queries or not windows_reports or self._windows_start is None:
            return
        self._dead_letter_schemas = self.schemas.copy()
        self._queries[DEAD_LETTERS] = job.start_dead_letters(
            spark, self.plan, self.endpoints.kafka, self._write_dead_letters, self._windows_start.starting_timestamp_ms)

    def _stop(self, name: str | None = None) -> None:
        """Stop the query ``name``, or both (all leave ``_queries`` first: a held dead-letter batch lets go)."""
        names = [name] if name is not None else list(self._queries)
        stopping = [self._queries.pop(key) for key in names if key in self._queries]
        for query in stopping:
            try:
                query.stop()
            except Exception as error:  # a failed query (or a gone JVM) may refuse to stop
                log.debug("stopping a query: %s", error)

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
            self.tracker.probe_error = f"Kafka unavailable: cannot read the end offsets of {self.plan.topic}: {error}"
            return
        self.tracker.on_end_offsets(checked_at, end, now_ms())

    def _check_checkpoint(self) -> None:
        """Whether the checkpoint's object store answers now (no progress while it does not)."""
        try:
            self.checkpoint.probe()
        except CheckpointUnavailableError as error:
            self.tracker.checkpoint_error = f"{error} (no progress until it is back)"
            return
        self.tracker.checkpoint_error = None

    def _settled_unknown(self) -> bool:
        """Whether an id dead-lettered as unknown is known to the registry now (asked every
        ``RECHECK_UNKNOWN_S``; an unreachable registry is asked again next time)."""
        if not self.schemas.unknown or time.monotonic() < self._next_recheck:
            return False
        self._next_recheck = time.monotonic() + RECHECK_UNKNOWN_S
        try:
            settled = self.resolver.recheck_unknown()
        except RegistryError as error:
            log.info("could not ask the registry again for unknown schema ids: %s", error)
            return False
        if settled:
            log.info("schema id(s) %s known to the registry now: restarting from the checkpoint to decode them "
                     "(replay their dead letters with `streamguard stream replay-dead-letters`)", sorted(settled))
        return bool(settled)

    def _supervise(self, spark: SparkSession) -> tuple[str | None, str] | None:
        """Poll until a query ends (returns which, and its error text) or a stop is requested (returns None)."""
        next_log = time.monotonic() + PROGRESS_LOG_S
        while not self._stopping:
            if self._settled_unknown():
                return None, SCHEMAS_SETTLED
            for name, query in self._queries.items():
                if not query.isActive:
                    error = query.exception()
                    return name, str(error) if error is not None else f"query {query.name} terminated"
            reports = self._queries[WINDOWS].recentProgress
            for progress in self.metrics.observe_all(reports):
                self.tracker.on_batch(BatchReport.of(progress, self.plan.topic), now_ms())
            self._start_dead_letters(spark, len(reports))
            self._cancel_warm_up(spark)  # a step still planning when the queries started submits its jobs later
            self._check_end_offsets()
            self._check_checkpoint()
            self._publish()
            if time.monotonic() >= next_log and self.metrics.last_summary:
                log.info("%s; %s", self.metrics.last_summary, self._last_write)
                next_log = time.monotonic() + PROGRESS_LOG_S
            time.sleep(POLL_S)
        return None

    def _failed(self, outcome: str) -> None:
        """Report a query failure: ``TopicMissing`` when the topic is gone, ``KafkaUnavailable`` when the broker
        does not answer, ``CheckpointUnavailable`` when the checkpoint's object store does not, ``StoreFull``,
        ``StoreUnavailable`` or ``StoreChanged`` when the windows batch failed on the online store, else
        ``QueryFailed``."""
        store, self._store_failure = self._store_failure, None
        try:
            self.probe.partitions()
        except TopicMissingError as error:
            self._fail(TOPIC_MISSING, f"{error} (the query stopped; waiting for it)")
            return
        except KafkaException as error:
            self._fail(KAFKA_UNAVAILABLE, f"Kafka unavailable: {error} (the query stopped; restarting from the "
                                          "checkpoint once it is back)")
            return
        try:
            self.checkpoint.probe()
        except CheckpointUnavailableError as error:
            self._fail(CHECKPOINT_UNAVAILABLE, f"{error} (the query stopped; restarting from the checkpoint once "
                                               "it is back)")
            return
        if store is not None:
            self._fail(*store)
            return
        self._fail(QUERY_FAILED, f"{first_line(outcome)} (restarting from the checkpoint)")

    def run(self) -> int:
        signal.signal(signal.SIGTERM, self._on_signal)
        signal.signal(signal.SIGINT, self._on_signal)
        start_http_server(self.plan.metrics_port, registry=self.metrics.registry)
        log.info("metrics on :%d/metrics", self.plan.metrics_port)
        try:
            previous = self.sink.previous()
        except ERRORS as error:
            log.warning("could not read the previous progress record: %s", error)
            previous = None
        self.tracker = ProgressTracker(previous, None, self.tracker.dead_letters)
        self._publish()
        driver.remove_leftover_executors(self.plan.namespace)
        try:
            spark = job.spark_session(f"streamguard-{self.plan.namespace}-{self.plan.name}",
                                      self.checkpoint.spark_settings())
        except Exception as error:
            self._fail(SPARK_UNAVAILABLE, spark_start_failure(error))
            raise
        backoff = 1.0
        while not self._stopping:
            start = self._prepare(spark)
            if start is None:
                break
            try:
                self._start(spark, start)
                ended = self._supervise(spark)
            except Exception as error:  # starting can fail while Kafka is away; retried below
                ended = None, f"{type(error).__name__}: {error}"
            if ended is None:
                self._stop()
                break
            query, outcome = ended
            met = unknown_ids(outcome)
            # A new schema id changes both queries' plans; any other failure restarts only the query that
            # ended (the other keeps its place and goes on once the dependency is back).
            self._stop(query if query is not None and not met else None)
            if outcome == SCHEMAS_SETTLED:
                self.metrics.restarted("new-schema-id")
                backoff = 1.0
                continue
            self.resolver.forget(met & self.schemas.unknown)  # replayed dead letters of an id held for unknown
            fresh = met - set(self.schemas.known())
            if fresh:
                log.info("new writer schema id(s) %s: resolving and restarting from the checkpoint", sorted(fresh))
                self.tracker.fail(SCHEMA_ID_UNKNOWN, f"resolving writer schema id(s) {sorted(fresh)}")
                self.metrics.restarted("new-schema-id")
                if not self._resolve(fresh):
                    break
                backoff = 1.0
                continue
            self._failed(outcome)
            self.metrics.restarted("failure")
            if self.tracker.failure is not None and self.tracker.failure.reason in DEPENDENCY_AWAY:
                log.error("streaming query failed (%s), restarting from the checkpoint once it is back: %s",
                          self.tracker.failure.reason, first_line(outcome))
                self._wait(PROBE_S)
                continue  # _prepare waits for the dependency, asking every PROBE_S
            log.error("streaming query failed, restarting from the checkpoint in %.0fs: %s", backoff,
                      first_line(outcome))
            self._wait(backoff)
            backoff = min(backoff * 2, MAX_BACKOFF_S)
        self._stop()
        self.tracker.fail("Stopped", f"stopped consuming {self.plan.topic}")
        self._next_publish = 0.0
        self._publish()
        try:
            spark.stop()
        except Exception as error:  # the JVM may already be gone on shutdown
            log.debug("stopping Spark: %s", error)
        return 0
