"""Lookups against real Redis: values equal what the layout writers wrote, with statuses and times."""

import time
from datetime import UTC, datetime

import pytest
import redis

from streamguard.onlinestore.window_layout import WRITTEN_BATCHES, heartbeat_key
from streamguard.windows import WindowShape
from tests.serving.conftest import ClientFactory
from tests.serving.support import (
    BATCH_VIEWS,
    WINDOW_VIEW,
    early_in_slide,
    entity_id,
    fraud_refs,
    keys_of,
    sample_value,
    write_batch_row,
    write_finserve_rows,
    write_progress,
    write_window,
)

pytestmark = pytest.mark.stack


def _iso(ts: float) -> str:
    return datetime.fromtimestamp(ts, UTC).isoformat().replace("+00:00", "Z")


def _row(i: int) -> dict[str, str]:
    return {key: entity_id(key, i) for key, _ in BATCH_VIEWS.values()}


def test_fraud_vector_equals_written_values(
    redis_client: redis.Redis, project: str, serving_client: ClientFactory
) -> None:
    written_at = time.time() - 120
    write_finserve_rows(redis_client, project, 5, written_at)
    with serving_client() as client:
        response = client.post("/features", json={"featureSet": "fraud", "entities": [_row(3), _row(4)]})
    assert response.status_code == 200
    body = response.json()
    assert body["features"] == fraud_refs()
    assert len(body["features"]) == 22
    for position, index in enumerate((3, 4)):
        result = body["results"][position]
        expected = [
            sample_value(dtype, index, feature)
            for _, (_, features) in sorted(BATCH_VIEWS.items())
            for feature, dtype in features
        ]
        assert result["values"] == expected
        assert result["statuses"] == ["present"] * 22
        assert result["eventTimestamps"] == [_iso(written_at)] * 22


def test_not_found_expired_and_null(redis_client: redis.Redis, project: str, serving_client: ClientFactory) -> None:
    now = time.time()
    write_batch_row(
        redis_client,
        project,
        "customer-profile",
        {"customer_id": "FRESH"},
        {"age": ("INT64", 41), "segment": ("STRING", None)},
        now - 60,
    )
    write_batch_row(
        redis_client, project, "customer-profile", {"customer_id": "OLD"}, {"age": ("INT64", 77)}, now - 2 * 86400
    )
    refs = ["customer-profile:age", "customer-profile:segment", "customer-profile:tenure_days"]
    with serving_client() as client:
        response = client.post(
            "/features",
            json={
                "features": refs,
                "entities": [{"customer_id": "FRESH"}, {"customer_id": "OLD"}, {"customer_id": "NOBODY"}],
            },
        )
    assert response.status_code == 200
    fresh, old, nobody = response.json()["results"]
    # present; present but null (an empty ValueProto); field never written for this entity
    assert fresh["values"] == [41, None, None]
    assert fresh["statuses"] == ["present", "present", "not_found"]
    assert fresh["eventTimestamps"][0] == _iso(now - 60)
    # older than the 1d TTL: expired, value withheld, its event time still reported
    assert old["values"] == [None, None, None]
    assert old["statuses"] == ["expired"] * 3
    assert old["eventTimestamps"] == [_iso(now - 2 * 86400)] * 3
    assert nobody == {"values": [None] * 3, "statuses": ["not_found"] * 3, "eventTimestamps": [None] * 3}


def _window_refs() -> list[str]:
    return [
        f"{WINDOW_VIEW}:{name}"
        for name in ("txn_count_1m", "amount_sum_1m", "amount_max_1m", "txn_count_5m", "amount_sum_5m", "amount_max_5m")
    ]


def test_window_values_empty_window_and_fraud_burst(
    redis_client: redis.Redis, project: str, serving_client: ClientFactory
) -> None:
    one, five = WindowShape.parse("1m", "15s"), WindowShape.parse("5m", "1m")
    request = {"features": _window_refs(), "entities": [{"customer_id": "C1"}, {"customer_id": "C2"}]}
    with serving_client() as client:
        # no heartbeat, no window: the stream never wrote anything for this view
        before = client.post("/features", json=request).json()["results"][0]
        assert before["statuses"] == ["not_found"] * 6

        now_ms = early_in_slide(one.slide_ms)

        def c1_window(suffix: str, shape: WindowShape, values: dict[str, float]) -> None:
            """C1's window of ``shape`` containing ``now_ms``."""
            write_window(redis_client, project, suffix, shape.end_as_of(now_ms), "C1", values)

        write_progress(redis_client, project, time.time())
        c1_window("1m", one, {"txn_count": 1, "amount_sum": 20.0, "amount_max": 20.0})
        c1_window("5m", five, {"txn_count": 2, "amount_sum": 35.5, "amount_max": 20.0})
        c1, c2 = client.post("/features", json=request).json()["results"]
        assert c1["values"] == [1, 20.0, 20.0, 2, 35.5, 20.0]
        assert c1["statuses"] == ["present"] * 6
        # a quiet customer while the stream is alive: an empty window (count 0, sum 0, max null)
        assert c2["values"] == [0, 0.0, None, 0, 0.0, None]
        assert c2["statuses"] == ["present"] * 6

        # the fraud burst: the streaming job overwrites the current windows with the jumped counts
        c1_window("1m", one, {"txn_count": 14, "amount_sum": 2980.0, "amount_max": 990.0})
        burst = client.post("/features", json=request).json()["results"][0]
        assert burst["values"][:3] == [14, 2980.0, 990.0]


def test_window_values_expire_when_the_stream_stops(
    redis_client: redis.Redis, project: str, serving_client: ClientFactory
) -> None:
    now = time.time()
    shape = WindowShape.parse("1m", "15s")
    write_window(redis_client, project, "1m", shape.end_as_of(int(now * 1000)), "C1", {"txn_count": 3})
    write_progress(redis_client, project, now - 11 * 60)  # TTL of the window view is 10m
    with serving_client() as client:
        result = client.post("/features", json={"features": _window_refs()[:1], "entities": [{"customer_id": "C1"}]})
    assert result.json()["results"][0]["statuses"] == ["expired"]
    assert result.json()["results"][0]["values"] == [None]


def test_cache_serves_within_its_staleness_bound(
    redis_client: redis.Redis, project: str, serving_client: ClientFactory
) -> None:
    write_batch_row(
        redis_client, project, "customer-profile", {"customer_id": "C"}, {"age": ("INT64", 30)}, time.time()
    )
    request = {"features": ["customer-profile:age"], "entities": [{"customer_id": "C"}]}
    with serving_client(cache_staleness=1.0) as client:
        assert client.post("/features", json=request).json()["results"][0]["values"] == [30]
        write_batch_row(
            redis_client, project, "customer-profile", {"customer_id": "C"}, {"age": ("INT64", 31)}, time.time()
        )
        assert client.post("/features", json=request).json()["results"][0]["values"] == [30]
        time.sleep(1.1)
        assert client.post("/features", json=request).json()["results"][0]["values"] == [31]
        metrics = client.get("/metrics").text
    # each request reads the row, the store's generation marker and the view's coverage
    assert "streamguard_serving_cache_hits_total 3.0" in metrics
    assert "streamguard_serving_cache_misses_total 6.0" in metrics


def test_a_batch_the_job_wrote_is_read_again_before_the_cache_staleness(
    redis_client: redis.Redis, project: str, serving_client: ClientFactory
) -> None:
    shape = WindowShape.parse("5m", "1m")
    now = early_in_slide(shape.slide_ms, margin_ms=30_000) / 1000
    write_progress(redis_client, project, now)
    write_window(redis_client, project, "5m", shape.end_as_of(int(now * 1000)), "C1", {"txn_count": 1})
    request = {"features": [f"{WINDOW_VIEW}:txn_count_5m"], "entities": [{"customer_id": "C1"}]}

    def served() -> object:
        return client.post("/features", json=request).json()["results"][0]["values"][0]

    with serving_client(cache_staleness=600.0) as client:
        assert served() == 1
        write_window(redis_client, project, "5m", shape.end_as_of(int(now * 1000)), "C1", {"txn_count": 2})
        time.sleep(0.5)  # the counters were read meanwhile: unchanged, so the cached window is served
        assert served() == 1
        redis_client.hincrby(heartbeat_key(keys_of(project), WINDOW_VIEW), WRITTEN_BATCHES, 1)  # type: ignore[arg-type]  # as the job does
        deadline = time.monotonic() + 5
        while served() != 2 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert served() == 2


def test_mixed_batch_and_window_features_of_many_rows(
    redis_client: redis.Redis, project: str, serving_client: ClientFactory
) -> None:
    now = time.time()
    write_finserve_rows(redis_client, project, 20, now - 30)
    write_progress(redis_client, project, now)
    shape = WindowShape.parse("5m", "1m")
    # The window containing the request's time (and the next ones, if a slide boundary passes meanwhile).
    for i in range(20):
        write_window(redis_client, project, "5m", shape.end_as_of(int(now * 1000)), entity_id("customer_id", i),
                     {"txn_count": i + 1})
    with serving_client() as client:
        response = client.post(
            "/features",
            json={
                "features": ["customer-profile:age", f"{WINDOW_VIEW}:txn_count_5m", "merchant-profile:country"],
                "entities": [_row(i) for i in range(20)],
            },
        )
    assert response.status_code == 200
    for i, result in enumerate(response.json()["results"]):
        assert result["values"] == [sample_value("INT64", i, "age"), i + 1, sample_value("STRING", i, "country")]
