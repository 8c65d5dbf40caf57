"""Private services for streaming tests that stop or kill one: their own run directory, so the shared stack
is never disturbed. Each is started on a port of its own and stopped at the end of the test. And the online
store a test runs against: the stack's Redis, or a 3-master Redis Cluster of the test's own."""

import json
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import redis

from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.private_redis import private_redis_cluster, private_redis_sentinel
from streamguard.devstack.stack import Stack
from streamguard.onlinestore.client import Store, connect
from tests.workloads.streaming.outages import start_object_store


@contextmanager
def _private(factory: pytest.TempPathFactory, service: str, port_name: str,
             address: str) -> Iterator[tuple[Stack, str]]:
    """``service`` started in a run directory of its own: ``(its stack, address.format(port=its port))``."""
    stack = Stack(factory.mktemp(f"{port_name}-stack"))
    stack.restart(service)  # starts it (nothing to stop yet)
    port = json.loads((stack.run_dir / "ports.json").read_text())[port_name]
    try:
        yield stack, address.format(port=port)
    finally:
        stack.down()


@pytest.fixture
def private_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    """A Kafka broker of this test alone: ``(its stack, bootstrap)``."""
    with _private(tmp_path_factory, "kafka", "kafka", "127.0.0.1:{port}") as found:
        yield found


@pytest.fixture
def private_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    """An Apicurio registry of this test alone: ``(its stack, Confluent API URL)``."""
    with _private(tmp_path_factory, "apicurio-registry", "registry",
                  "http://127.0.0.1:{port}/apis/ccompat/v7") as found:
        yield found


@pytest.fixture
def private_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    """A Redis of this test alone, started like the stack's (AOF ``everysec``, ``noeviction``): ``(its stack,
    URL)``."""
    with _private(tmp_path_factory, "redis", "redis", "redis://127.0.0.1:{port}/0") as found:
        yield found


@pytest.fixture
def private_object_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, dict[str, str]]]:
    """A SeaweedFS of this test alone with the devstack's bucket: ``(its stack, the AWS_* environment)``."""
    stack = Stack(tmp_path_factory.mktemp("object-store-stack"))
    try:
        yield stack, start_object_store(stack)
    finally:
        stack.down()


@pytest.fixture(params=["server", "cluster", "sentinel"])
def online_store(request: pytest.FixtureRequest, stack: Endpoints, redis_client: redis.Redis,
                 tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Store]]:
    """``(URL, client)`` of the online store: the stack's Redis, a Redis Cluster of 3 masters, then a master and a
    replica that 3 Redis Sentinels monitor, the job finding the master through them (all on loopback,
    ``private_redis``)."""
    if request.param == "server":
        yield stack.redis_url, redis_client
    elif request.param == "cluster":
        with private_redis_cluster(tmp_path_factory.mktemp("redis-cluster"), masters=3, replicas=0) as cluster:
            yield cluster.url, cluster.client()
    else:
        with private_redis_sentinel(tmp_path_factory.mktemp("redis-sentinel")) as sentinels, \
                connect(sentinels.url) as store:
            yield sentinels.url, store
