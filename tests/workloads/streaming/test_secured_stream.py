"""The stream end to end over Kafka SASL_SSL and a registry over TLS with authentication on (issue 16, point 5).

A private stack (no node) whose Kafka also serves a SASL_SSL listener (SCRAM-SHA-512, broker certificate from
the stack's CA) and whose Apicurio serves HTTPS only with HTTP basic auth required
(:mod:`streamguard.devstack.secured`). The job (host Spark) is given only the secured entrances, through the
same environment contract the operator renders from Secrets. Windows go to the shared stack's Redis.
"""

import asyncio
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from streamguard import clientsecurity
from streamguard.clientsecurity import KafkaSecurity, RegistrySecurity
from streamguard.contracts.registry import AsyncSchemaRegistry, RegistryRejectedError, SchemaRegistry
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.secured import Secured
from streamguard.devstack.stack import Stack
from streamguard.onlinestore.tenancy import store_project
from streamguard.operator.topics import KafkaAuthenticationError, Topics
from streamguard.workloads.producer.kafka import TransactionSender, ensure_topic
from tests.workloads.streaming.support import (
    AGGREGATIONS,
    NAMES,
    V1,
    job_in,
    online_mismatches,
    progress,
    view_spec,
    wait_for,
    window_spec,
)

pytestmark = [pytest.mark.stack, pytest.mark.spark, pytest.mark.timeout(900)]

T0 = 1_767_225_600_000


@pytest.fixture(scope="module")
def secured(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    """Kafka and the registry of this module alone, with their secured entrances."""
    stack = Stack(tmp_path_factory.mktemp("secured-stack"), secured=True)
    try:
        for service in ("kafka", "apicurio-registry"):
            stack.restart(service)
        entrances = stack.secured_entrances()
        assert entrances is not None
        yield entrances
    finally:
        stack.down()


def _event(account: str, offset_s: int, amount: float) -> dict[str, Any]:
    return {"transaction_id": uuid.uuid4().hex, "account_id": account, "customer_id": "C1", "merchant_id": "M1",
            "amount": amount, "currency": "EUR", "channel": "ECOMMERCE", "event_time": T0 + offset_s * 1000,
            "is_fraud": False, "amount_usd": None, "note": None}


def _topic_with_events(secured: Secured, events: list[dict[str, Any]]) -> str:
    """A new topic on the SASL_SSL listener holding ``events``, registered through the authenticated registry."""
    topic = f"secured-{uuid.uuid4().hex[:8]}"
    kafka = secured.kafka
    ensure_topic(kafka.bootstrap, topic, partitions=2, security=kafka.security)
    sender = TransactionSender(kafka.bootstrap, secured.registry_url, topic, V1, extra=kafka.security.confluent(),
                               registry_security=secured.registry_security)
    for event in events:
        sender.send(event)
    sender.flush()
    assert not sender.errors, sender.errors
    return topic


def test_the_stream_runs_end_to_end_over_sasl_ssl(stack: Endpoints, redis_client: "redis.Redis", tmp_path: Path,
                                                  secured: Secured) -> None:
    events = [_event(f"s-{i % 3}", i * 7, float(i + 1)) for i in range(30)]
    topic = _topic_with_events(secured, events)
    # The operator's admin client checks the topic over SASL_SSL too.
    state = asyncio.run(Topics(secured.kafka.bootstrap, 10.0, secured.kafka.security).describe(topic))
    assert state is not None and state.partitions == 2
    project = topic.replace("-", "")
    spec = window_spec(topic, V1, AGGREGATIONS, watermark="10m")
    job = job_in(tmp_path, stack, "secured", "secured", spec, view_spec(spec, project), extra_env=secured.env())
    keys = store_project("secured", project)
    began = time.monotonic()
    job.start()
    try:
        wait_for(lambda: not online_mismatches(redis_client, keys, spec, events, NAMES), 300,
                 "every window equal to the reference", job, every=2)
        print(f"windows exact {time.monotonic() - began:.1f}s after the job started")
        wait_for(lambda: (r := progress(redis_client, keys, spec.feature_view)) and r.state == "running", 60,
                 "the job's progress record saying running", job)
    finally:
        job.stop()


def test_refused_credentials_give_a_truthful_status(stack: Endpoints, redis_client: "redis.Redis", tmp_path: Path,
                                                    secured: Secured) -> None:
    topic = _topic_with_events(secured, [_event("r-0", 0, 1.0)])
    spec = window_spec(topic, V1, AGGREGATIONS, watermark="10m")

    # The operator: its topic check names Kafka's refusal.
    wrong = KafkaSecurity.model_validate({**secured.kafka.security.model_dump(), "password": "not-the-password"})
    with pytest.raises(KafkaAuthenticationError, match="SASL authentication"):
        asyncio.run(Topics(secured.kafka.bootstrap, 5.0, wrong).describe(topic))
    # The registry client (operator and job): no or wrong credentials are refused with 401, not retried as away.
    for security in (RegistrySecurity(ca_file=secured.ca_file),
                     RegistrySecurity(ca_file=secured.ca_file, username=secured.registry_username, password="nope")):
        with SchemaRegistry(secured.registry_url, security=security) as registry, \
                pytest.raises(RegistryRejectedError) as refused:
            registry.versions(f"{topic}-value")
        assert refused.value.status == 401
        assert f"schema registry {secured.registry_url} refused the client's credentials" in str(refused.value)

        async def check(security: RegistrySecurity = security) -> None:
            client = AsyncSchemaRegistry(secured.registry_url, security=security)
            try:
                with pytest.raises(RegistryRejectedError):
                    await client.versions(f"{topic}-value")
            finally:
                await client.close()

        asyncio.run(check())

    # The job: a wrong Kafka password, then a wrong registry password. Each time it stays up, says why it does
    # not progress, and makes no progress.
    refused_by_registry = f"schema registry {secured.registry_url} refused the client's credentials"
    for name, override, said in (
            ("kafka", {clientsecurity.KAFKA_PASSWORD_ENV: "not-the-password"}, "SASL authentication"),
            ("registry", {clientsecurity.REGISTRY_PASSWORD_ENV: "not-the-password"}, refused_by_registry)):
        folder = tmp_path / name
        folder.mkdir()
        project = topic.replace("-", "") + name
        job = job_in(folder, stack, "secured", f"refused-{name}", spec, view_spec(spec, project),
                     extra_env={**secured.env(), **override}).start()
        try:
            keys = store_project("secured", project)
            record = wait_for(lambda: (r := progress(redis_client, keys, spec.feature_view))  # noqa: B023
                              and r.state == "failing" and r, 240, f"the job failing on refused {name} credentials",
                              job)
            assert said in record.reason, record
            assert name != "kafka" or record.reason.startswith("Kafka unavailable"), record
            assert record.progress_at_ms is None
            time.sleep(5)
            assert job.alive(), job.tail()
        finally:
            job.stop()
