"""Kafka (KRaft) and the Confluent-compatible registry, used through confluent-kafka's Avro serde."""

import http.client
import json
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator

import pytest
from confluent_kafka import Consumer, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer, AvroSerializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streamguard.devstack.components import set_registry_default_compatibility
from streamguard.devstack.stack import Stack

V1 = {"type": "record", "name": "Payment", "namespace": "stacktest",
      "fields": [{"name": "id", "type": "string"}, {"name": "amount", "type": "double"}]}


def _schema(extra_field: dict[str, object]) -> str:
    return json.dumps({**V1, "fields": [*V1["fields"], extra_field]})


def _register(registry_url: str, subject: str, schema: str) -> tuple[int, dict[str, object]]:
    """POST one schema version; a connection the registry dropped before answering is tried again (a CI run
    saw Apicurio log a registration 200 and close the connection unanswered). Registering the same schema
    again is idempotent in the Confluent API (same id, no new version), so the retry cannot hide a bug."""
    request = urllib.request.Request(
        f"{registry_url}/subjects/{subject}/versions", method="POST",
        data=json.dumps({"schema": schema, "schemaType": "AVRO"}).encode(),
        headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})

    def post() -> tuple[int, dict[str, object]]:
        try:
            with urllib.request.urlopen(request, timeout=10) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as error:
            return error.code, json.loads(error.read() or b"{}")

    try:
        return post()
    except (http.client.RemoteDisconnected, ConnectionResetError):
        return post()


def test_avro_round_trip_through_six_partition_topic(kafka_bootstrap: str, registry_url: str) -> None:
    topic = f"stacktest-{uuid.uuid4().hex[:8]}"
    admin = AdminClient({"bootstrap.servers": kafka_bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=6, replication_factor=1)])[topic].result(30)
    assert len(admin.list_topics(topic, timeout=10).topics[topic].partitions) == 6

    registry = SchemaRegistryClient({"url": registry_url})
    # The topic's own subject, named outright: the client's default strategy first asks the registry for
    # "associations" (a Confluent-only API), which Apicurio answers 404, and its pooled connection then hung
    # a later request once (a CI run stalled 10 min on it).
    by_topic = {"subject.name.strategy": topic_subject_name_strategy}
    serializer = AvroSerializer(registry, json.dumps(V1), conf=by_topic)
    record = {"id": "pay-1", "amount": 12.5}
    producer = Producer({"bootstrap.servers": kafka_bootstrap})
    value = serializer(record, SerializationContext(topic, MessageField.VALUE))
    assert value is not None and value[0] == 0  # Confluent wire format: magic byte, then schema id
    producer.produce(topic, key=b"acct-1", value=value)
    assert producer.flush(30) == 0

    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": topic, "auto.offset.reset": "earliest"})
    consumer.subscribe([topic])
    try:
        message = None
        for _ in range(60):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None:
                break
        assert message is not None and message.error() is None, "no record consumed within 60 s"
        decoded = AvroDeserializer(registry, conf=by_topic)(message.value(),
                                                            SerializationContext(topic, MessageField.VALUE))
    finally:
        consumer.close()
    assert decoded == record


def test_backward_compatibility_is_enforced_by_default(registry_url: str) -> None:
    subject = f"stacktest-{uuid.uuid4().hex[:8]}-value"
    status, _ = _register(registry_url, subject, json.dumps(V1))
    assert status == 200
    status, body = _register(registry_url, subject, _schema({"name": "country", "type": "string"}))
    assert status == 409, body
    status, body = _register(registry_url, subject,
                             _schema({"name": "country", "type": "string", "default": "NL"}))
    assert status == 200, body
    with urllib.request.urlopen(f"{registry_url}/subjects/{subject}/versions", timeout=10) as response:
        assert json.loads(response.read()) == [1, 2]


@pytest.fixture
def private_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Stack, str]]:
    """Only the registry, in a stack run directory of its own (restarting the shared one would disturb others)."""
    stack = Stack(tmp_path_factory.mktemp("stack-registry"))
    stack.restart("apicurio-registry")
    url = f"http://127.0.0.1:{json.loads((stack.run_dir / 'ports.json').read_text())['registry']}/apis/ccompat/v7"
    try:
        yield stack, url
    finally:
        stack.down()


def _get(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def test_registry_keeps_subjects_ids_and_compatibility_across_restarts(private_registry: tuple[Stack, str]) -> None:
    stack, url = private_registry
    set_registry_default_compatibility(url)
    subject = f"stacktest-{uuid.uuid4().hex[:8]}-value"
    status, first = _register(url, subject, json.dumps(V1))
    assert status == 200, first
    status, second = _register(url, subject, _schema({"name": "country", "type": "string", "default": "NL"}))
    assert status == 200, second

    stack.restart("apicurio-registry")

    assert _get(f"{url}/subjects/{subject}/versions") == [1, 2]
    assert _get(f"{url}/subjects/{subject}/versions/1")["id"] == first["id"]  # type: ignore[index]
    assert _get(f"{url}/subjects/{subject}/versions/2")["id"] == second["id"]  # type: ignore[index]
    assert json.loads(str(_get(f"{url}/schemas/ids/{first['id']}")["schema"])) == V1  # type: ignore[index]
    # The global BACKWARD rule survived too: nothing re-applied it after the restart.
    status, body = _register(url, subject, _schema({"name": "city", "type": "string"}))
    assert status == 409, body
