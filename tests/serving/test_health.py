"""Readiness follows freshness and Redis; Redis going away is a fast 503, and serving recovers."""

import time
from contextlib import ExitStack
from pathlib import Path

import httpx
import pytest
import redis

from streamguard.devstack.private_redis import private_redis
from streamguard.devstack.supervisor import free_port
from tests.serving.conftest import ClientFactory
from tests.serving.support import (
    BATCH_VIEWS,
    WINDOW_VIEW,
    finserve_manifests,
    running_server,
    write_batch_freshness,
    write_config,
    write_finserve_rows,
    write_freshness,
    write_progress,
)

pytestmark = pytest.mark.stack


def _reasons(body: dict[str, object]) -> str:
    return " | ".join(str(r) for r in body["reasons"])  # type: ignore[attr-defined]


def test_readiness_flips_with_freshness(redis_client: redis.Redis, project: str, serving_client: ClientFactory) -> None:
    now = time.time()
    with serving_client() as client:
        never = client.get("/readyz")
        assert never.status_code == 503
        assert "never materialized" in _reasons(never.json())
        assert "no stream progress record" in _reasons(never.json())

        write_batch_freshness(redis_client, project, now - 30)
        write_progress(redis_client, project, now - 5)
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        assert ready.json()["ready"] is True
        assert {v["view"]: v["fresh"] for v in ready.json()["views"]} == dict.fromkeys(
            (*BATCH_VIEWS, WINDOW_VIEW), True
        )

        # the materializer of one view stops: its data ages past the 1h SLA
        write_freshness(redis_client, project, "merchant-profile", now - 3700)
        stale = client.get("/readyz")
        assert stale.status_code == 503
        assert "FeatureView merchant-profile" in _reasons(stale.json())
        assert "over its freshness SLA of 3600s" in _reasons(stale.json())
        # the stream stops: the window view ages past its 1m SLA too
        write_progress(redis_client, project, now - 90)
        assert "FeatureView customer-txn-windows" in _reasons(client.get("/readyz").json())

        # fresh data lands again
        write_freshness(redis_client, project, "merchant-profile", time.time())
        write_progress(redis_client, project, time.time())
        again = client.get("/readyz")
        assert again.status_code == 200, again.text

        metrics = client.get("/metrics").text
    assert 'streamguard_feature_freshness_seconds{view="merchant-profile"}' in metrics
    assert 'streamguard_feature_freshness_sla_seconds{view="customer-txn-windows"} 60.0' in metrics


def test_newest_row_read_counts_as_freshness(
    redis_client: redis.Redis, project: str, serving_client: ClientFactory
) -> None:
    write_finserve_rows(redis_client, project, 1, time.time() - 10)
    for view in ("account-profile", "merchant-profile"):
        write_freshness(redis_client, project, view, time.time())
    write_progress(redis_client, project, time.time())
    with serving_client() as client:
        assert client.get("/readyz").status_code == 503  # customer-profile: no freshness record yet
        client.post("/features", json={"features": ["customer-profile:age"], "entities": [{"customer_id": "C00000"}]})
        assert client.get("/readyz").status_code == 200


def test_redis_down_is_a_fast_503_and_recovers(tmp_path: Path, project: str) -> None:
    port = free_port()
    config = write_config(tmp_path / "features.yaml", finserve_manifests(project))
    request = {
        "featureSet": "fraud",
        "entities": [{"customer_id": "C00000", "account_id": "A00000", "merchant_id": "M00000"}],
    }
    store = ExitStack()  # a redis-server of our own (the shared one must not be stopped)
    client = store.enter_context(private_redis(tmp_path / "redis", port=port))
    with store, running_server(config, f"redis://127.0.0.1:{port}/0", "--cache-staleness", "0") as base:
        write_finserve_rows(client, project, 1, time.time())
        assert httpx.post(f"{base}/features", json=request).status_code == 200

        store.close()  # Redis goes away
        started = time.monotonic()
        down = httpx.post(f"{base}/features", json=request, timeout=10)
        assert time.monotonic() - started < 2.0
        assert down.status_code == 503
        assert "online store (Redis) unavailable" in down.json()["detail"]
        not_ready = httpx.get(f"{base}/readyz", timeout=10)
        assert not_ready.status_code == 503
        assert not_ready.json()["redis"] != "ok"
        assert "Redis unreachable" in " ".join(not_ready.json()["reasons"])

        with private_redis(tmp_path / "redis", port=port) as client:
            write_finserve_rows(client, project, 1, time.time())
            deadline = time.monotonic() + 5
            while httpx.post(f"{base}/features", json=request).status_code != 200:
                assert time.monotonic() < deadline, "serving did not recover within 5s of Redis coming back"
                time.sleep(0.1)
            metrics = httpx.get(f"{base}/metrics").text
    errors = next(line for line in metrics.splitlines() if line.startswith("streamguard_serving_redis_errors_total"))
    assert float(errors.split()[-1]) >= 1
