"""The materializer's status on a real FeatureView: server-side apply on the status subresource with
its own field manager, watermark resumed from the status, conditions merged with the operator's."""

from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
from kubernetes import client

from streamguard.api.common import GROUP, VERSION
from streamguard.api.featureview import FeatureViewSpec
from streamguard.onlinestore.freshness import FreshnessRecord, freshness_key
from streamguard.workloads.materialize.errors import MaterializeError
from streamguard.workloads.materialize.run import materialize_incremental
from streamguard.workloads.materialize.status import FIELD_MANAGER
from streamguard.workloads.materialize.watermark import KubeStatus
from tests.workloads.materialize.support import delete_project, dump, keys_of


def _get(api: client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    obj = api.get_namespaced_custom_object(GROUP, VERSION, namespace, "featureviews", "status-view")
    return cast(dict[str, Any], obj)


def _view(project: str, path: Path) -> dict[str, Any]:
    spec = FeatureViewSpec.model_validate(
        {
            "project": project,
            "entities": [{"name": "customer", "joinKey": "customer_id"}],
            "features": [{"name": "n_7d", "dtype": "INT64"}],
            "source": {"path": str(path)},
            "ttl": "2d",
            "freshnessSla": "1h",
            "materialization": {"start": "2026-10-01T00:00:00Z"},
        }
    )
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "FeatureView",
        "metadata": {"name": "status-view"},
        "spec": spec.wire(),
    }


def test_status_records_watermark_freshness_and_conditions(
    kube_api: client.ApiClient,
    crds: None,
    namespace: str,
    redis_client: redis.Redis,
    project: str,
    tmp_path: Path,
) -> None:
    api = client.CustomObjectsApi(kube_api)
    path = tmp_path / "source.parquet"
    now = datetime.now(UTC).replace(microsecond=0)
    pq.write_table(
        pa.table(
            {
                "customer_id": ["C1", "C2"],
                "event_timestamp": pa.array([datetime(2026, 10, 2, tzinfo=UTC), now], pa.timestamp("us", tz="UTC")),
                "n_7d": pa.array([1, 2], pa.int64()),
            }
        ),
        path,
    )
    body = _view(project, path)
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, "featureviews", body)
    # The operator's own condition, under another field manager: it must survive our applies.
    api.patch_namespaced_custom_object_status(
        GROUP,
        VERSION,
        namespace,
        "featureviews",
        "status-view",
        {
            "apiVersion": body["apiVersion"],
            "kind": "FeatureView",
            "metadata": {"name": "status-view"},
            "status": {
                "conditions": [
                    {
                        "type": "Ready",
                        "status": "True",
                        "reason": "Reconciled",
                        "message": "",
                        "lastTransitionTime": "2026-01-01T00:00:00Z",
                    }
                ]
            },
        },
        field_manager="streamguard-operator",
        force=True,
        _content_type="application/apply-patch+yaml",
    )
    spec = FeatureViewSpec.model_validate(body["spec"])
    try:
        middle = datetime(2026, 10, 10, tzinfo=UTC)
        materialize_incremental(
            redis_client, "status-view", spec, KubeStatus(kube_api, namespace, "status-view", 1), end=middle,
            namespace=namespace,
        )
        obj = _get(api, namespace)
        status = obj["status"]
        assert status["materializedUntil"] == "2026-10-10T00:00:00Z"
        assert status["rowsMaterialized"] == 1
        conditions = {c["type"]: c for c in status["conditions"]}
        assert conditions["Ready"]["reason"] == "Reconciled"
        assert conditions["Materialized"]["status"] == "True"
        assert conditions["Materialized"]["observedGeneration"] == obj["metadata"]["generation"]
        assert conditions["Fresh"]["status"] == "False" and conditions["Fresh"]["reason"] == "Stale"
        managers = {m["manager"] for m in obj["metadata"]["managedFields"] if m.get("subresource") == "status"}
        assert {FIELD_MANAGER, "streamguard-operator"} <= managers

        result = materialize_incremental(
            redis_client, "status-view", spec, KubeStatus(kube_api, namespace, "status-view", 1), namespace=namespace
        )
        assert result.start == middle  # resumed from status.materializedUntil
        status = _get(api, namespace)["status"]
        conditions = {c["type"]: c for c in status["conditions"]}
        assert conditions["Fresh"]["status"] == "True" and status["freshnessSeconds"] < 3600
        assert status["materializedUntil"] > "2026-10-10T00:00:00Z"
        assert len(dump(redis_client, project, namespace)) == 2
        key = freshness_key(keys_of(project, namespace), "status-view").decode()
        fields = cast(dict[bytes, bytes], redis_client.hgetall(key))
        record = FreshnessRecord.parse(fields)
        assert record is not None and record.newest_event_ms == int(now.timestamp() * 1000)
        assert record.materialized_until_ms == int(result.end.timestamp() * 1000) and record.rows == 1

        path.unlink()
        with pytest.raises(MaterializeError, match=r"spec\.source\.path"):
            materialize_incremental(
                redis_client, "status-view", spec, KubeStatus(kube_api, namespace, "status-view", 1),
                namespace=namespace,
            )
        failed = _get(api, namespace)["status"]
        conditions = {c["type"]: c for c in failed["conditions"]}
        assert conditions["Materialized"]["status"] == "False"
        assert conditions["Materialized"]["reason"] == "SourceMissing"
        assert conditions["Fresh"]["status"] == "False"
        assert failed["materializedUntil"] == status["materializedUntil"]
        assert conditions["Ready"]["reason"] == "Reconciled"
    finally:
        delete_project(redis_client, project, namespace)
