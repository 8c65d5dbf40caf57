"""Offline data on the stack's real object store (SeaweedFS): materializing from s3:// gives the same Redis
bytes as from local files and as Feast's own ``materialize``; a missing or wrong Secret is reported on the
FeatureView by name, never by value, and the run exits once (the CronJob's Job retries, no crash loop); the
right Secret then materializes."""

import subprocess
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
import yaml
from kubernetes import client

from streamguard.api.common import GROUP, VERSION
from streamguard.api.featureview import FeatureViewSpec
from streamguard.devstack.endpoints import Endpoints
from streamguard.finserve.resources import EXAMPLES_DIR
from streamguard.objectstore import Credentials, s3_filesystem
from streamguard.workloads.materialize.run import materialize_incremental
from streamguard.workloads.materialize.watermark import FileWatermark
from tests.operator.process import OperatorProcess, operator_env
from tests.polling import wait_for
from tests.workloads.materialize.conftest import OfflineData
from tests.workloads.materialize.cronjob_on_host import run_cronjob, store_secret
from tests.workloads.materialize.support import (
    delete_project,
    dump,
    feast_store,
    upload_by_day,
    url_with_db,
    with_project,
)

pytestmark = pytest.mark.stack

VIEWS = ("customer-profile", "account-profile")
T0 = datetime(2026, 8, 3, tzinfo=UTC)
MID = datetime(2026, 10, 27, 12, tzinfo=UTC)
END = datetime(2026, 11, 2, tzinfo=UTC)


@pytest.mark.spark
def test_materializing_from_s3_equals_local_files_and_feast(
    offline: OfflineData,
    redis_client: redis.Redis,
    stack: Endpoints,
    project: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in stack.object_store_env().items():
        monkeypatch.setenv(name, value)
    local_views = with_project({n: offline.manifests.feature_views[n].spec for n in VIEWS}, project)
    s3_views = {
        name: spec.model_copy(
            update={
                "source": spec.source.model_copy(  # type: ignore[union-attr]
                    update={"path": upload_by_day(stack, spec.source.path, f"{project}/{name}")}  # type: ignore[union-attr]
                )
            }
        )
        for name, spec in local_views.items()
    }
    local_project = project + "local"
    feast_url = url_with_db(stack.redis_url, 2)
    feast_client = redis.Redis.from_url(feast_url)
    try:
        store = feast_store(tmp_path / "repo", project, local_views, feast_url)
        for start, end in ((T0, MID), (MID, END)):
            store.materialize(start_date=start, end_date=end, feature_views=list(VIEWS))
            for name in VIEWS:
                from_s3 = materialize_incremental(
                    redis_client,
                    name,
                    s3_views[name],
                    FileWatermark(tmp_path / f"s3-{name}.json"),
                    start=start,
                    end=end,
                )
                from_local = materialize_incremental(
                    redis_client,
                    name,
                    local_views[name].model_copy(update={"project": local_project}),
                    FileWatermark(tmp_path / f"local-{name}.json"),
                    start=start,
                    end=end,
                )
                assert from_s3.rows_scanned == from_local.rows_scanned > 0
            ours, local, theirs = (
                dump(redis_client, project),
                dump(redis_client, local_project),
                dump(feast_client, project),
            )
            assert len(ours) > 200
            assert ours == local
            assert ours.keys() == theirs.keys()
            different = [key for key in ours if ours[key] != theirs[key]]
            assert not different, f"{len(different)} hashes differ from Feast's, e.g. {different[0]!r}"
    finally:
        delete_project(redis_client, project)
        delete_project(redis_client, local_project)
        delete_project(feast_client, project)


def _run_cronjob(
    core: client.CoreV1Api, batch: client.BatchV1Api, namespace: str, secret: str, work: Path, stack: Endpoints
) -> subprocess.CompletedProcess[str]:
    """The CronJob's container command with its env and mounted job file, once its env names ``secret``."""

    def rendered() -> Any:
        cron: Any = next(iter(batch.list_namespaced_cron_job(namespace).items), None)
        if cron is None:
            return None
        env = cron.spec.job_template.spec.template.spec.containers[0].env or []
        named = {e.name: e.value for e in env if e.value is not None}
        return cron if named.get("STREAMGUARD_OBJECT_STORE_SECRET") == secret else None

    cron = wait_for(f"the CronJob to read Secret {secret}", rendered)
    return run_cronjob(core, cron, namespace, work / f"mounts-{secret}", stack)


def _materialized(kube_api: client.ApiClient, namespace: str) -> dict[str, Any]:
    view = cast(
        dict[str, Any],
        client.CustomObjectsApi(kube_api).get_namespaced_custom_object(
            GROUP, VERSION, namespace, "featureviews", "customer-profile"
        ),
    )
    return next(c for c in view["status"]["conditions"] if c["type"] == "Materialized")


def test_missing_or_wrong_secret_is_named_in_the_condition(
    stack: Endpoints,
    kube_api: client.ApiClient,
    crds: None,
    prometheus_crds: Path,
    kubectl: Any,
    namespace: str,
    redis_client: redis.Redis,
    project: str,
    tmp_path: Path,
) -> None:
    core, batch = client.CoreV1Api(kube_api), client.BatchV1Api(kube_api)
    store_secret(core, namespace, stack)
    right = stack.object_store_env()
    wrong_key = f"wrong-{uuid.uuid4().hex}"
    # The host's endpoint: this test runs the CronJob's command on the host, not in a pod.
    for name, secret_key in (("wrong-s3", wrong_key), ("right-s3", right["AWS_SECRET_ACCESS_KEY"])):
        core.create_namespaced_secret(
            namespace,
            client.V1Secret(
                metadata=client.V1ObjectMeta(name=name),
                string_data={
                    "endpoint": stack.s3_endpoint,
                    "region": right["AWS_REGION"],
                    "accessKeyId": right["AWS_ACCESS_KEY_ID"],
                    "secretAccessKey": secret_key,
                },
            ),
        )
    filesystem = s3_filesystem(Credentials.from_env(right))
    source = f"{stack.s3_bucket}/{project}/customer_profile/part-0.parquet"
    pq.write_table(
        pa.table(
            {
                "customer_id": ["C000001"],
                "event_timestamp": pa.array([datetime(2026, 10, 1, tzinfo=UTC)], pa.timestamp("us", tz="UTC")),
                "cust_txn_count_7d": pa.array([3], pa.int64()),
                "cust_txn_count_30d": pa.array([9], pa.int64()),
                "cust_amount_avg_30d": [20.5],
                "cust_foreign_ratio_30d": [0.0],
                "cust_distinct_merchants_90d": pa.array([5], pa.int64()),
            }
        ),
        source,
        filesystem=filesystem,
    )
    manifest = yaml.safe_load((EXAMPLES_DIR / "customer-profile.yaml").read_text())
    manifest["spec"]["project"] = project
    manifest["spec"]["source"].update(
        path=f"s3://{stack.s3_bucket}/{project}/customer_profile", secretRef={"name": "absent-s3"}
    )
    FeatureViewSpec.model_validate(manifest["spec"])
    manifest_file = tmp_path / "fv.yaml"

    operator = OperatorProcess(namespace, operator_env(stack), tmp_path / "operator.log").start()
    try:
        manifest_file.write_text(yaml.safe_dump(manifest))
        kubectl("apply", "-n", namespace, "-f", str(manifest_file))
        missing = _run_cronjob(core, batch, namespace, "absent-s3", tmp_path, stack)
        assert missing.returncode != 0
        condition = _materialized(kube_api, namespace)
        assert (condition["status"], condition["reason"]) == ("False", "ObjectStoreCredentials")
        assert "Secret 'absent-s3'" in condition["message"]

        manifest["spec"]["source"]["secretRef"] = {"name": "wrong-s3"}
        manifest_file.write_text(yaml.safe_dump(manifest))
        kubectl("apply", "-n", namespace, "-f", str(manifest_file))
        wrong = _run_cronjob(core, batch, namespace, "wrong-s3", tmp_path, stack)
        assert wrong.returncode != 0
        condition = _materialized(kube_api, namespace)
        assert condition["status"] == "False" and "Secret 'wrong-s3'" in condition["message"], condition
        for text in (condition["message"], wrong.stdout, wrong.stderr):
            assert wrong_key not in text and right["AWS_SECRET_ACCESS_KEY"] not in text
            assert right["AWS_ACCESS_KEY_ID"] not in text
        events = core.list_namespaced_event(namespace).items
        assert not any(wrong_key in (e.message or "") for e in events)

        # The same endpoint and access key with the right secret key: the failure above was the key.
        manifest["spec"]["source"]["secretRef"] = {"name": "right-s3"}
        manifest_file.write_text(yaml.safe_dump(manifest))
        kubectl("apply", "-n", namespace, "-f", str(manifest_file))
        fixed = _run_cronjob(core, batch, namespace, "right-s3", tmp_path, stack)
        assert fixed.returncode == 0, fixed.stderr[-3000:]
        condition = _materialized(kube_api, namespace)
        assert condition["status"] == "True", condition
        assert len(dump(redis_client, project, namespace)) == 1
    finally:
        operator.stop()
        delete_project(redis_client, project, namespace)
