"""An online store that lost keys never reads as `present` zeros (issue 19, serving side).

The real serving app over a redis-server of our own (flushed, restarted and switched to an evicting policy
here, never the stack's Redis), seeded and re-seeded through the writers' scripts
(:mod:`streamguard.onlinestore.writers`), exactly as the materializer and the streaming job do.
"""

import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

import pytest
import redis
from fastapi.testclient import TestClient

from streamguard.devstack.private_redis import private_redis
from streamguard.devstack.supervisor import free_port
from streamguard.onlinestore.generation import BATCH, STREAM, coverage_key, generation_key
from streamguard.serving.app import create_app
from streamguard.serving.settings import Settings
from streamguard.windows import WindowShape
from tests.serving.support import (
    BATCH_VIEWS,
    WINDOW_VIEW,
    cover,
    finserve_manifests,
    keys_of,
    unique_project,
    write_batch_freshness,
    write_config,
    write_finserve_rows,
    write_progress,
    write_window,
)

AGGREGATES = ("txn_count", "amount_sum", "amount_max")
BATCH_REFS = ["customer-profile:age", "customer-profile:segment"]
REFS = [*BATCH_REFS, *(f"{WINDOW_VIEW}:{a}_1m" for a in AGGREGATES)]
SEEDED, NEW = "C00000", "C00001"
"""``SEEDED`` has a batch row and 1m windows; ``NEW`` has neither."""
REQUEST: dict[str, Any] = {"features": REFS, "entities": [{"customer_id": SEEDED}, {"customer_id": NEW}]}
LAST = [3, 60.0, 30.0]
EMPTY = [0, 0.0, None]
SEEDED_BATCH = [7 * 0 + len("age"), "segment-0"]
TICK = 0.25
"""Seconds between health ticks (``freshness_interval``) in these tests."""


@dataclass
class Store:
    client: redis.Redis
    url: str
    project: str
    config: Path
    window_end_ms: int
    """The end of the 1m window the test's windows are written to, fixed when the store is made: a re-seed writes
    the same pane again, as the job's does, even after the test crossed a slide boundary."""

    def serve(self, **overrides: object) -> AbstractContextManager[TestClient]:
        return _serve(self, **overrides)


@contextmanager
def _serve(store: Store, **overrides: object) -> Iterator[TestClient]:
    values: dict[str, object] = {
        "redis_url": store.url,
        "config_file": str(store.config),
        "cache_staleness": 0.0,
        "freshness_interval": TICK,
        "insecure_no_auth": True,
        **overrides,
    }
    with TestClient(create_app(Settings.model_validate(values))) as client:
        yield client


def _store(client: redis.Redis, tmp_path: Path) -> Store:
    project = unique_project()
    port = client.connection_pool.connection_kwargs["port"]
    config = write_config(tmp_path / "features.yaml", finserve_manifests(project))
    end = WindowShape.parse("1m", "15s").end_as_of(int(time.time() * 1000))
    return Store(client, f"redis://127.0.0.1:{port}/0", project, config, end)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with private_redis(tmp_path / "redis") as client:
        yield _store(client, tmp_path)


def _window(store: Store, customer: str, values: list[Any]) -> None:
    """The 1m windows of ``customer`` for 45 s from the store's making (a test may cross a slide boundary)."""
    write_window(store.client, store.project, "1m", store.window_end_ms, customer,
                 dict(zip(AGGREGATES, values, strict=True)))


def _stream_and_materializer_running(client: redis.Redis, project: str) -> None:
    """What the writers keep writing whatever the store's state: progress and freshness records."""
    write_progress(client, project, time.time())
    write_batch_freshness(client, project, time.time() - 30)


def _seed(store: Store) -> None:
    """The writers after (re-)seeding: generation and coverage, a batch row and windows of ``SEEDED``."""
    cover(store.client, store.project)
    write_finserve_rows(store.client, store.project, 1, time.time() - 60)
    _window(store, SEEDED, LAST)
    _stream_and_materializer_running(store.client, store.project)


Read = tuple[list[str], list[Any]]


def _read(app: TestClient) -> tuple[Read, Read]:
    response = app.post("/features", json=REQUEST)
    assert response.status_code == 200, response.text
    seeded, new = response.json()["results"]
    return (seeded["statuses"], seeded["values"]), (new["statuses"], new["values"])


def _assert_served(app: TestClient) -> None:
    seeded, new = _read(app)
    assert seeded == (["present"] * 5, [*SEEDED_BATCH, *LAST])
    assert new == (["not_found", "not_found", *["present"] * 3], [None, None, *EMPTY])


def _until(check: Callable[[], bool], seconds: float) -> float:
    """Seconds until ``check()`` holds; fails after ``seconds``."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < seconds, f"not within {seconds}s"
        time.sleep(0.05)
    return time.monotonic() - started


def _info(client: redis.Redis, section: str) -> dict[str, Any]:
    return cast(dict[str, Any], client.info(section))


def _views(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {v["view"]: v for v in body["views"]}


def test_flushall_reads_stale_until_the_writers_reseed(store: Store) -> None:
    _seed(store)
    with store.serve() as app, store.serve(advisory_views="*") as advisory:
        _assert_served(app)
        assert app.get("/readyz").status_code == 200

        store.client.flushall()
        # the stream and the materializer's records come back at once; the job writes the windows of the
        # events since the flush only (1 transaction instead of 3): never to be served as present
        _stream_and_materializer_running(store.client, store.project)
        _window(store, SEEDED, [1, 5.0, 5.0])
        seeded, new = _read(app)
        assert seeded == (["stale"] * 5, [None, None, 1, 5.0, 5.0])
        assert new == (["stale"] * 5, [None] * 5)

        not_ready = app.get("/readyz")
        assert not_ready.status_code == 503
        body = not_ready.json()
        for view in (*BATCH_VIEWS, WINDOW_VIEW):
            assert any(r.startswith(f"FeatureView {view}: StoreGenerationMissing: ") for r in body["reasons"]), body
        views = _views(body)
        assert views["customer-profile"]["coverage"] == {"batch": "StoreGenerationMissing"}
        assert views[WINDOW_VIEW]["coverage"] == {"stream": "StoreGenerationMissing"}
        assert not any(v["fresh"] for v in views.values())
        metrics = app.get("/metrics").text
        assert f'streamguard_feature_fresh{{view="{WINDOW_VIEW}"}} 0.0' in metrics
        assert f'streamguard_feature_store_covered{{part="stream",view="{WINDOW_VIEW}"}} 0.0' in metrics

        # the same views, advisory only: reported, but the server stays ready
        relaxed = advisory.get("/readyz")
        assert relaxed.status_code == 200, relaxed.text
        assert any("StoreGenerationMissing" in a for a in relaxed.json()["advisories"])

        # the writers re-seed: a new generation, the backfill and the re-seeded windows, then coverage
        _seed(store)
        _assert_served(app)
        assert app.get("/readyz").status_code == 200
        metrics = app.get("/metrics").text
        assert f'streamguard_feature_store_covered{{part="stream",view="{WINDOW_VIEW}"}} 1.0' in metrics


def test_a_flush_shows_on_the_next_round_trip_even_with_a_warm_cache(store: Store) -> None:
    _seed(store)
    with store.serve(cache_staleness=30.0) as app:
        _assert_served(app)  # coverage, marker and values now cached
        store.client.flushall()
        _stream_and_materializer_running(store.client, store.project)
        response = app.post("/features", json={**REQUEST, "entities": [*REQUEST["entities"], {"customer_id": "C9"}]})
        assert response.status_code == 200
        for row in response.json()["results"]:  # C9 was not cached: the marker was read again for all
            assert row["statuses"] == ["stale"] * 5


def test_coverage_starting_after_the_window_start_is_stale(store: Store) -> None:
    _seed(store)
    # a new generation whose stream part was re-seeded from 30 s ago only: a 1m window lacks events
    store.client.delete(generation_key(keys_of(store.project)), coverage_key(keys_of(store.project), WINDOW_VIEW))
    cover(store.client, store.project, {v: (BATCH,) for v in BATCH_VIEWS})
    cover(store.client, store.project, {WINDOW_VIEW: (STREAM,)}, since_ms=int(time.time() * 1000) - 30_000)
    with store.serve() as app:
        seeded, new = _read(app)
        assert seeded == (["present", "present", *["stale"] * 3], [*SEEDED_BATCH, *LAST])
        assert new == (["not_found", "not_found", *["stale"] * 3], [None] * 5)
        body = app.get("/readyz").json()
        assert _views(body)[WINDOW_VIEW]["coverage"] == {"stream": "CoverageTooShort"}
        assert [r.split(": ")[1] for r in body["reasons"]] == ["CoverageTooShort"]


def test_an_evicting_policy_makes_absent_values_stale_within_one_tick(store: Store) -> None:
    _seed(store)
    with store.serve() as app:
        _assert_served(app)
        store.client.config_set("maxmemory-policy", "allkeys-lru")

        def absent_is_stale() -> bool:
            return _read(app)[1][0] == ["stale"] * 5

        assert _until(absent_is_stale, 2 * TICK + 1.0) <= 2 * TICK + 1.0
        seeded, new = _read(app)
        assert seeded == (["present"] * 5, [*SEEDED_BATCH, *LAST])  # stored values are what they say
        assert new == (["stale"] * 5, [None] * 5)  # an absent key proves nothing: never a present zero

        # then Redis really evicts: the generation ends, every value is stale until the writers re-seed
        used = int(_info(store.client, "memory")["used_memory"])
        store.client.config_set("maxmemory", used + 2 * 1024 * 1024)
        filler = 0
        while int(_info(store.client, "stats")["evicted_keys"]) == 0:
            store.client.set(f"filler:{filler}", b"x" * 10_000)
            filler += 1
        _until(lambda: _read(app)[0][0] == ["stale"] * 5, 2 * TICK + 1.0)
        for statuses, values in _read(app):
            assert "present" not in statuses and values[2:] != EMPTY
        reasons = app.get("/readyz").json()["reasons"]
        assert any(f"FeatureView {WINDOW_VIEW}: StoreGenerationMissing" in r for r in reasons), reasons


def test_a_redis_restart_reads_stale_until_reseeded_even_with_every_key_kept(tmp_path: Path) -> None:
    port = free_port()
    aof = ("--appendonly", "yes", "--appendfsync", "always")
    first = ExitStack()
    with first:
        store = _store(first.enter_context(private_redis(tmp_path / "redis", *aof, port=port)), tmp_path)
        _seed(store)
        with store.serve() as app:
            _assert_served(app)
            first.close()  # SIGTERM: the AOF keeps every key
            # restarted from its AOF: every key is back, the marker too, but it is another server
            with private_redis(tmp_path / "redis", *aof, port=port) as client:
                store.client = client
                assert client.exists(generation_key(keys_of(store.project)))
                _stream_and_materializer_running(client, store.project)
                seeded, new = _read(app)
                assert seeded == (["stale"] * 5, [*SEEDED_BATCH, *LAST])
                assert new == (["stale"] * 5, [None] * 5)
                reasons = app.get("/readyz").json()["reasons"]
                assert any(f"FeatureView {WINDOW_VIEW}: StoreGenerationMissing" in r for r in reasons), reasons

                _seed(store)
                _assert_served(app)
                assert app.get("/readyz").status_code == 200


def test_coverage_of_an_older_pane_layout_does_not_count(store: Store) -> None:
    """Right after an upgrade from pane keys without the final ``:`` (``panes/1``) or without the hash tag
    (``panes/2``): the job's coverage names that layout (``stream.panes:``, ``stream.panes2:``) and the hashes under
    the new keys are empty until the job re-seeds them. Serving reads the window view ``stale``, never the empty
    hashes as zeros."""
    _seed(store)
    coverage = coverage_key(keys_of(store.project), WINDOW_VIEW)
    fields = cast(dict[bytes, bytes], store.client.hgetall(coverage))  # type: ignore[arg-type]
    assert fields and all(field.startswith(b"stream.panes3:") for field in fields)
    store.client.delete(coverage)
    store.client.hset(coverage, mapping={older + f.split(b":", 1)[1]: v  # type: ignore[arg-type]
                                         for f, v in fields.items() for older in (b"stream.panes:", b"stream.panes2:")})
    for key in store.client.scan_iter(match=b"sgp:*"):
        store.client.delete(key)
    with store.serve() as app:
        seeded, new = _read(app)
    assert seeded == (["present"] * 2 + ["stale"] * 3, [*SEEDED_BATCH, None, None, None])
    assert new == (["not_found", "not_found", *["stale"] * 3], [None] * 5)
