"""The Spark Structured Streaming queries of a StreamingWindow.

``windows``: Kafka -> Confluent decode -> ``withWatermark(event time)`` -> one pane per distinct slide of the spec
-> partial aggregations -> ``update`` mode ``foreachBatch`` -> Redis from the executors: the panes, and the windows
combined from them (``panes``; idempotent overwrites).

``dead-letters``: the same records, keeping only those that cannot be decoded -> ``<topic>.dlq`` with
headers saying why and where they came from. The windows query counts the records it finds bad per batch
(``clean_ranges``): the dead-letter query reads and decodes again only what no clean windows batch covered.

All panes are computed by one stateful aggregation: each event is expanded into the pane of each distinct slide
containing it, and the pane struct carries Spark's event-time watermark metadata, exactly as Spark's own
``window()`` does, with its end at the close of the longest window containing the pane: Spark drops an event only
when every window containing it has closed, and evicts a pane no open window contains.
"""

import json
import os
import secrets
import sys
from collections.abc import Callable, Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812
from pyspark.sql.pandas.types import from_arrow_schema
from pyspark.sql.streaming.query import StreamingQuery

from streamguard.clientsecurity import KafkaEndpoint
from streamguard.jobspec import SPARK_CONF_ENV, spark_master
from streamguard.workloads.streaming import checkpoint
from streamguard.workloads.streaming.clean_ranges import CHECKED
from streamguard.workloads.streaming.dead_letters import (
    ERROR_HEADER,
    ORIGIN_HEADER,
    REPLAY_OF_HEADER,
    TIMESTAMP_HEADER,
    UNKNOWN_ID_REASON,
    UNREADABLE_ID_REASON,
)
from streamguard.workloads.streaming.decode import UNKNOWN_ID_MARKER, WriterSchemas, below, decoded_col, schema_id_col
from streamguard.workloads.streaming.offsets import DEAD_LETTERS, WINDOWS
from streamguard.workloads.streaming.panes import KEY, NEVER, PANE, SLIDE, partial_columns
from streamguard.workloads.streaming.plan import StreamPlan
from streamguard.workloads.streaming.sink import WRITTEN, write_batches
from streamguard.workloads.streaming.verdicts import Segment

DEAD_LETTER_TRIGGER_MS = 15_000
"""Dead letters are rare: their query runs less often, and reads only what the windows query did not prove clean."""
KAFKA_COLUMNS = ("key binary, value binary, topic string, partition int, offset long, timestamp timestamp, "
                 "timestampType int, headers array<struct<key: string, value: binary>>")
"""The rows of Spark's Kafka source (with ``includeHeaders``)."""
STATE_STORE = {
    "spark.sql.streaming.stateStore.providerClass":
        "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider",
    "spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled": "true",
    "spark.sql.streaming.stateStore.rocksdb.boundedMemoryUsage": "true",
    "spark.sql.streaming.stateStore.rocksdb.maxMemoryUsageMB": "128",
}
"""The windows' state lives in RocksDB off the JVM heap, in at most 128 MB of native memory shared by the
state store instances; each batch checkpoints only the changes (a changelog), with a full snapshot now
and then. A checkpoint started with another provider keeps it: Spark records the provider in the offset
log and a restarted query uses the recorded one (docs/architecture.md, the streaming job's settings)."""
WATERMARK_DELAY_KEY = "spark.watermarkDelayMs"
"""Metadata key Spark's ``EventTimeWatermark`` puts on watermarked columns (``window()`` copies it)."""


EXECUTOR_POD_NAME_PREFIX = "spark.kubernetes.executor.podNamePrefix"


def extra_spark_settings(text: str) -> dict[str, str]:
    """The settings of :data:`SPARK_CONF_ENV` (empty when unset); anything but an object of strings raises.
    An executor pod name prefix gets a random ``-<6 hex>`` per run: a container that restarts in the same pod
    may leave its executor pods behind (they are deleted with the pod), and Spark numbers executors from 1."""
    if not text:
        return {}
    settings = json.loads(text)
    if not isinstance(settings, dict) or not all(isinstance(v, str) for v in settings.values()):
        raise ValueError(f"${SPARK_CONF_ENV} must be a JSON object of strings")
    if EXECUTOR_POD_NAME_PREFIX in settings:
        settings[EXECUTOR_POD_NAME_PREFIX] += f"-{secrets.token_hex(3)}"
    return settings


def spark_session(app_name: str, hadoop: Mapping[str, str] | None = None) -> SparkSession:
    """A local session with the Kafka and Avro connector jars of ``$STREAMGUARD_SPARK_JARS`` (and, for a
    checkpoint on an object store, the s3a jars), the RocksDB state store and the Hadoop settings ``hadoop``."""
    jars = [j for j in os.environ.get("STREAMGUARD_SPARK_JARS", "").split(",") if j]
    missing = [j for j in jars if not Path(j).exists()]
    if not jars or missing:
        raise RuntimeError(
            "STREAMGUARD_SPARK_JARS must list the spark-sql-kafka-0-10, spark-avro and kafka-clients jars"
            + (f" (missing: {', '.join(missing)})" if missing else "")
        )
    master = spark_master()
    if master.startswith("local"):
        os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)  # the workers that write windows need this environment
    builder = (
        SparkSession.builder.master(master)
        .appName(app_name)
        .config("spark.jars", ",".join(jars))
        .config("spark.driver.memory", os.environ.get("STREAMGUARD_SPARK_DRIVER_MEMORY", "1g"))
        .config("spark.sql.shuffle.partitions", os.environ.get("STREAMGUARD_SPARK_SHUFFLE_PARTITIONS", "2"))
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.sql.streaming.metricsEnabled", "false")
    )
    for key, value in STATE_STORE.items():
        builder = builder.config(key, value)
    for key, value in (hadoop or {}).items():
        builder = builder.config(f"spark.hadoop.{key}", value)
    for key, value in extra_spark_settings(os.environ.get(SPARK_CONF_ENV, "")).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel(os.environ.get("STREAMGUARD_SPARK_LOG_LEVEL", "WARN"))
    return session


FETCH_MAX_WAIT_MS = 10
"""How long the broker may hold a fetch of the job's consumers for data to arrive (Kafka's default: 500 ms).
With the default, a batch of 10 events took 1.2 s instead of 0.35 s (docs/benchmarks.md), most likely because a
consumer's next fetch, sent once it has read its offset range, waits at the broker while the partition has no
new data and holds the next batch's read of that partition. Spark reads fixed offset ranges, so a short wait
only costs an empty fetch answer."""


def topic_options(plan: StreamPlan, kafka: KafkaEndpoint) -> dict[str, str]:
    """What every read of the job's topic sets, stream or batch (``checked`` reads the headers), but which
    partitions."""
    return {**kafka.spark(), "failOnDataLoss": "true",
            "includeHeaders": "true", "kafka.fetch.max.wait.ms": str(FETCH_MAX_WAIT_MS)}


def kafka_source(spark: SparkSession, plan: StreamPlan, kafka: KafkaEndpoint, starting_timestamp_ms: int | None,
                 trigger_ms: int) -> DataFrame:
    """The topic, read by a query started every ``trigger_ms``; a query without a checkpoint starts at
    ``starting_timestamp_ms`` when given (partitions with no record that recent start at their end), else at
    the spec's ``startingOffsets``. A batch reads at most the plan's ``maxOffsetsPerTrigger`` for each
    trigger interval of the windows query that ``trigger_ms`` spans, so a query triggered less often keeps up."""
    reader = (
        spark.readStream.format("kafka")
        .options(**topic_options(plan, kafka))
        .option("subscribe", plan.topic)
        .option("startingOffsets", plan.starting_offsets)
    )
    if starting_timestamp_ms is not None:
        reader = (reader.option("startingTimestamp", str(starting_timestamp_ms))
                  .option("startingOffsetsByTimestampStrategy", "latest"))
    intervals = -(-trigger_ms // max(plan.trigger_ms, 1000))
    return reader.option("maxOffsetsPerTrigger", str(plan.max_offsets_per_trigger * intervals)).load()


def kafka_range(spark: SparkSession, plan: StreamPlan, kafka: KafkaEndpoint,
                ranges: Mapping[int, tuple[int, int]]) -> DataFrame:
    """The topic's records in ``[start, end)`` of the partitions of ``ranges`` (assigned: the topic may have more),
    read as a batch (the re-seed's replay, the dead-letter query's reads)."""

    def offsets(index: int) -> str:
        return json.dumps({plan.topic: {str(p): r[index] for p, r in ranges.items()}})

    return (
        spark.read.format("kafka")
        .options(**topic_options(plan, kafka))
        .option("assign", json.dumps({plan.topic: sorted(ranges)}))
        .option("startingOffsets", offsets(0))
        .option("endingOffsets", offsets(1))
        .load()
    )


def _among(column: Column, values: set[int]) -> Column:
    return column.isin(sorted(values)) if values else F.lit(False)


def replayed_col() -> Column:
    """True for a record that ``streamguard stream replay-dead-letters`` put back on the topic."""
    marked = F.exists(F.col("headers"), lambda h: h["key"] == F.lit(REPLAY_OF_HEADER))
    return F.coalesce(marked, F.lit(False))


def segment_reason(sid: Column, segments: tuple[Segment, ...]) -> Column:
    """For a record an earlier verdict still holds for (``verdicts``): ``""`` when it was readable, else its
    dead-letter reason; null for a record the job's verdict now decides."""
    reason: Column = F.lit(None).cast("string")
    for segment in reversed(segments):  # the first segment covering a record decides: build from the last
        covers = (sid == segment.schema_id) & below(segment.until)
        if segment.verdict.kind == "unknown":
            covers = covers & ~replayed_col()
        text = {"readable": "", "unknown": UNKNOWN_ID_REASON, "unreadable": UNREADABLE_ID_REASON}[segment.verdict.kind]
        reason = F.when(covers, F.lit(f"{text}{segment.schema_id}" if text else "")).otherwise(reason)
    return reason


def check_col(decoded: Column, schemas: WriterSchemas, plan: StreamPlan) -> Column:
    """Null for a good record, else why it is a dead letter. A schema id the job has not resolved yet
    fails the batch (``raise_error`` with a marker); the runner resolves it and restarts the query. So does
    a replayed dead letter whose id this job still holds for unknown: it was replayed because the registry
    knows the id now, and must not become a dead letter again on this job's old verdict."""
    sid = schema_id_col()
    known = schemas.known()
    segment = segment_reason(sid, schemas.segments)
    live = segment.isNull()
    unknown = sid.isNotNull() & ~sid.isin(known) if known else sid.isNotNull()
    unknown = live & (unknown | (_among(sid, schemas.unknown) & replayed_col()))
    sid_text = sid.cast("string")
    undecoded = decoded.isNull()
    for field in plan.required_fields:  # PERMISSIVE decoding yields a struct of nulls for a bad body
        undecoded = undecoded | decoded[field].isNull()
    return (
        F.when(unknown, F.raise_error(F.concat(F.lit(UNKNOWN_ID_MARKER), sid_text)).cast("string"))
        .when(sid.isNull(), F.lit("not-confluent-wire-format"))
        .when(segment != F.lit(""), segment)
        .when(live & _among(sid, schemas.unknown), F.concat(F.lit(UNKNOWN_ID_REASON), sid_text))
        .when(live & _among(sid, schemas.unreadable), F.concat(F.lit(UNREADABLE_ID_REASON), sid_text))
        .when(undecoded, F.lit("avro-decode-failed"))
        .when(decoded[plan.key_field].isNull(), F.lit(f"missing-{plan.key_field}"))
        .when(decoded[plan.event_time_field].isNull(), F.lit(f"missing-{plan.event_time_field}"))
    )


def checked(source: DataFrame, schemas: WriterSchemas, plan: StreamPlan) -> DataFrame:
    """Source rows plus ``event`` (the decoded struct) and ``error`` (null when good)."""
    with_event = source.select("*", decoded_col(schemas, plan.reader_schema).alias("event"))
    return with_event.withColumn("error", check_col(F.col("event"), schemas, plan))


def _partial(function: str, part: str, field: str | None) -> Column:
    if part == "n":
        return F.count(F.lit(1)) if function == "count" else F.count(F.col(f"v_{field}"))
    column = F.col(f"v_{field}")
    return {"s": F.sum, "m": F.min if function == "min" else F.max}[part](column)


def paned(events: DataFrame, plan: StreamPlan) -> DataFrame:
    """Good decoded rows -> one row per (entity, slide, pane) with the partial aggregates (``panes``)."""
    key_type = "long" if plan.join_key_type == "INT64" else "string"
    fields = sorted({a.field for a in plan.aggregations if a.field})
    base = events.where(F.col("error").isNull()).select(
        F.col(f"event.{plan.key_field}").cast(key_type).alias(KEY),
        F.col(f"event.{plan.event_time_field}").alias("event_time"),
        *[F.col(f"event.{f}").alias(f"v_{f}") for f in fields],
    )
    watermarked = base.withWatermark("event_time", f"{plan.watermark_ms} milliseconds")
    ts = F.unix_millis(F.col("event_time"))
    every = F.array(*[
        F.struct(F.lit(i).alias("slide"), (ts - F.pmod(ts, F.lit(slide))).alias("start"),
                 F.lit(plan.longest(slide)).cast("long").alias("kept"))
        for i, slide in enumerate(plan.slides)
    ])
    exploded = watermarked.select(KEY, *[f"v_{f}" for f in fields], F.explode(every).alias("p"))
    pane_struct = F.struct(
        F.timestamp_millis(F.col("p.start")).alias("start"),
        F.timestamp_millis(F.col("p.start") + F.col("p.kept")).alias("end"),
    ).alias("window", metadata={WATERMARK_DELAY_KEY: plan.watermark_ms})
    keyed = exploded.select(KEY, F.col("p.slide").alias(SLIDE), pane_struct, *[f"v_{f}" for f in fields])
    partials = [_partial(agg.function, part, agg.field).alias(name) for name, agg, part in partial_columns(plan)]
    grouped = keyed.groupBy(KEY, SLIDE, "window").agg(*partials)
    return grouped.select(KEY, SLIDE, F.unix_millis(F.col("window.start")).alias(PANE),
                          *[name for name, _, _ in partial_columns(plan)])


def dead_letters(events: DataFrame) -> DataFrame:
    """Every row with its ``error`` (null when good) and, for bad rows, the Kafka sink's shape: the original
    key and bytes, plus headers saying why. The handler counts all rows (the dead-letter rate) and sends
    the bad ones."""
    origin = F.concat_ws("/", F.col("topic"), F.col("partition").cast("string"), F.col("offset").cast("string"))
    timestamp = F.unix_millis(F.col("timestamp")).cast("string")
    return events.select(
        F.col("error"),
        F.col("key"),
        F.col("value"),
        F.array(
            F.struct(F.lit(ERROR_HEADER).alias("key"), F.encode(F.col("error"), "UTF-8").alias("value")),
            F.struct(F.lit(ORIGIN_HEADER).alias("key"), F.encode(origin, "UTF-8").alias("value")),
            F.struct(F.lit(TIMESTAMP_HEADER).alias("key"), F.encode(timestamp, "UTF-8").alias("value")),
        ).alias("headers"),
    )


def replay_panes(spark: SparkSession, plan: StreamPlan, kafka: KafkaEndpoint, schemas: WriterSchemas,
                 ranges: Mapping[int, tuple[int, int]]) -> DataFrame:
    """Every pane of the records in ``ranges``, aggregated as the stream does (a batch query ignores the
    watermark: it keeps events the stream dropped as late; docs/online-store.md)."""
    return paned(checked(kafka_range(spark, plan, kafka, ranges), schemas, plan), plan)


BatchHandler = Callable[[DataFrame, int], None]


def _start(frame: DataFrame, plan: StreamPlan, query: str, mode: str, trigger_ms: int,
           handle: BatchHandler) -> StreamingQuery:
    """Start the ``foreachBatch`` query ``<plan name>-<query>``, checkpointed in its own folder ``query``."""
    return (
        frame.writeStream.queryName(f"{plan.name}-{query}")
        .outputMode(mode)
        .option("checkpointLocation", checkpoint.at(plan.checkpoint_dir).spark_location(query))
        .trigger(processingTime=f"{trigger_ms} milliseconds")
        .foreachBatch(handle)
        .start()
    )


def start_windows(spark: SparkSession, plan: StreamPlan, kafka: KafkaEndpoint, schemas: WriterSchemas,
                  handle: BatchHandler, starting_timestamp_ms: int | None) -> StreamingQuery:
    """The windows query; each batch's progress report carries the records it read and the bad ones among
    them (``observedMetrics.checked``)."""
    source = kafka_source(spark, plan, kafka, starting_timestamp_ms, plan.trigger_ms)
    counted = checked(source, schemas, plan).observe(CHECKED, F.count(F.lit(1)).alias("records"),
                                                     F.count(F.col("error")).alias("bad"))
    return _start(paned(counted, plan), plan, WINDOWS, "update", plan.trigger_ms, handle)


def start_dead_letters(spark: SparkSession, plan: StreamPlan, kafka: KafkaEndpoint, handle: BatchHandler,
                       starting_timestamp_ms: int | None) -> StreamingQuery:
    """The dead-letter query: its handler gets the Kafka source's rows undecoded, which Spark reads from Kafka
    only if the handler uses them."""
    trigger_ms = max(plan.trigger_ms, DEAD_LETTER_TRIGGER_MS)
    source = kafka_source(spark, plan, kafka, starting_timestamp_ms, trigger_ms)
    return _start(source, plan, DEAD_LETTERS, "append", trigger_ms, handle)


def write_dead_letters(source: DataFrame, schemas: WriterSchemas, plan: StreamPlan,
                       kafka: KafkaEndpoint) -> tuple[int, dict[str, int]]:
    """Decode the Kafka source's rows ``source`` and send the bad ones to the dead-letter topic; returns the rows
    read and the dead letters per reason."""
    frame = dead_letters(checked(source, schemas, plan))
    frame.persist()
    try:
        counts = {row["error"]: int(row["count"]) for row in frame.groupBy("error").count().collect()}
        reasons = {str(error): n for error, n in counts.items() if error is not None}
        if reasons:
            (frame.where(F.col("error").isNotNull()).drop("error").write.format("kafka")
             .options(**kafka.spark()).option("topic", plan.dead_letter_topic).save())
        return sum(counts.values()), reasons
    finally:
        frame.unpersist()


def write_windows(frame: DataFrame, plan: StreamPlan, redis_url: str, watermark_ms: int,
                  floor_ms: int) -> tuple[int, int]:
    """Write a batch's changed panes to the store from the executors (``sink.write_batches``): how many open
    windows they changed, and how many closed ones the batch's events missed. Nothing but each partition's counts
    reaches the driver."""

    def write(batches: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        return write_batches(plan, redis_url, watermark_ms, floor_ms, batches)

    counts = frame.mapInArrow(write, from_arrow_schema(WRITTEN)).collect()  # a row per partition, no extra stage
    return sum(int(row["written"]) for row in counts), sum(int(row["missed"]) for row in counts)


def warm_up(spark: SparkSession, plan: StreamPlan, schemas: WriterSchemas, redis_url: str,
            wanted: Callable[[], bool]) -> None:
    """Run both queries' computations once, as batches over one synthetic record that is not wire format:
    class loading, code generation and JIT of the decode, aggregation, shuffle and Arrow paths, the Python
    workers that write windows (no window, so no write) and the s3a filesystem of a checkpoint on an object
    store happen while the job waits for a dependency, not in the first batch after its return (which the
    values wait for). Each step runs only while ``wanted()``."""
    location = checkpoint.at(plan.checkpoint_dir)
    jvm = spark.sparkContext._jvm
    if location.remote and jvm is not None and wanted():  # Hadoop's s3a client (its AWS SDK) built and cached,
        jvm.org.apache.hadoop.fs.Path(location.spark_location("")).getFileSystem(
            spark.sparkContext._jsc.hadoopConfiguration())  # no request made
    frame = spark.createDataFrame([(None, b"warm-up", plan.topic, 0, 0, datetime.now(UTC), 0, [])], KAFKA_COLUMNS)
    steps: list[Callable[[], object]] = [
        lambda: write_windows(paned(checked(frame, schemas, plan), plan), plan, redis_url, NEVER, NEVER),
        lambda: arrow_columns(dead_letters(checked(frame, schemas, plan)).groupBy("error").count()),
    ]
    for step in steps:
        if wanted():
            step()


def arrow_columns(frame: DataFrame) -> dict[str, list[Any]]:
    """A (small, aggregated) batch as Python lists per column, through Arrow."""
    table = frame.toArrow()
    return {name: table.column(name).to_pylist() for name in table.column_names}
