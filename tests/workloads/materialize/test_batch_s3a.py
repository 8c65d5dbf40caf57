"""The FinServe batch job writes its offline tables to the stack's object store through Spark's s3a
(hadoop-aws and the AWS SDK bundle fetched by provisioning), hive-partitioned by the UTC day of the event,
with the credentials of the object-store environment: the same rows as its local output."""

import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq
import pytest
import yaml

from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.provision import artifacts
from streamguard.objectstore import DATE_PARTITION, Credentials, s3_filesystem
from tests.conftest import REPO
from tests.workloads.materialize.conftest import OfflineData

pytestmark = [pytest.mark.stack, pytest.mark.spark]

VIEW = "customer-profile"


def test_batch_job_writes_day_partitions_to_s3(offline: OfflineData, stack: Endpoints, tmp_path: Path) -> None:
    s3a_jars = sorted(str(p) for p in (artifacts()["spark-s3a"].directory / "jars").glob("*.jar"))
    assert any(Path(j).name.startswith("hadoop-aws-") for j in s3a_jars), "spark-s3a is not provisioned"
    prefix = f"batch-s3a/{uuid.uuid4().hex[:10]}/{VIEW}"
    manifests = tmp_path / "manifests"
    shutil.copytree(offline.manifests_dir, manifests)
    file = next(p for p in manifests.glob("*.yaml") if f"name: {VIEW}\n" in p.read_text())
    docs = list(yaml.safe_load_all(file.read_text()))
    for doc in docs:
        if doc and doc["kind"] == "FeatureView" and doc["metadata"]["name"] == VIEW:
            local = doc["spec"]["source"]["path"]
            doc["spec"]["source"]["path"] = f"s3://{stack.s3_bucket}/{prefix}"
            timestamp = doc["spec"]["source"]["timestampField"]
    file.write_text(yaml.safe_dump_all(docs))

    env = {**stack.env(), "STREAMGUARD_SPARK_JARS": ",".join([*stack.spark_jars, *s3a_jars]), "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-m", "streamguard", "workload", "batch-features", "--transactions",
         str(offline.root / "raw" / "transactions.parquet"), "--manifests", str(manifests), "--view", VIEW],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=600, check=False,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    secret = stack.object_store_env()["AWS_SECRET_ACCESS_KEY"]
    assert secret not in done.stdout and secret not in done.stderr

    filesystem = s3_filesystem(Credentials.from_env(stack.object_store_env()))
    on_s3 = ds.dataset(f"{stack.s3_bucket}/{prefix}", filesystem=filesystem, format="parquet", partitioning="hive")
    table = on_s3.to_table()
    days = pc.strftime(table.column(timestamp).cast(pa.timestamp("us", tz="UTC")), format="%Y-%m-%d")
    assert pc.all(pc.equal(days, table.column(DATE_PARTITION).cast("string"))).as_py()
    folders = {Path(f).parent.name for f in on_s3.files}
    assert folders == {f"{DATE_PARTITION}={d}" for d in pc.unique(days).to_pylist()} and len(folders) > 1

    expected = pq.read_table(local).to_pandas()
    got = table.drop_columns([DATE_PARTITION]).to_pandas()[list(expected.columns)]
    order = [timestamp, expected.columns[0]]
    expected = expected.sort_values(order).reset_index(drop=True)
    got = got.sort_values(order).reset_index(drop=True)
    assert len(got) == len(expected) > 0
    assert got.equals(expected.astype(got.dtypes.to_dict())), (got.head(), expected.head())
