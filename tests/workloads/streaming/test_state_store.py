"""The job's state store: RocksDB with a changelog for new checkpoints, and a checkpoint begun on Spark's
HDFS-backed store (every job before the switch) resumes on that store with its state whole."""

import json
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest
from pyspark.sql import DataFrame

from streamguard.devstack.endpoints import Endpoints
from streamguard.workloads.streaming import job

PROVIDER = "spark.sql.streaming.stateStore.providerClass"
HDFS = "org.apache.spark.sql.execution.streaming.state.HDFSBackedStateStoreProvider"


def _files(checkpoint: Path, suffix: str) -> int:
    return sum(1 for _ in (checkpoint / "state").rglob(f"*.{suffix}"))


def _runs(jars: list[str], work: str) -> list[tuple[dict[str, int], int, int]]:
    """Counts per key after each run, with the checkpoint's changelog and delta files: two runs on a checkpoint
    begun on the HDFS store (the second with the job's settings), then one run of a new checkpoint."""
    os.environ["STREAMGUARD_SPARK_JARS"] = ",".join(jars)
    spark = job.spark_session("streamguard-state-store-test")
    root = Path(work)
    source = root / "in"
    source.mkdir()
    counts: dict[str, int] = {}

    def run(checkpoint: Path) -> tuple[dict[str, int], int, int]:
        def collect(batch: DataFrame, _: int) -> None:
            counts.update({row["k"]: int(row["count"]) for row in batch.collect()})

        counts.clear()
        query = (spark.readStream.schema("k STRING").json(str(source)).groupBy("k").count().writeStream
                 .outputMode("update").option("checkpointLocation", str(checkpoint))
                 .trigger(availableNow=True).foreachBatch(collect).start())
        query.awaitTermination(300)
        assert query.exception() is None, query.exception()
        return dict(counts), _files(checkpoint, "changelog"), _files(checkpoint, "delta")

    try:
        (source / "1.json").write_text("".join(json.dumps({"k": "a"}) + "\n" for _ in range(3)))
        spark.conf.set(PROVIDER, HDFS)
        results = [run(root / "old")]
        spark.conf.set(PROVIDER, job.STATE_STORE[PROVIDER])
        (source / "2.json").write_text(json.dumps({"k": "a"}) + "\n" + json.dumps({"k": "b"}) + "\n")
        results.append(run(root / "old"))
        results.append(run(root / "new"))
        return results
    finally:
        spark.stop()


@pytest.mark.stack
@pytest.mark.spark
def test_new_checkpoints_use_rocksdb_and_old_ones_keep_their_state_on_the_hdfs_store(stack: Endpoints,
                                                                                     tmp_path: Path) -> None:
    with ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn")) as pool:
        (begun, upgraded, new) = pool.submit(_runs, stack.spark_jars, str(tmp_path)).result(timeout=600)
    assert begun[0] == {"a": 3} and begun[1] == 0 and begun[2] > 0
    assert upgraded[0] == {"a": 4, "b": 1}, "the old state was carried on"
    assert upgraded[1] == 0 and upgraded[2] > begun[2], "the old checkpoint stayed on the HDFS-backed store"
    assert new[0] == {"a": 4, "b": 1}
    assert new[1] > 0 and new[2] == 0, "a new checkpoint is on RocksDB with its changelog"
