"""Redis keeps data across a restart (AOF) and never evicts (a full store refuses writes)."""

import time
import uuid
from pathlib import Path
from typing import cast

import redis

from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.stack import Stack


def test_value_survives_restart(stack: Endpoints) -> None:
    connection = redis.Redis.from_url(stack.redis_url)
    key = f"stacktest:{uuid.uuid4().hex}"
    connection.set(key, b"kept")
    time.sleep(1.5)  # appendfsync everysec
    Stack(Path(stack.run_dir)).restart("redis")
    assert redis.Redis.from_url(stack.redis_url).get(key) == b"kept"


def test_persistence_and_eviction_settings(redis_client: redis.Redis) -> None:
    config = cast(dict[str, str], redis_client.config_get("*"))
    assert config["appendonly"] == "yes"
    assert config["appendfsync"] == "everysec"
    assert config["save"] == ""
    assert config["maxmemory-policy"] == "noeviction"
    assert int(config["maxmemory"]) > 0
