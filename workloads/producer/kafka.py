"""Sending transactions to Kafka in Confluent wire format (the contract registered through
:mod:`streamguard.contracts.registry`, the body written by fastavro)."""

import io
import json
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import fastavro
from confluent_kafka import KafkaError, KafkaException, Producer
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from streamguard.clientsecurity import KafkaEndpoint, KafkaSecurity, RegistrySecurity
from streamguard.contracts import wire
from streamguard.contracts.registry import SchemaRegistry
from streamguard.workloads.producer.events import Emission, Event

DEFAULT_PARTITIONS = 6


def ensure_topic(bootstrap: str, topic: str, partitions: int = DEFAULT_PARTITIONS, replication: int = 1,
                 timeout_s: float = 30.0, security: KafkaSecurity | None = None) -> None:
    """Create ``topic`` unless it exists (an existing topic is left as it is)."""
    admin = AdminClient(KafkaEndpoint(bootstrap, security or KafkaSecurity()).confluent())
    futures = admin.create_topics([NewTopic(topic, num_partitions=partitions, replication_factor=replication)],
                                  operation_timeout=timeout_s)
    try:
        futures[topic].result(timeout=timeout_s)
    except KafkaException as error:
        if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
            raise


def schema_fields(schema: str) -> list[str]:
    parsed = json.loads(schema)
    return [f["name"] for f in parsed.get("fields", [])]


class TransactionSender:
    """Registers ``schema`` under ``subject`` before the first event (idempotent for a schema the subject
    holds), frames each event with its id and produces keyed by ``account_id``. The producer is idempotent, so
    broker retries never duplicate an event."""

    def __init__(self, bootstrap: str, registry_url: str, topic: str, schema: str, subject: str | None = None,
                 extra: dict[str, Any] | None = None, registry_security: RegistrySecurity | None = None) -> None:
        self.topic = topic
        self.subject = subject or f"{topic}-value"
        self._fields = schema_fields(schema)
        self._schema = schema
        self._parsed = fastavro.parse_schema(json.loads(schema))
        self._registry_url = registry_url
        self._registry_security = registry_security
        self._schema_id: int | None = None
        self._producer = Producer({
            "bootstrap.servers": bootstrap,
            "enable.idempotence": True,
            "linger.ms": 5,
            "batch.num.messages": 10000,
            "queue.buffering.max.messages": 500000,
            "compression.type": "lz4",
            **(extra or {}),
        })
        self.errors: list[str] = []
        self.sent = 0

    def _delivered(self, error: KafkaError | None, _message: object) -> None:
        if error is not None:
            self.errors.append(str(error))

    @property
    def schema_id(self) -> int:
        """The registry's id of the sender's schema (registered on first use)."""
        if self._schema_id is None:
            with SchemaRegistry(self._registry_url, security=self._registry_security) as registry:
                self._schema_id = registry.register(self.subject, self._schema).id
        return self._schema_id

    def serialize(self, event: Event) -> bytes:
        body = io.BytesIO()
        fastavro.schemaless_writer(body, self._parsed, {k: event[k] for k in self._fields if k in event})
        return wire.frame(self.schema_id, body.getvalue())

    def send_raw(self, key: str, value: bytes) -> None:
        """Produce already-framed bytes (or garbage, for dead-letter tests)."""
        while True:
            try:
                self._producer.produce(self.topic, key=key.encode(), value=value, on_delivery=self._delivered)
                break
            except BufferError:
                self._producer.poll(0.05)
        self._producer.poll(0)
        self.sent += 1

    def send(self, event: Event) -> None:
        self.send_raw(str(event["account_id"]), self.serialize(event))

    def flush(self, timeout_s: float = 60.0) -> None:
        remaining = self._producer.flush(timeout_s)
        if remaining:
            raise RuntimeError(f"{remaining} messages to {self.topic} still undelivered after {timeout_s}s")
        if self.errors:
            raise RuntimeError(f"{len(self.errors)} deliveries to {self.topic} failed, first: {self.errors[0]}")


def send_paced(sender: TransactionSender, emissions: Iterable[Emission], speed: float = 1.0,
               log: Path | None = None) -> int:
    """Send each emission at its offset (divided by ``speed``; 0 sends as fast as possible). Returns the
    number sent; ``log`` receives every event as a JSON line (the deterministic event log)."""
    started = time.monotonic()
    out = log.open("w") if log else None
    try:
        for emission in emissions:
            if speed > 0:
                wait = emission.send_offset_ms / 1000 / speed - (time.monotonic() - started)
                if wait > 0.002:
                    time.sleep(wait)
            sender.send(emission.event)
            if out:
                out.write(json.dumps(emission.event, separators=(",", ":")) + "\n")
        sender.flush()
    finally:
        if out:
            out.close()
    return sender.sent


def read_log(path: Path) -> list[Event]:
    """Events of a JSON-lines event log."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
