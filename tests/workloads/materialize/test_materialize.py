"""Incremental materialization into the real Redis: equal to a full run, resumable, readable by Feast,
byte-identical to Feast's own ``materialize``; into a Redis Cluster and a Sentinel-managed master as into one
server."""

import time
from collections.abc import Callable
from datetime import UTC, datetime
from functools import partial
from pathlib import Path

import pandas as pd
import redis

from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.private_redis import private_redis_cluster, private_redis_sentinel
from streamguard.onlinestore.client import UNREACHABLE, connect
from streamguard.workloads.materialize.errors import MaterializeError
from streamguard.workloads.materialize.run import RunResult, materialize_incremental
from streamguard.workloads.materialize.watermark import FileWatermark, RedisWatermark
from tests.workloads.materialize.conftest import OfflineData
from tests.workloads.materialize.support import delete_project, dump, feast_store, url_with_db, with_project

PROFILES = ("customer-profile", "account-profile", "merchant-profile")
T0 = datetime(2026, 8, 3, tzinfo=UTC)
MID = datetime(2026, 10, 27, 12, tzinfo=UTC)
END = datetime(2026, 11, 2, tzinfo=UTC)


def test_incremental_runs_equal_one_full_run_and_feast_reads_them(
    offline: OfflineData, redis_client: redis.Redis, stack: Endpoints, project: str, tmp_path: Path
) -> None:
    full_project = project + "full"
    views = with_project({n: offline.manifests.feature_views[n].spec for n in PROFILES}, project)
    try:
        watermarks = {name: RedisWatermark(redis_client, project, name) for name in views}
        first = {n: materialize_incremental(redis_client, n, s, watermarks[n], end=MID) for n, s in views.items()}
        assert all(r.start == T0 and r.stats.written > 0 for r in first.values())
        assert all(w.load() == MID for w in watermarks.values())
        second = {n: materialize_incremental(redis_client, n, s, watermarks[n], end=END) for n, s in views.items()}
        assert all(r.start == MID and r.end == END and r.stats.written > 0 for r in second.values())
        assert all(w.load() == END for w in watermarks.values())
        again = {n: materialize_incremental(redis_client, n, s, watermarks[n], end=END) for n, s in views.items()}
        assert all(r.rows_scanned == 0 and r.stats.written == 0 for r in again.values())
        assert all(w.load() == END for w in watermarks.values())

        full_views = with_project(views, full_project)
        for name, spec in full_views.items():
            materialize_incremental(redis_client, name, spec, FileWatermark(tmp_path / f"{name}.json"), end=END)
        incremental = dump(redis_client, project)
        assert incremental == dump(redis_client, full_project)
        expected_entities = sum(
            offline.transactions[v.spec.entities[0].join_key].nunique()
            for v in (offline.manifests.feature_views[n] for n in PROFILES)
        )
        assert len(incremental) == expected_entities

        store = feast_store(tmp_path / "repo", project, views, stack.redis_url)
        table = pd.read_parquet(views["customer-profile"].source.path)  # type: ignore[union-attr]
        latest = table.sort_values("event_timestamp").groupby("customer_id").tail(1).set_index("customer_id")
        customers = sorted(latest.index)[:25]
        features = [f"customer-profile:{f.name}" for f in views["customer-profile"].features]
        online = store.get_online_features(features, [{"customer_id": c} for c in customers]).to_df()
        online = online.set_index("customer_id")
        for feature in views["customer-profile"].features:
            pd.testing.assert_series_equal(
                online.loc[customers, feature.name],
                latest.loc[customers, feature.name],
                check_names=False,
                check_dtype=False,
            )
    finally:
        delete_project(redis_client, project)
        delete_project(redis_client, full_project)


def test_redis_content_is_byte_identical_to_feast_materialize(
    offline: OfflineData, redis_client: redis.Redis, stack: Endpoints, project: str, tmp_path: Path
) -> None:
    """Same project, Feast writing to DB 2, us to DB 0: every hash must be equal, over two intervals."""
    names = (*PROFILES, "account-realtime")
    views = with_project({n: offline.manifests.feature_views[n].spec for n in names}, project)
    feast_url = url_with_db(stack.redis_url, 2)
    feast_client = redis.Redis.from_url(feast_url)
    try:
        store = feast_store(tmp_path / "repo", project, views, feast_url)
        for start, end in ((T0, MID), (MID, END)):
            store.materialize(start_date=start, end_date=end, feature_views=list(names))
            for name, spec in views.items():
                materialize_incremental(
                    redis_client, name, spec, FileWatermark(tmp_path / f"{name}.json"), start=start, end=end
                )
            ours, theirs = dump(redis_client, project), dump(feast_client, project)
            assert len(ours) > 200
            assert ours.keys() == theirs.keys()
            different = [key for key in ours if ours[key] != theirs[key]]
            assert not different, f"{len(different)} hashes differ, e.g. {different[0]!r}"
        nulls = sum(1 for fields in ours.values() for value in fields.values() if value == b"")
        assert nulls > 0, "the comparison should cover null feature values"
    finally:
        delete_project(redis_client, project)
        delete_project(feast_client, project)


def test_a_redis_cluster_gets_what_one_server_gets_and_feast_reads_it_with_its_cluster_settings(
    offline: OfflineData, redis_client: redis.Redis, project: str, tmp_path: Path
) -> None:
    views = with_project({n: offline.manifests.feature_views[n].spec for n in PROFILES}, project)
    table = pd.read_parquet(views["customer-profile"].source.path)  # type: ignore[union-attr]
    latest = table.sort_values("event_timestamp").groupby("customer_id").tail(1).set_index("customer_id")
    customers = sorted(latest.index)[:25]
    features = [f"customer-profile:{f.name}" for f in views["customer-profile"].features]
    try:
        with private_redis_cluster(tmp_path / "redis", masters=3, replicas=0) as cluster:
            client = connect(cluster.url)
            for name, spec in views.items():
                for store, at in ((client, "cluster"), (redis_client, "server")):
                    watermark = FileWatermark(tmp_path / f"{at}-{name}.json")
                    for end in (MID, END):
                        materialize_incremental(store, name, spec, watermark, end=end)
            on_cluster = dump(client, project)
            assert len(on_cluster) > 200 and on_cluster == dump(redis_client, project)
            for port in cluster.ports:  # every master holds a share
                with cluster.node(port) as node:
                    assert int(node.dbsize()) > 50
            store = feast_store(tmp_path / "repo", project, views, cluster.url)
            assert store.config.online_store.redis_type == "redis_cluster"
            online = store.get_online_features(features, [{"customer_id": c} for c in customers]).to_df()
            online = online.set_index("customer_id")
            for feature in views["customer-profile"].features:
                pd.testing.assert_series_equal(online.loc[customers, feature.name],
                                               latest.loc[customers, feature.name], check_names=False,
                                               check_dtype=False)
    finally:
        delete_project(redis_client, project)


def test_a_sentinel_managed_store_is_backfilled_after_a_failover_and_feast_reads_it_with_its_sentinel_settings(
    offline: OfflineData, project: str, tmp_path: Path
) -> None:
    """The materializer's client follows the sentinels to the promoted replica, whose other identity ends the
    generation: the next run backfills; Feast then reads the master through the sentinels as the config says."""
    views = with_project({n: offline.manifests.feature_views[n].spec for n in PROFILES}, project)
    table = pd.read_parquet(views["customer-profile"].source.path)  # type: ignore[union-attr]
    latest = table.sort_values("event_timestamp").groupby("customer_id").tail(1).set_index("customer_id")
    customers = sorted(latest.index)[:25]
    features = [f"customer-profile:{f.name}" for f in views["customer-profile"].features]
    with private_redis_sentinel(tmp_path / "redis") as store:
        client = connect(store.url)
        watermarks = {name: FileWatermark(tmp_path / f"{name}.json") for name in views}
        for name, spec in views.items():
            assert materialize_incremental(client, name, spec, watermarks[name], end=MID).backfill is None
        old = store.master_port()
        store.kill(old)
        store.wait_until_failed_over(old)
        for name, spec in views.items():
            result = _once_reachable(partial(materialize_incremental, client, name, spec, watermarks[name], end=END))
            assert result.backfill is not None, result
        with store.client() as master:
            assert int(master.info("server")["tcp_port"]) != old and int(master.dbsize()) > 200
        feast = feast_store(tmp_path / "repo", project, views, store.url)
        assert feast.config.online_store.redis_type == "redis_sentinel"
        online = feast.get_online_features(features, [{"customer_id": c} for c in customers]).to_df()
        online = online.set_index("customer_id")
        for feature in views["customer-profile"].features:
            pd.testing.assert_series_equal(online.loc[customers, feature.name], latest.loc[customers, feature.name],
                                           check_names=False, check_dtype=False)
        client.close()


def _once_reachable(run: Callable[[], RunResult], seconds: float = 30) -> RunResult:
    """``run``'s result once the store answers (a run that failed on an unreachable store, recorded, is retried, as
    the operator would)."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            return run()
        except MaterializeError as failed:
            if not isinstance(failed.__cause__, UNREACHABLE) or time.monotonic() > deadline:
                raise
            time.sleep(0.5)
