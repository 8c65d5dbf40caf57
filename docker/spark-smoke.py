"""Build-time check of the Spark image: what the streaming job needs still loads after the jar pruning.

The Kafka source and ``from_avro`` resolve from the connector jars (``$STREAMGUARD_SPARK_JARS``), and a
watermarked sliding-window aggregation runs through ``foreachBatch`` (Python callback, the job's RocksDB
state store with its changelog, Arrow). Exits non-zero on any failure, which fails the image build.
"""

import json
import os
import tempfile
from pathlib import Path

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F  # noqa: N812
from pyspark.sql.avro.functions import from_avro

from streamguard.workloads.streaming.job import STATE_STORE

# The build container's hostname resolves nowhere: bind to loopback, as the streaming job does.
os.environ.setdefault("SPARK_LOCAL_IP", "127.0.0.1")
os.environ.setdefault("SPARK_LOCAL_HOSTNAME", "localhost")
work = Path(tempfile.mkdtemp(prefix="spark-smoke-"))
spark = (
    SparkSession.builder.master("local[1]").appName("image-smoke")
    .config("spark.jars", os.environ["STREAMGUARD_SPARK_JARS"])
    .config("spark.driver.host", "127.0.0.1").config("spark.driver.bindAddress", "127.0.0.1")
    .config("spark.ui.enabled", "false").config("spark.sql.shuffle.partitions", "1")
    .config(map=STATE_STORE)
    .getOrCreate()
)
kafka = (spark.readStream.format("kafka").option("kafka.bootstrap.servers", "127.0.0.1:9")
         .option("subscribe", "smoke").load())
decoded = kafka.select(from_avro(F.col("value"), '"long"').alias("v"))
assert decoded.schema.fieldNames() == ["v"], decoded.schema

(work / "in").mkdir()
rows = [{"ts": f"2026-01-01T00:00:{s:02d}Z", "v": s} for s in range(10)]
(work / "in" / "events.json").write_text("".join(json.dumps(row) + "\n" for row in rows))
events = spark.readStream.schema("ts TIMESTAMP, v LONG").json(str(work / "in"))
windows = (events.withWatermark("ts", "1 minute")
           .groupBy(F.window("ts", "10 seconds", "5 seconds")).agg(F.count("*").alias("n")))
seen: list[int] = []


def collect(batch: DataFrame, _: int) -> None:
    seen.extend(batch.toArrow().column("n").to_pylist())


query = (windows.writeStream.outputMode("update").option("checkpointLocation", str(work / "checkpoint"))
         .trigger(availableNow=True).foreachBatch(collect).start())
query.awaitTermination(600)
assert query.exception() is None, query.exception()
assert sorted(seen) == [5, 5, 10], seen
changelogs = list((work / "checkpoint" / "state").rglob("*.changelog"))
assert changelogs, "the RocksDB state store wrote no changelog"
# Executors on Kubernetes: Spark's cluster manager and the fabric8 client with its Vert.x transport load.
for name in ("org.apache.spark.scheduler.cluster.k8s.KubernetesClusterManager",
             "io.fabric8.kubernetes.client.KubernetesClientBuilder",
             "io.fabric8.kubernetes.client.vertx.VertxHttpClientFactory"):
    spark.sparkContext._jvm.java.lang.Class.forName(name)  # type: ignore[union-attr]
spark.stop()
print("spark smoke: Kafka source, from_avro, a windowed foreachBatch aggregation and Spark on Kubernetes loaded")
