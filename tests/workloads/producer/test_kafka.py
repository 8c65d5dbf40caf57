"""The producer's records, registered through the one registry client and framed by fastavro, read back by
an independent decoder (confluent-kafka's ``AvroDeserializer``) from the stack's Kafka and Apicurio."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from confluent_kafka import Consumer
from confluent_kafka.admin import AdminClient
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroDeserializer
from confluent_kafka.serialization import MessageField, SerializationContext

from streamguard.contracts import wire
from streamguard.contracts.registry import SchemaRegistry
from streamguard.workloads.producer.events import TrafficProfile, events
from streamguard.workloads.producer.kafka import TransactionSender, ensure_topic, schema_fields
from tests.workloads.streaming.support import V1

pytestmark = pytest.mark.stack


def test_sent_transactions_decode_with_the_registered_schema(kafka_bootstrap: str, registry_url: str) -> None:
    topic = f"producer-{uuid.uuid4().hex[:8]}"
    subject = f"{topic} a/b-value"  # a subject that must be quoted in the registry's paths
    sent = events(TrafficProfile(), seed=7, start_ms=1_700_000_000_000, count=5)
    ensure_topic(kafka_bootstrap, topic, partitions=1)
    consumer = Consumer({"bootstrap.servers": kafka_bootstrap, "group.id": topic, "auto.offset.reset": "earliest"})
    try:
        sender = TransactionSender(kafka_bootstrap, registry_url, topic, V1, subject)
        for event in sent:
            sender.send(event)
        sender.flush(30)
        with SchemaRegistry(registry_url) as registry:
            registered = registry.lookup(subject, V1)
            assert registered is not None and registered.id == sender.schema_id
            assert registry.compatibility(subject) == "BACKWARD"

        deserialize = AvroDeserializer(SchemaRegistryClient({"url": registry_url}),
                                       conf={"subject.name.strategy": topic_subject_name_strategy})
        consumer.subscribe([topic])
        received = []
        for _ in range(60):
            message = consumer.poll(1.0)
            if message is not None and message.error() is None and (value := message.value()) is not None:
                assert wire.schema_id(value) == sender.schema_id
                received.append(deserialize(value, SerializationContext(topic, MessageField.VALUE)))
            if len(received) == len(sent):
                break
    finally:
        consumer.close()
        AdminClient({"bootstrap.servers": kafka_bootstrap}).delete_topics([topic])
        with SchemaRegistry(registry_url) as registry:
            registry.delete_subject(subject, permanent=True)
    fields = schema_fields(V1)
    epoch = datetime.fromtimestamp(0, UTC)
    for record in received:  # timestamp-millis comes back as a datetime
        record["event_time"] = (record["event_time"] - epoch) // timedelta(milliseconds=1)
    assert received == [{k: event[k] for k in fields} for event in sent]
