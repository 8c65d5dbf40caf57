"""Materialization through the real CronJob: the operator renders it from an applied FeatureView, we read
it back from the apiserver and run its container command with its env and its mounted job.json."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.parquet as pq
import redis
import yaml
from kubernetes import client

from streamguard.api.common import GROUP, VERSION
from streamguard.devstack.endpoints import Endpoints
from streamguard.finserve.resources import EXAMPLES_DIR
from tests.operator.process import OperatorProcess, operator_env
from tests.polling import wait_for
from tests.workloads.materialize.cronjob_on_host import END, pod_env, run_cronjob, store_secret
from tests.workloads.materialize.support import delete_project, dump


def test_cronjob_command_materializes_the_view(stack: Endpoints, kube_api: client.ApiClient, crds: None,
                                               prometheus_crds: Path, kubectl: Any, namespace: str,
                                               redis_client: redis.Redis, project: str, tmp_path: Path) -> None:
    core, batch = client.CoreV1Api(kube_api), client.BatchV1Api(kube_api)
    store_secret(core, namespace, stack)
    source = tmp_path / "customer_profile.parquet"
    pq.write_table(
        pa.table(
            {
                "customer_id": ["C000001", "C000002", "C000001"],
                "event_timestamp": pa.array(
                    [
                        datetime(2026, 10, 1, tzinfo=UTC),
                        datetime(2026, 10, 1, tzinfo=UTC),
                        datetime(2026, 10, 2, tzinfo=UTC),
                    ],
                    pa.timestamp("us", tz="UTC"),
                ),
                "cust_txn_count_7d": pa.array([3, 1, 4], pa.int64()),
                "cust_txn_count_30d": pa.array([9, 2, 10], pa.int64()),
                "cust_amount_avg_30d": [20.5, None, 21.0],
                "cust_foreign_ratio_30d": [0.0, None, 0.1],
                "cust_distinct_merchants_90d": pa.array([5, 1, 6], pa.int64()),
            }
        ),
        source,
    )
    manifest = yaml.safe_load((EXAMPLES_DIR / "customer-profile.yaml").read_text())
    manifest["spec"]["project"] = project
    manifest["spec"]["source"]["path"] = str(source)
    manifest_file = tmp_path / "fv.yaml"
    manifest_file.write_text(yaml.safe_dump(manifest))

    operator = OperatorProcess(namespace, operator_env(stack), tmp_path / "operator.log").start()
    try:
        kubectl("apply", "-n", namespace, "-f", str(manifest_file))
        cron: Any = wait_for(
            "the materialization CronJob", lambda: next(iter(batch.list_namespaced_cron_job(namespace).items), None)
        )
    finally:
        operator.stop()
    assert cron.spec.schedule == manifest["spec"]["materialization"]["schedule"]
    pod = cron.spec.job_template.spec.template.spec
    container = pod.containers[0]
    assert container.command[:3] == ["streamguard", "workload", "materialize"]
    assert pod_env(core, namespace, container.env or [])["STREAMGUARD_REDIS_URL"] == stack.redis_url
    try:
        done = run_cronjob(core, cron, namespace, tmp_path / "mounts", stack)
        assert done.returncode == 0, done.stderr[-3000:]
        stored = dump(redis_client, project, namespace)
        assert len(stored) == 2
        view = cast(
            dict[str, Any],
            client.CustomObjectsApi(kube_api).get_namespaced_custom_object(
                GROUP, VERSION, namespace, "featureviews", "customer-profile"
            ),
        )
        assert view["status"]["materializedUntil"] == END
        conditions = {c["type"]: c for c in view["status"]["conditions"]}
        assert conditions["Materialized"]["status"] == "True"
        assert view["status"]["rowsMaterialized"] == 2
    finally:
        delete_project(redis_client, project, namespace)
