"""Every read of a request (all views, windows, heartbeats and entity rows) goes out in ONE round trip."""

import asyncio
import time
from pathlib import Path

import pytest
import redis

from streamguard.devstack.endpoints import Endpoints
from streamguard.serving.cache import TTLCache
from streamguard.serving.lookup import Lookup
from streamguard.serving.redisio import RedisPool
from streamguard.serving.selection import resolve
from streamguard.serving.sources import FileSource
from tests.serving.support import WINDOW_VIEW, entity_id, fraud_refs, write_finserve_rows, write_progress

pytestmark = pytest.mark.stack


class CountingPool(RedisPool):
    """A real pool that counts its round trips (each ``execute`` is one write and its replies)."""

    round_trips = 0

    async def execute(self, payload: bytes, count: int, errors: bool = True) -> list[object]:
        self.round_trips += 1
        return await super().execute(payload, count, errors)


def test_one_pipeline_for_all_views_and_rows(
    stack: Endpoints, redis_client: redis.Redis, project: str, config_path: Path
) -> None:
    write_finserve_rows(redis_client, project, 3, time.time())
    write_progress(redis_client, project, time.time())
    catalog = FileSource(config_path).current()
    assert catalog is not None
    selection = resolve(catalog, [*fraud_refs(), f"{WINDOW_VIEW}:txn_count_1m", f"{WINDOW_VIEW}:amount_max_5m"])
    rows = [{k: entity_id(k, i) for k in ("customer_id", "account_id", "merchant_id")} for i in range(3)]

    async def run() -> tuple[int, list[list[str]]]:
        pool = CountingPool(stack.redis_url)
        _, statuses, _, _ = await Lookup(pool, TTLCache(0)).read(selection, rows)
        await pool.close()
        return pool.round_trips, statuses

    round_trips, statuses = asyncio.run(run())
    assert round_trips == 1
    assert all(row == ["present"] * 24 for row in statuses)
