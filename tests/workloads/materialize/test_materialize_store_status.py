"""What a real FeatureView's status says when its online store is wiped or full: ``Backfilling`` during
the refill, ``Backfilled`` with the new ``onlineStoreGeneration`` after it, ``StoreFull`` when Redis
refuses writes (watermark and generation kept). The store is a private redis-server."""

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
from kubernetes import client

from streamguard.api.common import GROUP, VERSION
from streamguard.api.featureview import FeatureViewSpec
from streamguard.devstack.private_redis import private_redis
from streamguard.workloads.materialize.errors import MaterializeError
from streamguard.workloads.materialize.run import materialize_incremental
from streamguard.workloads.materialize.status import RunReport
from streamguard.workloads.materialize.watermark import KubeStatus

NAME = "store-view"


class Watched(KubeStatus):
    """The real status writer; keeps the conditions the apiserver holds after each write."""

    seen: list[dict[str, dict[str, Any]]]

    def record(self, report: RunReport) -> None:
        super().record(report)
        self.seen.append({c["type"]: c for c in self._get()["status"]["conditions"]})


def _status(api: client.CustomObjectsApi, namespace: str) -> dict[str, Any]:
    obj = cast(dict[str, Any], api.get_namespaced_custom_object(GROUP, VERSION, namespace, "featureviews", NAME))
    return cast(dict[str, Any], obj["status"])


def _write_source(path: Path, days: int, now: datetime) -> None:
    customers = [f"C{i:03d}" for i in range(50)]
    stamps = [now - timedelta(days=d, hours=1) for d in range(days, -1, -1)]
    pq.write_table(
        pa.table(
            {
                "customer_id": [c for _ in stamps for c in customers],
                "event_timestamp": pa.array([s for s in stamps for _ in customers], pa.timestamp("us", tz="UTC")),
                "n_7d": pa.array(range(len(stamps) * len(customers)), pa.int64()),
            }
        ),
        path,
    )


def test_status_shows_backfilling_after_a_wipe_and_store_full_when_redis_refuses(
    kube_api: client.ApiClient, crds: None, namespace: str, project: str, tmp_path: Path
) -> None:
    api = client.CustomObjectsApi(kube_api)
    source = tmp_path / "source.parquet"
    now = datetime.now(UTC).replace(microsecond=0)
    _write_source(source, 3, now)
    spec = FeatureViewSpec.model_validate(
        {
            "project": project,
            "entities": [{"name": "customer", "joinKey": "customer_id"}],
            "features": [{"name": "n_7d", "dtype": "INT64"}],
            "source": {"path": str(source)},
            "ttl": "2d",
            "freshnessSla": "1d",
        }
    )
    body = {"apiVersion": f"{GROUP}/{VERSION}", "kind": "FeatureView", "metadata": {"name": NAME}, "spec": spec.wire()}
    api.create_namespaced_custom_object(GROUP, VERSION, namespace, "featureviews", body)

    def run(store: redis.Redis, end: datetime = now) -> Watched:
        status = Watched(kube_api, namespace, NAME, 1)
        status.seen = []
        materialize_incremental(store, NAME, spec, status, end=end)
        return status

    with private_redis(tmp_path / "redis", "--maxmemory-policy", "noeviction") as store:
        run(store)
        first = _status(api, namespace)
        assert first["onlineStoreGeneration"] and first["materializedUntil"]

        store.flushall()
        watched = run(store)
        assert [seen["Materialized"]["reason"] for seen in watched.seen] == ["Backfilling", "Backfilled"]
        backfilling = watched.seen[0]
        assert backfilling["Materialized"]["status"] == "False" and backfilling["Fresh"]["status"] == "False"
        assert backfilling["Fresh"]["reason"] == "StoreGenerationMissing"
        assert "backfilling [" in backfilling["Materialized"]["message"]
        refilled = _status(api, namespace)
        assert refilled["onlineStoreGeneration"] != first["onlineStoreGeneration"]
        assert refilled["rowsMaterialized"] == 50
        assert {c["type"]: c["status"] for c in refilled["conditions"]}["Fresh"] == "True"

        later = now + timedelta(hours=2)
        _write_source(source, 3, later)  # a new row per customer inside the next increment
        used = int(cast(dict[str, int], store.info("memory"))["used_memory"])
        store.config_set("maxmemory", used + 200_000)
        with pytest.raises(redis.exceptions.OutOfMemoryError):
            for key in range(10_000):
                store.set(f"filler:{key}", b"x" * 1000)
        # The filler stops right at the limit, where a few small writes may still fit: hold the store under it.
        store.config_set("maxmemory", int(cast(dict[str, int], store.info("memory"))["used_memory"]) // 2)
        with pytest.raises(MaterializeError, match="OOM"):
            run(store, later)
        full = _status(api, namespace)
        conditions = {c["type"]: c for c in full["conditions"]}
        assert (conditions["Materialized"]["status"], conditions["Materialized"]["reason"]) == ("False", "StoreFull")
        assert (conditions["Fresh"]["status"], conditions["Fresh"]["reason"]) == ("False", "StoreFull")
        assert "maxmemory" in conditions["Materialized"]["message"]
        assert full["materializedUntil"] == refilled["materializedUntil"]
        assert full["onlineStoreGeneration"] == refilled["onlineStoreGeneration"]
