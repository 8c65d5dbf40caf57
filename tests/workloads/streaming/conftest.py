"""Private services for streaming tests that stop or kill one: their own run directory, so the shared stack
is never disturbed. Each is started on a port of its own and stopped at the end of the test."""

import json
from collections.abc import Iterator

import pytest

from streamguard.devstack.stack import Stack
from tests.workloads.streaming.outages import start_object_store


@pytest.fixture
def private_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    """A Kafka broker of this test alone: ``(its stack, bootstrap)``."""
    stack = Stack(tmp_path_factory.mktemp("kafka-stack"))
    stack.restart("kafka")  # starts it (nothing to stop yet)
    port = json.loads((stack.run_dir / "ports.json").read_text())["kafka"]
    try:
        yield stack, f"127.0.0.1:{port}"
    finally:
        stack.down()


@pytest.fixture
def private_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    """An Apicurio registry of this test alone: ``(its stack, Confluent API URL)``."""
    stack = Stack(tmp_path_factory.mktemp("registry-stack"))
    stack.restart("apicurio-registry")
    port = json.loads((stack.run_dir / "ports.json").read_text())["registry"]
    try:
        yield stack, f"http://127.0.0.1:{port}/apis/ccompat/v7"
    finally:
        stack.down()


@pytest.fixture
def private_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    """A Redis of this test alone, started like the stack's (AOF ``everysec``, ``noeviction``): ``(its stack,
    URL)``."""
    stack = Stack(tmp_path_factory.mktemp("redis-stack"))
    stack.restart("redis")
    port = json.loads((stack.run_dir / "ports.json").read_text())["redis"]
    try:
        yield stack, f"redis://127.0.0.1:{port}/0"
    finally:
        stack.down()


@pytest.fixture
def private_object_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, dict[str, str]]]:
    """A SeaweedFS of this test alone with the devstack's bucket: ``(its stack, the AWS_* environment)``."""
    stack = Stack(tmp_path_factory.mktemp("object-store-stack"))
    try:
        yield stack, start_object_store(stack)
    finally:
        stack.down()
