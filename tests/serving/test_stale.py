"""A stream that stops making progress is served ``stale`` (never ``present`` zeros), against real Redis
and the real serving app; readiness fails only when the view is required."""

import time
from typing import Any

import httpx
import pytest
import redis

from streamguard.devstack.endpoints import Endpoints
from streamguard.onlinestore.window_layout import HEARTBEAT_PROCESSED_AT, heartbeat_key
from streamguard.serving.settings import ADVISORY_VIEWS_ENV
from streamguard.windows import WindowShape
from tests.serving.conftest import ClientFactory
from tests.serving.support import (
    WINDOW_VIEW,
    finserve_manifests,
    keys_of,
    running_server,
    write_batch_freshness,
    write_config,
    write_progress,
    write_window,
)

pytestmark = pytest.mark.stack
REFS = [f"{WINDOW_VIEW}:{a}_1m" for a in ("txn_count", "amount_sum", "amount_max")]
REQUEST = {"features": REFS, "entities": [{"customer_id": "C1"}, {"customer_id": "C2"}]}
LAST = [3, 60.0, 30.0]
EMPTY = [0, 0.0, None]


def _end(length: str, slide: str) -> int:
    """The current window's end (:func:`write_window` covers the next windows too)."""
    return WindowShape.parse(length, slide).end_as_of(int(time.time() * 1000))


def _seed(client: redis.Redis, project: str) -> None:
    """Fresh batch views and the 1m windows of C1 for the next 45 s; C2 has none."""
    write_batch_freshness(client, project, time.time() - 30)
    write_window(client, project, "1m", _end("1m", "15s"), "C1",
                 dict(zip(("txn_count", "amount_sum", "amount_max"), LAST, strict=True)))


def _lookup(post: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    response = post("/features", json=REQUEST)
    assert response.status_code == 200, response.text
    c1, c2 = response.json()["results"]
    return c1, c2


def _view(body: dict[str, Any]) -> dict[str, Any]:
    return next(v for v in body["views"] if v["view"] == WINDOW_VIEW)


def test_stalled_stream_is_stale_and_fails_readiness_when_required(
    redis_client: redis.Redis, project: str, serving_client: ClientFactory
) -> None:
    _seed(redis_client, project)
    # caught up 90 s ago (SLA 1m, TTL 10m), alive now, failing since
    write_progress(
        redis_client, project, time.time() - 90, state="failing", reason="topic t.transactions does not exist"
    )
    with serving_client() as client:
        c1, c2 = _lookup(client.post)
        assert c1["statuses"] == ["stale"] * 3 and c1["values"] == LAST  # the value as last known
        assert c2["statuses"] == ["stale"] * 3 and c2["values"] == [None] * 3  # absent: null, never 0
        assert c1["eventTimestamps"][0] is not None

        ready = client.get("/readyz")
        assert ready.status_code == 503
        body = ready.json()
        assert body["ready"] is False and body["advisories"] == []
        reason = next(r for r in body["reasons"] if WINDOW_VIEW in r)
        assert "last caught up" in reason and "topic t.transactions does not exist" in reason
        assert _view(body)["required"] is True and _view(body)["fresh"] is False
        assert _view(body)["stream_state"] == "failing"
        metrics = client.get("/metrics").text
        assert f'streamguard_feature_fresh{{view="{WINDOW_VIEW}"}} 0.0' in metrics
        assert 'streamguard_feature_fresh{view="customer-profile"} 1.0' in metrics
        assert f'streamguard_feature_view_required{{view="{WINDOW_VIEW}"}} 1.0' in metrics

        # the job catches up again: present, and an absent window is the empty window
        write_progress(redis_client, project, time.time())
        c1, c2 = _lookup(client.post)
        assert c1["statuses"] == ["present"] * 3 and c1["values"] == LAST
        assert c2["statuses"] == ["present"] * 3 and c2["values"] == EMPTY
        assert client.get("/readyz").status_code == 200


def test_advisory_stale_view_keeps_the_server_ready(
    redis_client: redis.Redis, project: str, serving_client: ClientFactory
) -> None:
    _seed(redis_client, project)
    write_progress(redis_client, project, time.time() - 90, state="dead-lettering", reason="dead-lettered 100%")
    with serving_client(advisory_views=(WINDOW_VIEW,)) as client:
        ready = client.get("/readyz")
        assert ready.status_code == 200, ready.text
        body = ready.json()
        assert body["ready"] is True and body["reasons"] == []
        assert len(body["advisories"]) == 1 and "dead-lettered 100%" in body["advisories"][0]
        assert _view(body)["required"] is False and _view(body)["fresh"] is False
        assert body["policy"] == {"required": ["*"], "advisory": [WINDOW_VIEW]}
        # advisory changes readiness only: the values are still stale
        c1, c2 = _lookup(client.post)
        assert c1["statuses"] == ["stale"] * 3 and c2["values"] == [None] * 3
        assert client.get("/catalog").json()["views"][WINDOW_VIEW]["required"] is False
        metrics = client.get("/metrics").text
    assert f'streamguard_feature_fresh{{view="{WINDOW_VIEW}"}} 0.0' in metrics
    assert f'streamguard_feature_view_required{{view="{WINDOW_VIEW}"}} 0.0' in metrics


def test_liveness_alone_or_a_missing_topic_is_never_present(
    redis_client: redis.Redis, project: str, serving_client: ClientFactory
) -> None:
    _seed(redis_client, project)
    # an old job (or a job that never caught up) beats every second: alive, but no progress
    now_ms = str(int(time.time() * 1000))
    redis_client.hset(heartbeat_key(keys_of(project), WINDOW_VIEW), HEARTBEAT_PROCESSED_AT, now_ms)  # type: ignore[arg-type]
    with serving_client() as client:
        c1, c2 = _lookup(client.post)
        assert c1["statuses"] == ["stale"] * 3 and c1["values"] == LAST
        assert c2["statuses"] == ["stale"] * 3 and c2["values"] == [None] * 3
        assert "never caught up" in " ".join(client.get("/readyz").json()["reasons"])

        write_progress(redis_client, project, None, lag=0, state="failing", reason="topic t does not exist")
        c1, c2 = _lookup(client.post)
        assert c2["statuses"] == ["stale"] * 3 and c2["values"] == [None] * 3
        assert c2["eventTimestamps"] == [None] * 3


def test_partial_window_before_the_job_covers_it(
    redis_client: redis.Redis, project: str, serving_client: ClientFactory
) -> None:
    _seed(redis_client, project)
    now = time.time()
    write_window(redis_client, project, "5m", _end("5m", "1m"), "C1", {"txn_count": 4})
    # the job covers the events of the last 2 minutes only: the 5m window is partial, the 1m one complete
    write_progress(redis_client, project, now, complete_from=now - 120)
    refs = [f"{WINDOW_VIEW}:txn_count_1m", f"{WINDOW_VIEW}:txn_count_5m"]
    with serving_client() as client:
        response = client.post("/features", json={"features": refs, "entities": [{"customer_id": "C1"}]})
    assert response.json()["results"][0]["statuses"] == ["present", "partial"]
    assert response.json()["results"][0]["values"] == [3, 4]


def test_cached_progress_turns_stale_within_the_cache_staleness(
    redis_client: redis.Redis, project: str, serving_client: ClientFactory
) -> None:
    _seed(redis_client, project)
    write_progress(redis_client, project, time.time())
    with serving_client(cache_staleness=1.0) as client:
        assert _lookup(client.post)[1]["statuses"] == ["present"] * 3
        write_progress(redis_client, project, time.time() - 90)
        time.sleep(1.1)
        c1, c2 = _lookup(client.post)
    assert c1["statuses"] == ["stale"] * 3 and c2["values"] == [None] * 3


@pytest.mark.parametrize(
    ("flags", "env", "ready"),
    [
        (("--required-views", "customer-profile,account-profile,merchant-profile"), {}, 200),
        ((), {ADVISORY_VIEWS_ENV: "customer-txn-*"}, 200),
        (("--required-views", WINDOW_VIEW), {}, 503),
        (("--required-views", "customer-profile,no-such-view"), {}, 503),
    ],
)
def test_policy_from_the_command_line(
    stack: Endpoints,
    redis_client: redis.Redis,
    project: str,
    tmp_path: Any,
    monkeypatch: pytest.MonkeyPatch,
    flags: tuple[str, ...],
    env: dict[str, str],
    ready: int,
) -> None:
    _seed(redis_client, project)
    write_progress(redis_client, project, time.time() - 90)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    config = write_config(tmp_path / "features.yaml", finserve_manifests(project))
    with running_server(config, stack.redis_url, "--cache-staleness", "0", *flags) as base:
        response = httpx.get(f"{base}/readyz", timeout=10)
        c1, c2 = _lookup(lambda path, **kw: httpx.post(f"{base}{path}", timeout=10, **kw))
    assert response.status_code == ready, response.text
    assert c1["statuses"] == ["stale"] * 3 and c2["values"] == [None] * 3
    if any("no-such-view" in flag for flag in flags):
        assert "FeatureView no-such-view: required by the readiness policy but not served" in response.json()["reasons"]
