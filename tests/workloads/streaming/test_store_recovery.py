"""The streaming job against an online store that loses keys, under load, with the real job, Kafka and registry
and a Redis of the test's own (the stack's settings: AOF ``everysec``, ``noeviction``):

* ``FLUSHALL`` mid-stream, then a SIGKILL of Redis restarted after ``OUTAGE_S`` (60 s, issue 20; it reloads its
  AOF): while Redis is away the StreamingWindow is ``StreamRunning=False StoreUnavailable`` and serving answers
  503; until the job has re-seeded, the real serving app answers every window ``stale``; the windows closed
  before the loss are whole the moment coverage is committed; afterwards every (entity, window) equals the
  reference, as stored and as served, the view's stream coverage is in the new generation, the job is
  ``StreamRunning=True`` again and nothing was dead-lettered.
* a Redis Cluster (3 masters, a replica each) loses a master mid-stream, under load: while its slots have no
  master, serving marks the rows it cannot read ``stale`` (or refuses, 503, once every node answers
  ``CLUSTERDOWN``) and reads nothing as ``not_found`` or a lost value as ``present``; the replica takes over,
  the generation of the whole cluster ends, serving reads every window ``stale`` until the job has re-seeded,
  and then every (entity, window) equals the reference, as stored and as served.
* a full store: batches fail loudly (``StreamRunning=False StoreFull``), no window value changes, progress
  does not advance; with ``allkeys-lru`` set by hand the generation ends, serving never answers an evicted
  window as present, and the job re-seeds once memory is freed.
"""

import contextlib
import json
import os
import signal
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol, cast

import pytest
import redis
from fastapi.testclient import TestClient
from kubernetes import client

from streamguard.api.featureview import FeatureView, FeatureViewSpec
from streamguard.api.streamingwindow import StreamingWindow, StreamingWindowSpec
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.private_redis import PrivateCluster, private_redis_cluster
from streamguard.devstack.stack import Stack
from streamguard.devstack.supervisor import free_port
from streamguard.onlinestore.client import ERRORS
from streamguard.onlinestore.client import Store as StoreClient
from streamguard.onlinestore.feast_layout import serialize_entity_key
from streamguard.onlinestore.generation import (
    STALE,
    STREAM,
    Coverage,
    reading,
)
from streamguard.onlinestore.pane_layout import pane_key
from streamguard.onlinestore.slots import key_slot
from streamguard.onlinestore.tenancy import store_project
from streamguard.onlinestore.writers import current_marker, read_coverage
from streamguard.serving.app import create_app
from streamguard.serving.catalog import panes_of
from streamguard.serving.settings import Settings
from streamguard.windows import WindowShape
from streamguard.workloads.producer.kafka import TransactionSender, ensure_topic
from tests.conftest import Kubectl
from tests.serving.support import write_config
from tests.workloads.streaming.outages import OUTAGE_S, read_dead_letters
from tests.workloads.streaming.support import (
    V1,
    JobProcess,
    Key,
    apply_window,
    current_windows,
    expected_panes,
    expected_windows,
    job_in,
    mismatches,
    online_mismatches,
    open_after,
    progress,
    read_panes,
    read_windows,
    same,
    scratch_topic,
    stored_windows,
    stream_running,
    view_spec,
    wait_for,
    window_spec,
)
from tests.workloads.streaming.test_crash_recovery import AGGREGATIONS, NAMES, Load

pytestmark = [pytest.mark.stack, pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(1500)]
LATENESS_MS = 25_000
"""Load sends events up to 20 s after their event time; with 5 s for the producer's buffer, a window ending
this long before a moment has all its events in Kafka by then."""


class Online(Protocol):
    """The online store a test's job writes to: its URL and a client of it."""

    @property
    def url(self) -> str: ...

    @property
    def client(self) -> StoreClient: ...


class Store:
    """A redis-server of this test alone, started like the stack's (``components.redis``)."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.port = json.loads((stack.run_dir / "ports.json").read_text())["redis"]
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.client = redis.Redis(port=self.port, socket_timeout=10)

    def kill(self) -> None:
        pid = self.stack.supervisor.running_pid("redis")
        assert pid is not None, "redis is not running"
        os.killpg(pid, signal.SIGKILL)

    def run_id(self) -> str:
        return str(cast(dict[str, Any], self.client.info("server"))["run_id"])


@pytest.fixture
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    stack = Stack(tmp_path_factory.mktemp("redis-stack"))
    stack.restart("redis")  # starts it (nothing to stop yet)
    try:
        yield Store(stack)
    finally:
        stack.down()


@pytest.fixture
def topic(stack: Endpoints) -> Iterator[str]:
    with scratch_topic(stack, "store") as name:
        ensure_topic(stack.kafka_bootstrap, name)
        yield name


def _job_in_cluster(stack: Endpoints, store_url: str, kube_api: client.ApiClient, kubectl: Kubectl, tmp_path: Path,
                    topic: str) -> tuple[str, StreamingWindowSpec, FeatureViewSpec, JobProcess]:
    """A StreamingWindow ``activity`` on ``topic`` (from ``latest``) and its FeatureView applied in a namespace of
    their own, and its job (not started) writing to the test's Redis at ``store_url`` and reporting
    ``StreamRunning`` on it: ``(namespace, spec, features, job)``."""
    namespace = f"store-{uuid.uuid4().hex[:8]}"
    spec = window_spec(topic, V1, AGGREGATIONS, watermark="1m", trigger="1s")
    spec.source.starting_offsets = "latest"
    features = view_spec(spec, topic.replace("-", ""))
    apply_window(kube_api, kubectl, namespace, spec, features)
    job = job_in(tmp_path, stack, namespace, "activity", spec, features,
                 extra_env={"STREAMGUARD_REDIS_URL": store_url, "KUBECONFIG": stack.kubeconfig})
    return namespace, spec, features, job


def _tear_down(load: Load, job: JobProcess, kube_api: client.ApiClient, namespace: str) -> None:
    if load.started:
        load.stop()
    job.stop()
    client.CoreV1Api(kube_api).delete_namespace(namespace)


def _running_again(kubectl: Kubectl, namespace: str, job: JobProcess) -> None:
    wait_for(lambda: (c := stream_running(kubectl, namespace, "activity")) and c["status"] == "True", 120,
             "StreamRunning=True again", job)


def _current(store: Online, project: str) -> str | None:
    marker = current_marker(store.client, project)  # of the whole cluster (CURRENT_GENERATION sees one node)
    return None if marker is None else marker.id


def _covered(store: Online, project: str, view: str, not_in: set[str | None]) -> Coverage | None:
    """The stream coverage, once it is committed in the current generation and that is none of ``not_in``."""
    current = _current(store, project)
    coverage = read_coverage(store.client, project, view, STREAM)
    if current in not_in or coverage is None or coverage.generation != current:
        return None
    return coverage


def _start_ms(spec: StreamingWindowSpec, key: Key) -> int:
    window = next(w for w in spec.windows if w.suffix == key[1])
    return key[2] - WindowShape.parse(window.length, window.slide).length_ms


def _serving(store: Online, namespace: str, spec: StreamingWindowSpec, features: FeatureViewSpec,
             tmp_path: Path) -> Settings:
    """The serving app's settings for the job's view on the test's Redis (no cache, a health tick every 0.25 s)."""
    manifests = [FeatureView(metadata={"name": spec.feature_view, "namespace": namespace}, spec=features).wire(),
                 StreamingWindow(metadata={"name": "store", "namespace": namespace}, spec=spec).wire()]
    return Settings.model_validate({
        "redis_url": store.url, "config_file": str(write_config(tmp_path / "features.yaml", manifests)),
        "cache_staleness": 0.0, "freshness_interval": 0.25, "insecure_no_auth": True})


def _served(app: TestClient, spec: StreamingWindowSpec, accounts: list[str]) -> dict[Key, tuple[str, list[Any]]]:
    """What serving answers now for every window feature of ``accounts``: (account, window, end it read) ->
    (status, values in ``NAMES`` order). Fails when a slide boundary passed during the request."""
    shapes = {w.suffix: WindowShape.parse(w.length, w.slide) for w in spec.windows}
    refs = [f"{spec.feature_view}:{name}_{suffix}" for suffix in shapes for name in NAMES]
    before = {suffix: shape.end_as_of(int(time.time() * 1000)) for suffix, shape in shapes.items()}
    response = app.post("/features", json={"features": refs, "entities": [{"account_id": a} for a in accounts]})
    assert response.status_code == 200, response.text
    after = {suffix: shape.end_as_of(int(time.time() * 1000)) for suffix, shape in shapes.items()}
    if before != after:
        return _served(app, spec, accounts)
    out = {}
    for account, row in zip(accounts, response.json()["results"], strict=True):
        for i, suffix in enumerate(shapes):
            part = slice(i * len(NAMES), (i + 1) * len(NAMES))
            statuses = set(row["statuses"][part])
            assert len(statuses) == 1, row
            out[(account, suffix, before[suffix])] = (statuses.pop(), row["values"][part])
    return out


def _until_reseeded(store: Store, app: TestClient, project: str, spec: StreamingWindowSpec,
                    events: list[dict[str, Any]], old: str | None, lost_ms: int,
                    timeout: float, some_whole: bool) -> tuple[set[str], list[str]]:
    """Read every account's windows through serving until the job has committed stream coverage in a
    generation other than ``old``. Returns the statuses serving answered before that (a read counts once a check
    made after it still finds no such coverage: the job may commit it while serving answers), and the mismatches at
    that moment of the panes the coverage spans that were complete when the store lost its keys (at
    ``lost_ms``) and that a window still open contains: the re-seed must have restored them whole. ``some_whole``:
    there must be such panes (after a Redis kill there may be none: its outage and re-seed can outlast every open
    window whose panes were complete before the kill; the final comparison of every open window covers it)."""
    view = spec.feature_view
    panes = expected_panes(events, spec)
    longest = {WindowShape.parse(w.length, w.slide).slide_ms: 0 for w in spec.windows}
    for w in spec.windows:
        shape = WindowShape.parse(w.length, w.slide)
        longest[shape.slide_ms] = max(longest[shape.slide_ms], shape.length_ms)
    accounts = sorted({key[0] for key in panes})
    seen: set[str] = set()
    last: set[str] = set()  # the statuses of the last read, counted once a check made after it finds no coverage
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            current = _current(store, project)
            coverage = read_coverage(store.client, project, view, STREAM)
            if current not in (None, old) and coverage is not None and coverage.generation == current:
                now_ms = int(time.time() * 1000)
                whole = {key: values for key, values in panes.items()
                         if key[2] >= coverage.since_ms and key[2] + key[1] <= lost_ms - LATENESS_MS
                         and key[2] + longest[key[1]] > now_ms}
                assert whole or not some_whole, "panes complete before the loss that an open window still contains"
                return seen, mismatches(whole, read_panes(store.client, project, spec, whole), NAMES)
        except redis.ConnectionError:  # the store is down: serving answers 503
            assert app.post("/features", json={"features": [f"{view}:txn_count_1m"],
                                               "entities": [{"account_id": accounts[0]}]}).status_code == 503
            time.sleep(0.2)
            continue
        seen |= last
        last = {status for status, _ in _served(app, spec, accounts).values()}
        time.sleep(0.2)
    raise AssertionError(f"no stream coverage in a new generation within {timeout}s")


def _exact_as_served(app: TestClient, spec: StreamingWindowSpec, events: list[dict[str, Any]]) -> list[str]:
    """Differences between serving's answers (``present``, values) and the reference for every account's
    windows containing now (an absent window is empty: count 0, sums 0, min and max null)."""
    expected = expected_windows(events, spec)
    accounts = sorted({key[0] for key in expected})
    out = []
    for key, (status, values) in _served(app, spec, accounts).items():
        want = expected.get(key, {"txn_count": 0, "amount_sum": 0.0, "amount_min": None, "amount_max": None})
        if status != "present" or not all(same(want[n], v) for n, v in zip(NAMES, values, strict=True)):
            out.append(f"{key}: served {status} {values}, expected {[want[n] for n in NAMES]}")
    return out


def test_wipe_and_redis_kill_mid_stream_reseed_every_window_and_read_stale_until_then(
        stack: Endpoints, store: Store, kube_api: client.ApiClient, kubectl: Kubectl, crds: None, tmp_path: Path,
        topic: str) -> None:
    namespace, spec, features, job = _job_in_cluster(stack, store.url, kube_api, kubectl, tmp_path, topic)
    project, view = store_project(namespace, features.project), spec.feature_view
    load = Load(TransactionSender(stack.kafka_bootstrap, stack.registry_url, topic, V1), seed=11)
    settings = _serving(store, namespace, spec, features, tmp_path)

    def exact(events: list[dict[str, Any]]) -> bool:
        return not online_mismatches(store.client, project, spec, events, NAMES)

    try:
        job.start()
        wait_for(lambda: (p := progress(store.client, project, view)) and p.state == "running", 420,
                 "the job running on the empty topic", job)
        load.start()
        loading = time.monotonic()
        first = wait_for(lambda: _covered(store, project, view, {None}), 120, "stream coverage on first start", job)
        wait_for(lambda: (p := progress(store.client, project, view)) and (p.batch_id or 0) >= 5
                 and len(load.sent) > 600, 300, "batches under load", job)
        # 150 s of load: a 1-minute pane complete more than LATENESS_MS before the wipe, in the 5-minute window
        # still open when the re-seed commits, is there for the check of the re-seeded panes.
        time.sleep(max(0.0, loading + 150 - time.monotonic()))
        with TestClient(create_app(settings)) as app:
            assert {s for s, _ in _served(app, spec, ["K0", "K1"]).values()} == {"present"}

            wiped_ms = int(time.time() * 1000)
            store.client.flushall()  # mid-stream, under load
            statuses, short = _until_reseeded(store, app, project, spec, list(load.sent), first.generation,
                                              wiped_ms, 300, some_whole=True)
            assert statuses == {"stale"}, "until re-seeded, serving reads every window stale, never present"
            assert not short, f"windows closed before the wipe not whole once covered: {short[:5]}"
            after_wipe = _covered(store, project, view, {None, first.generation})
            assert after_wipe is not None

            killed_ms, killed_run = int(time.time() * 1000), store.run_id()
            store.kill()  # AOF everysec: the last second may be lost
            down = time.monotonic()
            away = wait_for(lambda: (c := stream_running(kubectl, namespace, "activity")) and c["status"] == "False"
                            and c["reason"] == "StoreUnavailable" and c, OUTAGE_S,
                            "StreamRunning=False StoreUnavailable while Redis is away", job)
            assert "Redis unreachable" in away["message"], away
            assert app.post("/features", json={"features": [f"{view}:txn_count_1m"],
                                               "entities": [{"account_id": "K0"}]}).status_code == 503
            time.sleep(max(0.0, down + OUTAGE_S - time.monotonic()))
            store.stack.restart("redis")
            assert store.run_id() != killed_run, "a restarted server (its AOF reloaded)"
            statuses, short = _until_reseeded(store, app, project, spec, list(load.sent),
                                              after_wipe.generation, killed_ms, 420, some_whole=False)
            assert statuses <= {"stale"}, "until re-seeded after the restart, serving reads every window stale"
            assert not short, f"windows closed before the kill not whole once covered: {short[:5]}"
            after_kill = _covered(store, project, view, {None, first.generation, after_wipe.generation})
            assert after_kill is not None
            covered_ms = int(time.time() * 1000)

            events = load.stop()
            wait_for(lambda: exact(events), 300, "every window exact after the wipe and the kill", job, every=3)
            assert not _exact_as_served(app, spec, events), "serving answers the reference, present"
        expected = expected_windows(events, spec)
        accounts = {e["account_id"] for e in events}
        assert stored_windows(store.client, project, spec, accounts, open_after(events, spec)) \
            == set(current_windows(expected, events, spec)), "nothing that should not be"
        # The re-seed rebuilds the windows open when it ran (closed ones the AOF kept); how many closed before
        # depends on how long the run took, so only windows ending after the coverage was seen are checked.
        assert after_kill.since_ms <= min(_start_ms(spec, key) for key in expected if key[2] > covered_ms), \
            "coverage spans every window open at the re-seed"
        assert max(e["event_time"] for e in events) > killed_ms and job.alive(), "load ran through both recoveries"
        metrics = job.metrics()
        assert metrics["streamguard_stream_reseed_duration_seconds_count"] >= 2, "both recoveries re-seeded"
        assert metrics["streamguard_stream_query_restarts_total"] >= 1, "Redis down: the batch failed and retried"
        _running_again(kubectl, namespace, job)
        assert read_dead_letters(stack.kafka_bootstrap, topic + ".dlq") == [], "nothing dead-lettered"
    finally:
        _tear_down(load, job, kube_api, namespace)


def _used(store: Store) -> int:
    return int(cast(dict[str, Any], store.client.info("memory"))["used_memory"])


def _fill(store: Store, headroom: int) -> None:
    """Lower ``maxmemory`` to just above the data and write unrelated keys until Redis refuses (OOM); then hold
    it below what is used, so no write slips in when usage dips (client buffers)."""
    store.client.config_set("maxmemory", _used(store) + headroom)
    with pytest.raises(redis.exceptions.OutOfMemoryError):
        for key in range(1_000_000):
            store.client.set(f"filler:{key}", b"x" * 1000)
    store.client.config_set("maxmemory", _used(store) - 64 * 1024)


def _window_values(store: Store, project: str, view: str) -> dict[bytes, dict[bytes, bytes]]:
    """Every pane hash of the view, whole."""
    keys = list(store.client.scan_iter(match=f"sgp:{project}:{view}:*".encode(), count=1000))
    pipe = store.client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    return dict(zip(keys, pipe.execute(), strict=True))


def test_a_full_store_fails_batches_loudly_and_an_evicting_one_is_reseeded(
        stack: Endpoints, store: Store, kube_api: client.ApiClient, kubectl: Kubectl, crds: None,
        tmp_path: Path, topic: str) -> None:
    namespace, spec, features, job = _job_in_cluster(stack, store.url, kube_api, kubectl, tmp_path, topic)
    project, view = store_project(namespace, features.project), spec.feature_view
    load = Load(TransactionSender(stack.kafka_bootstrap, stack.registry_url, topic, V1), seed=13)

    def exact(events: list[dict[str, Any]]) -> bool:
        return not online_mismatches(store.client, project, spec, events, NAMES)

    try:
        job.start()
        wait_for(lambda: (c := stream_running(kubectl, namespace, "activity")) and c["status"] == "True", 420,
                 "StreamRunning=True", job)
        load.start()
        first = wait_for(lambda: _covered(store, project, view, {None}), 120, "stream coverage", job)
        wait_for(lambda: (p := progress(store.client, project, view)) and (p.batch_id or 0) >= 5
                 and len(load.sent) > 300, 300, "batches under load", job)

        _fill(store, headroom=256 * 1024)  # the store fills up (other views, tenants)
        full = wait_for(lambda: (c := stream_running(kubectl, namespace, "activity")) and c["status"] == "False"
                        and c, 120, "StreamRunning=False", job)
        assert full["reason"] == "StoreFull" and "OOM" in full["message"] and "maxmemory" in full["message"]
        before = _window_values(store, project, view)
        stalled = progress(store.client, project, view)
        time.sleep(20)  # more batches try and fail
        assert _window_values(store, project, view) == before, "no window value changes silently"
        assert progress(store.client, project, view) == stalled, "no progress while the store refuses writes"
        assert stream_running(kubectl, namespace, "activity")["reason"] == "StoreFull"  # type: ignore[index]
        assert _current(store, project) == first.generation, "noeviction: nothing lost, the generation holds"

        store.client.config_set("maxmemory-policy", "allkeys-lru")  # set by hand, and memory tighter still
        store.client.config_set("maxmemory", _used(store) * 4 // 5)
        wait_for(lambda: int(cast(dict[str, Any], store.client.info("stats"))["evicted_keys"]) > 0, 120,
                 "evictions", job)
        assert _current(store, project) != first.generation, "an eviction ends the generation"
        keys = sorted(expected_windows(list(load.sent), spec))
        current = _current(store, project)
        coverage = read_coverage(store.client, project, view, STREAM)
        present = read_windows(store.client, project, spec, keys)
        absent = [key for key in keys if key not in present]
        assert absent, "allkeys-lru evicted windows"
        assert all(reading(current, coverage, _start_ms(spec, key), False, evicting=True) == STALE
                   for key in absent), "an evicted window never reads as a present zero"
        with TestClient(create_app(_serving(store, namespace, spec, features, tmp_path))) as app:
            time.sleep(1)  # a few health ticks: serving has read the server's policy
            served = _served(app, spec, sorted({key[0] for key in keys}))
            stored = read_windows(store.client, project, spec, served)
        gone = [key for key in served if key not in stored]
        assert all(served[key][0] == "stale" for key in gone), f"served an evicted window: {served}"

        fillers = list(store.client.scan_iter(match=b"filler:*", count=10_000))
        if fillers:
            store.client.delete(*fillers)
        store.client.config_set("maxmemory", 0)
        reseeded = wait_for(lambda: _covered(store, project, view, {None, first.generation}), 300,
                            "stream coverage in the generation after the evictions", job)
        events = load.stop()
        wait_for(lambda: exact(events), 300, "every window exact after the re-seed", job, every=3)
        assert _covered(store, project, view, {None, first.generation}) is not None
        assert reseeded.since_ms <= min(_start_ms(spec, key) for key in expected_windows(events, spec))
        _running_again(kubectl, namespace, job)
    finally:
        _tear_down(load, job, kube_api, namespace)



class ClusterStore:
    """A Redis Cluster of this test alone: 3 masters with a replica each, a replica taking over 2 s after its
    master stops answering."""

    def __init__(self, cluster: PrivateCluster) -> None:
        self.cluster = cluster
        self.url = cluster.url
        self.seed = int(self.url.split(":")[2].split("/")[0])
        """The node the URL names: every client of the test learns the cluster from it, so it is never killed."""
        self.client = cluster.client()


def _serving_statuses(app: TestClient, spec: StreamingWindowSpec, accounts: list[str]) -> set[str] | None:
    """The statuses serving answers for every window of ``accounts`` now; ``None`` when it refused (503)."""
    refs = [f"{spec.feature_view}:{name}_{w.suffix}" for w in spec.windows for name in NAMES]
    response = app.post("/features", json={"features": refs, "entities": [{"account_id": a} for a in accounts]})
    if response.status_code == 503:
        return None
    assert response.status_code == 200, response.text
    return {status for row in response.json()["results"] for status in row["statuses"]}


def test_a_cluster_master_killed_mid_stream_fails_over_and_every_window_is_exact_again(
        stack: Endpoints, kube_api: client.ApiClient, kubectl: Kubectl, crds: None, tmp_path: Path,
        topic: str) -> None:
    with private_redis_cluster(tmp_path / "redis", masters=3, replicas=1) as cluster:
        store = ClusterStore(cluster)
        namespace, spec, features, job = _job_in_cluster(stack, store.url, kube_api, kubectl, tmp_path, topic)
        project, view = store_project(namespace, features.project), spec.feature_view
        load = Load(TransactionSender(stack.kafka_bootstrap, stack.registry_url, topic, V1), seed=12)
        settings = _serving(store, namespace, spec, features, tmp_path)
        try:
            job.start()
            wait_for(lambda: (p := progress(store.client, project, view)) and p.state == "running", 420,
                     "the job running on the empty topic", job)
            load.start()
            first = wait_for(lambda: _covered(store, project, view, {None}), 120, "stream coverage on first start",
                             job)
            wait_for(lambda: (p := progress(store.client, project, view)) and (p.batch_id or 0) >= 5
                     and len(load.sent) > 600, 300, "batches under load", job)
            accounts = sorted({e["account_id"] for e in load.sent})
            prefix, _ = panes_of(spec.feature_view, view_spec(spec, "entities_only"), spec, project)
            ranges = cluster.masters_by_slot_range(store.seed)
            holders = {master for a in accounts
                       for (low, high), master in ranges.items()
                       if low <= key_slot(pane_key(prefix, serialize_entity_key({"account_id": a}))) <= high}
            victim = next(port for port in sorted(holders) if port != store.seed)
            with TestClient(create_app(settings)) as app:
                assert _serving_statuses(app, spec, accounts) == {"present"}
                cluster.kill(victim)
                killed = time.monotonic()
                seen: list[set[str] | None] = []
                renewed = None
                while renewed is None:
                    assert time.monotonic() - killed < 420, f"no re-seed after the failover; serving saw {seen}"
                    seen.append(_serving_statuses(app, spec, accounts))
                    with contextlib.suppress(*ERRORS):  # the generation's slot may have no master yet
                        renewed = _covered(store, project, view, {None, first.generation})
                    time.sleep(0.2)
                # refused (every node answers CLUSTERDOWN while a slot has no master: Redis' default), or rows marked
                assert all(statuses is None or statuses <= {"present", "stale"} for statuses in seen), seen
                assert any(statuses == {"stale"} for statuses in seen), "stale between the failover and the re-seed"
                events = load.stop()
                wait_for(lambda: not online_mismatches(store.client, project, spec, events, NAMES), 300,
                         "every window exact after the failover", job, every=3)
                assert not _exact_as_served(app, spec, events), "serving answers the reference, present"
            assert victim not in cluster.live() and len(cluster.masters_by_slot_range(store.seed)) >= 3
            assert max(e["event_time"] for e in events) > int(time.time() * 1000) - 600_000 and job.alive()
            assert job.metrics()["streamguard_stream_reseed_duration_seconds_count"] >= 1, "re-seeded"
            _running_again(kubectl, namespace, job)
        finally:
            _tear_down(load, job, kube_api, namespace)


def test_a_job_started_while_no_cluster_node_answers_reports_store_unavailable_and_runs_once_one_does(
        stack: Endpoints, kube_api: client.ApiClient, kubectl: Kubectl, crds: None, tmp_path: Path,
        topic: str) -> None:
    """redis-py's cluster client reads the slot table when it is made: the job makes it when it first needs the
    store, so it waits, saying why, instead of exiting."""
    ports: list[int] = []
    for _ in range(3):
        ports.append(free_port(ports))
    namespace, spec, features, job = _job_in_cluster(stack, f"redis://127.0.0.1:{ports[0]}/0?cluster=true",
                                                     kube_api, kubectl, tmp_path, topic)
    try:
        job.start()
        away = wait_for(lambda: (c := stream_running(kubectl, namespace, "activity")) and c["status"] == "False"
                        and c["reason"] == "StoreUnavailable" and c, 300,
                        "StreamRunning=False StoreUnavailable while no node of the cluster answers", job)
        assert f"127.0.0.1:{ports[0]}" in away["message"], away
        time.sleep(5)
        assert job.alive(), "the job waits for the store instead of exiting"
        with private_redis_cluster(tmp_path / "redis", masters=3, replicas=0, ports=ports) as cluster:
            store = ClusterStore(cluster)
            project = store_project(namespace, features.project)
            wait_for(lambda: (p := progress(store.client, project, spec.feature_view)) and p.state == "running", 300,
                     "the job running once the cluster answers", job)
            _running_again(kubectl, namespace, job)
            store.client.close()
    finally:
        job.stop()
        client.CoreV1Api(kube_api).delete_namespace(namespace)
