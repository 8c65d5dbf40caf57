"""Two namespaces with the same project and view names share one Redis and never one key (issue 16, tenancy).

The real writers (the materializer's run, the streaming job's sink and its generation/coverage commit) write
both namespaces into the stack's Redis; serving, configured per namespace, answers each its own values;
Feast's own online read over each namespace's repository reads that namespace's rows; and a Redis ACL user
with :func:`~streamguard.onlinestore.tenancy.acl_setuser`'s patterns runs one namespace's writers and
serving and is refused every key of the other.
"""

import asyncio
import json
import re
import secrets
import time
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast
from urllib.parse import urlparse

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import redis
from fastapi.testclient import TestClient

from streamguard.api.featureview import BatchSource, Entity, Feature, FeatureView, FeatureViewSpec
from streamguard.api.streamingwindow import Aggregation, StreamingWindow
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.private_redis import RedisTls, private_redis, private_redis_cluster
from streamguard.devstack.supervisor import free_port
from streamguard.feastrepo.config import render_online_store
from streamguard.jobspec import StreamJob, load
from streamguard.onlinestore.client import ERRORS, Store, connect
from streamguard.onlinestore.feast_layout import redis_key
from streamguard.onlinestore.freshness import FreshnessRecord, freshness_key
from streamguard.onlinestore.generation import STREAM, coverage_key, generation_key
from streamguard.onlinestore.tenancy import acl_setuser, split_store_project, store_project
from streamguard.onlinestore.window_layout import StreamProgress, heartbeat_key
from streamguard.onlinestore.writers import commit_coverage, ensure_generation
from streamguard.serving.app import create_app
from streamguard.serving.redisio import RedisUnavailableError, pack_tail
from streamguard.serving.service import connect as serving_pool
from streamguard.serving.settings import Settings
from streamguard.windows import WindowShape
from streamguard.workloads.materialize.run import materialize_incremental
from streamguard.workloads.materialize.watermark import FileWatermark
from streamguard.workloads.streaming.panes import NEVER, pane_key
from streamguard.workloads.streaming.plan import StreamPlan, build
from streamguard.workloads.streaming.sink import RedisSink
from tests.serving.support import write_config
from tests.workloads.materialize.support import feast_store
from tests.workloads.streaming.support import V1, pane_frame, view_spec, window_spec, write_job

pytestmark = pytest.mark.stack

PROJECT, BATCH_VIEW, ACCOUNTS = "streamguard", "profile", ("A1", "A2")
AGGREGATIONS = [Aggregation(name="txn_count", function="count"),
                Aggregation(name="amount_sum", function="sum", field="amount")]
WINDOW_REFS = ["account-realtime:txn_count_1m", "account-realtime:amount_sum_1m"]


@dataclass
class Tenant:
    """One namespace's views (the same names and project in every tenant) and what its writers wrote."""

    namespace: str
    factor: int
    """Every value this tenant writes is a multiple of it, so the tenants' values differ."""
    profile: FeatureViewSpec
    plan: StreamPlan
    manifests: list[dict[str, Any]]

    @property
    def store(self) -> str:
        return store_project(self.namespace, PROJECT)


def _tenant(tmp_path: Path, namespace: str, factor: int, now: datetime) -> Tenant:
    folder = tmp_path / namespace
    folder.mkdir()
    pq.write_table(pa.table({
        "account_id": list(ACCOUNTS),
        "risk": [factor * 0.5, factor * 1.5],
        "event_timestamp": pa.array([now - timedelta(minutes=5)] * len(ACCOUNTS), pa.timestamp("us", tz="UTC")),
    }), folder / "profile.parquet")
    profile = FeatureViewSpec(project=PROJECT, entities=[Entity(name="account", join_key="account_id")],
                              features=[Feature(name="risk", dtype="FLOAT64")], ttl="1d", freshness_sla="1h",
                              source=BatchSource(path=str(folder / "profile.parquet")))
    spec = window_spec("tenancy-tx", V1, AGGREGATIONS)
    realtime = view_spec(spec, PROJECT)
    plan = build(load(StreamJob, write_job(folder / "job.json", namespace, "activity", spec, realtime,
                                           folder / "checkpoint", 9999)))
    meta = {"namespace": namespace}
    manifests = [FeatureView(metadata={**meta, "name": BATCH_VIEW}, spec=profile).wire(),
                 FeatureView(metadata={**meta, "name": spec.feature_view}, spec=realtime).wire(),
                 StreamingWindow(metadata={**meta, "name": "activity"}, spec=spec).wire()]
    return Tenant(namespace, factor, profile, plan, manifests)


def _stream(client: Store, tenant: Tenant, now_ms: int) -> None:
    """What the streaming job does for a batch: generation, the windows that contain now, coverage, progress."""
    generation, _ = ensure_generation(client, tenant.plan.project, now_ms)
    ends = {w.suffix: WindowShape(w.length_ms, w.slide_ms).end_as_of(now_ms) for w in tenant.plan.windows}
    sink = RedisSink(client, tenant.plan)
    rows = [(account, suffix) for account in ACCOUNTS for suffix in ends]
    values = [{"txn_count": tenant.factor * (1 + i), "amount_sum": tenant.factor * 10.0 * (1 + i)}
              for i in range(len(rows))]
    sink.write_panes(pane_frame(tenant.plan, [(account, suffix, ends[suffix], v) for (account, suffix), v in
                                              zip(rows, values, strict=True)]), NEVER, NEVER)
    assert commit_coverage(client, tenant.plan.project, tenant.plan.view, STREAM, generation, 0) is not None
    sink.publish(StreamProgress(processed_at_ms=now_ms, state="running", progress_at_ms=now_ms, newest_event_ms=now_ms,
                                lag=0, batch_id=tenant.factor, complete_from_ms=0))


def _materialize(client: Store, tenant: Tenant, tmp_path: Path, end: datetime) -> int:
    watermark = FileWatermark(tmp_path / tenant.namespace / "watermark.json")
    result = materialize_incremental(client, BATCH_VIEW, tenant.profile, watermark, end=end,
                                     namespace=tenant.namespace)
    return result.stats.written


def _serving(tmp_path: Path, tenant: Tenant, redis_url: str) -> TestClient:
    """Serving as deployed for the tenant's namespace (its manifests carry it), cache off."""
    config = write_config(tmp_path / tenant.namespace / "features.yaml", tenant.manifests)
    return TestClient(create_app(Settings.model_validate({
        "redis_url": redis_url, "config_file": str(config), "cache_staleness": 0.0, "insecure_no_auth": True})))


def _lookup(app: TestClient) -> list[dict[str, Any]]:
    response = app.post("/features", json={"features": [f"{BATCH_VIEW}:risk", *WINDOW_REFS],
                                           "entities": [{"account_id": account} for account in ACCOUNTS]})
    assert response.status_code == 200, response.text
    return cast(list[dict[str, Any]], response.json()["results"])


def _expected(tenant: Tenant) -> list[list[Any]]:
    """Risk from the tenant's Parquet file, the 1m window as :func:`_stream` wrote it (row ``i * 3``)."""
    return [[tenant.factor * risk, tenant.factor * (1 + 3 * i), tenant.factor * 10.0 * (1 + 3 * i)]
            for i, risk in enumerate((0.5, 1.5))]


def _served_values(app: TestClient, client: Store, tenant: Tenant) -> list[dict[str, Any]]:
    """Write the tenant's windows and read them back within one slide of the 1m window (retried when a slide
    boundary passes in between, as the window serving reads then is the next one)."""
    shape = WindowShape.parse("1m", "15s")
    for _ in range(5):
        now_ms = int(time.time() * 1000)
        _stream(client, tenant, now_ms)
        results = _lookup(app)
        if shape.end_as_of(int(time.time() * 1000)) == shape.end_as_of(now_ms):
            return results
    raise AssertionError("no lookup within one slide of the write in five tries")


def _delete_keys(client: redis.Redis, tenant: Tenant) -> None:
    """Every key of the tenant (each carries its store project, unique to the test), in one pass."""
    keys = list(client.scan_iter(match=f"*{tenant.store}*".encode(), count=10_000))
    if keys:
        client.delete(*keys)


@pytest.fixture
def tenants(tmp_path: Path, redis_client: redis.Redis) -> Iterator[tuple[Tenant, Tenant]]:
    suffix = uuid.uuid4().hex[:8]
    now = datetime.now(UTC).replace(microsecond=0)
    pair = (_tenant(tmp_path, f"team-a-{suffix}", 1, now), _tenant(tmp_path, f"team-b-{suffix}", 2, now))
    try:
        yield pair
    finally:
        for tenant in pair:
            _delete_keys(redis_client, tenant)


def test_two_namespaces_with_the_same_views_keep_values_progress_and_generations_apart(
    stack: Endpoints, redis_client: redis.Redis, tenants: tuple[Tenant, Tenant], tmp_path: Path
) -> None:
    a, b = tenants
    end = datetime.now(UTC).replace(microsecond=0)
    assert [_materialize(redis_client, t, tmp_path, end) for t in tenants] == [2, 2]
    with _serving(tmp_path, a, stack.redis_url) as serving_a, _serving(tmp_path, b, stack.redis_url) as serving_b:
        for tenant, app in ((a, serving_a), (b, serving_b)):
            results = _served_values(app, redis_client, tenant)
            assert [r["values"] for r in results] == _expected(tenant), tenant.namespace
            assert all(r["statuses"] == ["present"] * 3 for r in results), results

        # freshness, progress, generation and coverage: one record per namespace, each its own writer's
        for tenant in tenants:
            fresh = FreshnessRecord.parse(cast(dict[bytes, bytes | None], redis_client.hgetall(
                freshness_key(tenant.store, BATCH_VIEW))))  # type: ignore[arg-type]
            assert fresh is not None and fresh.rows == 2
            progress = StreamProgress.parse(cast(dict[bytes, bytes | None], redis_client.hgetall(
                heartbeat_key(tenant.store, tenant.plan.view))))  # type: ignore[arg-type]
            assert progress is not None and progress.batch_id == tenant.factor
            assert redis_client.exists(generation_key(tenant.store), coverage_key(tenant.store, BATCH_VIEW),
                                       coverage_key(tenant.store, tenant.plan.view)) == 3
            assert split_store_project(tenant.store) == (tenant.namespace, PROJECT)

        # A's store loses its generation (as after `DEL sg-gen:<store>`): A reads stale, B is untouched
        redis_client.delete(generation_key(a.store))
        assert all(r["statuses"] == ["stale"] * 3 for r in _lookup(serving_a))
        results = _lookup(serving_b)
        assert [r["values"] for r in results] == _expected(b)
        assert all(r["statuses"] == ["present"] * 3 for r in results)


def test_feast_reads_each_namespace_from_its_own_project(
    stack: Endpoints, redis_client: redis.Redis, tenants: tuple[Tenant, Tenant], tmp_path: Path
) -> None:
    end = datetime.now(UTC).replace(microsecond=0)
    for tenant in tenants:
        _materialize(redis_client, tenant, tmp_path, end)
    for tenant in tenants:
        store = feast_store(tmp_path / tenant.namespace / "repo", PROJECT, {BATCH_VIEW: tenant.profile},
                            stack.redis_url, namespace=tenant.namespace)
        assert store.project == tenant.store
        online = store.get_online_features([f"{BATCH_VIEW}:risk"], [{"account_id": a} for a in ACCOUNTS]).to_dict()
        assert online["risk"] == [tenant.factor * 0.5, tenant.factor * 1.5], tenant.namespace


def test_an_acl_user_per_namespace_runs_its_writers_and_serving_and_is_refused_the_other(
    stack: Endpoints, redis_client: redis.Redis, tenants: tuple[Tenant, Tenant], tmp_path: Path
) -> None:
    where = urlparse(stack.redis_url)
    _confined_to_a(tenants, tmp_path, redis_client, [redis_client], f"{where.hostname}:{where.port}{where.path}")


def test_on_a_redis_cluster_the_namespace_acl_user_is_set_on_every_node_and_confines_the_same(
    stack: Endpoints, tenants: tuple[Tenant, Tenant], tmp_path: Path
) -> None:
    """The same user on every node of a Redis Cluster (ACLs are per node): its clients also learn the slot table
    (``CLUSTER SLOTS``) and follow redirections."""
    with private_redis_cluster(tmp_path / "redis", masters=3, replicas=0) as cluster:
        nodes = [cluster.node(port) for port in cluster.ports]
        admin = cluster.client()
        try:
            _confined_to_a(tenants, tmp_path, admin, nodes, f"127.0.0.1:{cluster.ports[0]}/0?cluster=true")
        finally:
            admin.close()
            for node in nodes:
                node.close()


@pytest.mark.parametrize("on_cluster", [False, True], ids=["server", "cluster"])
def test_over_tls_trusting_a_private_ca_named_in_the_url_the_namespace_acl_user_confines_the_same(
    stack: Endpoints, tenants: tuple[Tenant, Tenant], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    on_cluster: bool
) -> None:
    """``rediss://`` end to end, one server and a cluster (TLS on every node and on the cluster bus), with the
    namespace's ACL user: the writers, serving and their refusals as over plain TCP. The private CA is trusted
    only through the URL's ``ssl_ca_certs`` (what a pod names with the Redis Secret's ``ca.crt`` mounted), never
    ``SSL_CERT_FILE``: by the writers, serving and Feast's client of the generated repository. A URL without it,
    and a plain connection, are refused; a CA file that is not there is named."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    tls = RedisTls.issued_in(tmp_path / "pki")
    with ExitStack() as stack_of:
        if on_cluster:
            cluster = stack_of.enter_context(private_redis_cluster(tmp_path / "redis", masters=3, replicas=0,
                                                                   tls=tls))
            port, nodes = cluster.ports[0], [stack_of.enter_context(cluster.node(p)) for p in cluster.ports]
            admin: Store = stack_of.enter_context(cluster.client())
            address = f"127.0.0.1:{port}/0?cluster=true"
        else:
            port = free_port()
            admin = stack_of.enter_context(private_redis(tmp_path / "redis", port=port, tls=tls))
            nodes, address = [admin], f"127.0.0.1:{port}/0?cluster=false"
        trusting = f"{address}&ssl_ca_certs={tls.ca}"
        _confined_to_a(tenants, tmp_path, admin, nodes, trusting, scheme="rediss")
        a = tenants[0]
        feast = feast_store(tmp_path / a.namespace / "repo", PROJECT, {BATCH_VIEW: a.profile}, f"rediss://{trusting}",
                            namespace=a.namespace)
        online = feast.get_online_features([f"{BATCH_VIEW}:risk"], [{"account_id": x} for x in ACCOUNTS]).to_dict()
        assert online["risk"] == [a.factor * 0.5, a.factor * 1.5]

        with pytest.raises(redis.ConnectionError), redis.Redis(port=port) as plain:
            plain.ping()
        for refusal in _untrusting_clients(f"rediss://{address}"):
            assert "certificate verify failed" in refusal, refusal
        with pytest.raises(ValueError, match=re.escape(f"CA file '{tmp_path}/none.crt' unreadable")):
            serving_pool(Settings(redis_url=f"rediss://{address}&ssl_ca_certs={tmp_path}/none.crt",
                                  namespace=a.namespace, insecure_no_auth=True))


def _untrusting_clients(url: str) -> list[str]:
    """What the writers' client, serving's and Feast's say when they reach ``url`` without trusting its CA."""
    from feast.infra.online_stores.redis import RedisOnlineStore, RedisOnlineStoreConfig

    errors: list[str] = []
    with pytest.raises(ERRORS) as writer:
        connect(url).ping()
    errors.append(str(writer.value))
    pool = serving_pool(Settings(redis_url=url, namespace="none", insecure_no_auth=True))

    async def read() -> None:
        try:
            await pool.hmget_many([(b"key", pack_tail(b"field"), 1)])
        finally:
            await pool.close()

    with pytest.raises(RedisUnavailableError) as serving:
        asyncio.run(read())
    errors.append(str(serving.value))
    config = RedisOnlineStoreConfig(**render_online_store(url))
    with pytest.raises(ERRORS) as feast:
        RedisOnlineStore()._get_client(config).ping()
    errors.append(str(feast.value))
    return errors


def _confined_to_a(tenants: tuple[Tenant, Tenant], tmp_path: Path, admin: Store, nodes: list[redis.Redis],
                   address: str, scheme: str = "redis") -> None:
    """B's writers run as the admin; a user with ``acl_setuser``'s rules for A (set on each of ``nodes``) runs A's
    materializer, stream writes and serving through ``<scheme>://<user>:<password>@<address>`` and is refused
    every key of B, a script touching B's marker, and ``FLUSHALL``."""
    a, b = tenants
    end = datetime.now(UTC).replace(microsecond=0)
    _materialize(admin, b, tmp_path, end)
    _stream(admin, b, int(time.time() * 1000))
    user, password = f"sg-test-{uuid.uuid4().hex[:8]}", secrets.token_hex(16)
    for node in nodes:
        node.execute_command("ACL", "SETUSER", *acl_setuser(user, password, a.namespace, [PROJECT]))  # type: ignore[no-untyped-call]
    try:
        url = f"{scheme}://{user}:{password}@{address}"
        confined = connect(url)
        assert _materialize(confined, a, tmp_path, end) == 2
        with _serving(tmp_path, a, url) as app:
            results = _served_values(app, confined, a)
        assert [r["values"] for r in results] == _expected(a)
        assert all(r["statuses"] == ["present"] * 3 for r in results)

        now_ms = int(time.time() * 1000)
        theirs = [
            redis_key(b.store, {"account_id": "A1"}),
            pane_key(b.plan, b.plan.entity_key("A1")),
            heartbeat_key(b.store, b.plan.view),
            freshness_key(b.store, BATCH_VIEW),
            generation_key(b.store),
            coverage_key(b.store, b.plan.view),
        ]
        assert admin.exists(*theirs) == len(theirs)
        for key in theirs:
            with pytest.raises(redis.exceptions.NoPermissionError):
                confined.hgetall(key)  # type: ignore[arg-type]
            with pytest.raises(redis.exceptions.NoPermissionError):
                confined.hset(key, "x", "1")  # type: ignore[arg-type]
        with pytest.raises(redis.exceptions.NoPermissionError):
            ensure_generation(confined, b.store, now_ms)  # a script touching B's marker is refused too
        with pytest.raises(redis.exceptions.NoPermissionError):
            confined.flushall()
        assert admin.exists(*theirs) == len(theirs), "nothing of B was changed"
        confined.close()
    finally:
        for node in nodes:
            node.execute_command("ACL", "DELUSER", user)  # type: ignore[no-untyped-call]


def test_keys_written_before_the_namespace_read_stale_until_the_writers_reseed(
    stack: Endpoints, redis_client: redis.Redis, tenants: tuple[Tenant, Tenant], tmp_path: Path
) -> None:
    """The upgrade: the store holds a view under the layout without the namespace (its generation, coverage,
    rows and windows keyed by ``spec.project`` alone). The new layout is a new store generation: serving
    reads ``stale``, never the old values nor zeros; the materializer backfills (its watermark belongs to the
    old generation) and the stream's coverage is committed anew, and only then is the view ``present``."""
    a, _ = tenants
    old = PROJECT  # the old layout's key suffix: spec.project alone
    now_ms = int(time.time() * 1000)
    old_generation, _ = ensure_generation(redis_client, f"{old}{a.namespace}", now_ms)  # unique to this test
    old_keys = [generation_key(f"{old}{a.namespace}")]
    try:
        redis_client.hset(redis_key(f"{old}{a.namespace}", {"account_id": "A1"}),  # type: ignore[arg-type]
                          mapping={b"_ts:profile": b"x"})
        old_keys.append(redis_key(f"{old}{a.namespace}", {"account_id": "A1"}))
        (tmp_path / a.namespace / "watermark.json").write_text(json.dumps({
            "materializedUntil": (datetime.now(UTC) - timedelta(minutes=1)).isoformat(),
            "generation": old_generation}))
        with _serving(tmp_path, a, stack.redis_url) as app:
            results = _lookup(app)
            assert all(r["statuses"] == ["stale"] * 3 for r in results), results
            assert all(v is None for r in results for v in r["values"][:1]), "no old or zero batch value"

            watermark = FileWatermark(tmp_path / a.namespace / "watermark.json")
            run = materialize_incremental(redis_client, BATCH_VIEW, a.profile, watermark, namespace=a.namespace)
            assert run.backfill is not None and run.stats.written == 2, run
            results = _served_values(app, redis_client, a)
            assert [r["values"] for r in results] == _expected(a)
            assert all(r["statuses"] == ["present"] * 3 for r in results)
    finally:
        redis_client.delete(*old_keys)
