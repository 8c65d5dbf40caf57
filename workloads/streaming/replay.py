"""Replaying a StreamingWindow's dead letters whose writer schema id the registry knows now (the shell around
``dead_letters.plan_replay``).

1. Read ``<topic>.dlq`` from the offsets the replay group (``streamguard-replay.<namespace>.<name>``)
   committed last time up to its end as it stands now.
2. Ask the registry for every ``schema-id-unknown:<id>`` of them; an id still unknown stops the replay
   (unless ``skip_unknown``), an id the contract cannot read keeps its records where they are.
3. Decode each record to be replayed (writer schema resolved to the contract) for its event time, and compare
   it with the job's watermark from the progress record: records falling in windows already closed stop the
   replay unless ``allow_late`` (they would then count only in the windows still open, the time rule).
4. Commit the group's offsets with a *pending* marker holding the source topic's end offsets, produce (an
   idempotent producer; original partition, key, value, timestamp; ``streamguard.replay-of`` header), flush,
   then commit again without the marker. A replay interrupted between the two commits finds the marker next
   time and skips every origin it finds in a ``streamguard.replay-of`` header past those offsets: no record
   is replayed twice.
"""

import io
import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import fastavro
from confluent_kafka import Consumer, KafkaError, KafkaException, Producer, TopicPartition

from streamguard.clientsecurity import KafkaEndpoint, RegistrySecurity
from streamguard.contracts import wire
from streamguard.contracts.compatibility import can_read
from streamguard.contracts.registry import SchemaRegistry
from streamguard.onlinestore.client import connect
from streamguard.onlinestore.window_layout import StreamProgress, heartbeat_key
from streamguard.windows import WindowShape
from streamguard.workloads.streaming.dead_letters import (
    REPLAY_OF_HEADER,
    DeadLetter,
    Origin,
    ReplayPlan,
    plan_replay,
)
from streamguard.workloads.streaming.offsets import TopicProbe
from streamguard.workloads.streaming.plan import StreamPlan

PENDING = "pending:"
"""Prefix of the commit metadata of a replay that has started producing: the source topic's end offsets."""
POLL_S = 5.0


class ReplayRefusedError(RuntimeError):
    """The replay would lose or misplace records; nothing was sent."""


@dataclass(frozen=True)
class ReplayReport:
    plan: ReplayPlan
    watermark_ms: int | None
    sent: int
    dry_run: bool = False

    def lines(self) -> list[str]:
        kept = ", ".join(f"{reason}: {n}" for reason, n in sorted(self.plan.kept.items())) or "none"
        late = ", ".join(f"{s}: {n}" for s, n in sorted(self.plan.late.items())) or "none"
        done = f"dry run: would replay {len(self.plan.send)}" if self.dry_run else f"replayed {self.sent}"
        return [f"{done} dead letters in origin order ({self.plan.duplicates} duplicates skipped)",
                f"left in the dead-letter topic: {kept}",
                f"records in windows already closed (counted only in the open ones): {late}"]


def group_id(plan: StreamPlan) -> str:
    return f"streamguard-replay.{plan.namespace}.{plan.name}"


def _consumer(kafka: KafkaEndpoint, group: str | None = None) -> Consumer:
    return Consumer(kafka.confluent(**{
        "group.id": group or f"streamguard-scan-{uuid.uuid4().hex}", "enable.auto.commit": False,
        "enable.auto.offset.store": False, "auto.offset.reset": "earliest", "isolation.level": "read_committed"}))


def _read(consumer: Consumer, start: dict[int, int], end: dict[int, int], topic: str) -> Iterator[Any]:
    """Messages of ``topic`` from ``start`` up to (excluding) ``end`` per partition."""
    todo = {p: o for p, o in end.items() if o > start.get(p, 0)}
    if not todo:
        return
    consumer.assign([TopicPartition(topic, p, start.get(p, 0)) for p in todo])
    while todo:
        message = consumer.poll(POLL_S)
        if message is None:
            continue
        error = message.error()
        if error is not None:
            if error.code() == KafkaError._PARTITION_EOF:
                continue
            raise KafkaException(error)
        partition, offset = message.partition(), message.offset()
        if partition is None or offset is None or partition not in todo:
            continue
        if offset < todo[partition]:
            yield message
        if offset + 1 >= todo[partition]:
            del todo[partition]


def _committed(consumer: Consumer, topic: str, partitions: list[int]) -> tuple[dict[int, int], dict[int, int] | None]:
    """The group's committed offsets (0 where none) and the source end offsets of a pending replay."""
    found = consumer.committed([TopicPartition(topic, p) for p in partitions], timeout=30)
    offsets, pending = {}, None
    for tp in found:
        offsets[tp.partition] = tp.offset if tp.offset >= 0 else 0
        if tp.metadata and tp.metadata.startswith(PENDING):
            pending = {int(p): int(o) for p, o in json.loads(tp.metadata.removeprefix(PENDING)).items()}
    return offsets, pending


def _commit(consumer: Consumer, topic: str, offsets: dict[int, int], metadata: str) -> None:
    consumer.commit(offsets=[TopicPartition(topic, p, o, metadata=metadata) for p, o in offsets.items()],
                    asynchronous=False)


def _event_time_ms(value: bytes, writer: str, reader: str, field: str) -> int:
    schema_id, body = wire.unframe(value)
    record = fastavro.schemaless_reader(io.BytesIO(body), fastavro.parse_schema(json.loads(writer)),
                                        fastavro.parse_schema(json.loads(reader)))
    stamp = record[field] if isinstance(record, dict) else None
    if isinstance(stamp, datetime):
        return int(stamp.timestamp() * 1000)
    if isinstance(stamp, int):
        return stamp
    raise ValueError(f"record of schema id {schema_id} has no event time in {field!r}")


def replayed_origins(kafka: KafkaEndpoint, topic: str, since: dict[int, int]) -> set[Origin]:
    """Origins named by ``streamguard.replay-of`` headers in ``topic`` from ``since`` to its end."""
    probe = TopicProbe(kafka, topic)
    end = probe.end_offsets(probe.partitions())
    consumer = _consumer(kafka)
    try:
        return {Origin.parse(raw.decode()) for message in _read(consumer, since, end, topic)
                for name, raw in (message.headers() or []) if name == REPLAY_OF_HEADER and raw}
    finally:
        consumer.close()


def watermark(redis_url: str, plan: StreamPlan) -> int | None:
    client = connect(redis_url)
    try:
        progress = StreamProgress.parse(client.hgetall(heartbeat_key(plan.project, plan.view)))  # type: ignore[arg-type]
    finally:
        client.close()
    return progress.watermark_ms if progress is not None else None


def replay(plan: StreamPlan, kafka: KafkaEndpoint, registry_url: str, redis_url: str, *,
           registry_security: RegistrySecurity | None = None, allow_late: bool = False,
           skip_unknown: bool = False, margin_ms: int = 60_000, dry_run: bool = False) -> ReplayReport:
    """Replay the dead letters of ids the registry knows now; raises :class:`ReplayRefusedError` (nothing
    sent, nothing committed) when that would lose or misplace records."""
    dlq = TopicProbe(kafka, plan.dead_letter_topic)
    dlq_partitions = dlq.partitions()
    end = dlq.end_offsets(dlq_partitions)
    consumer = _consumer(kafka, group_id(plan))
    try:
        start, pending = _committed(consumer, plan.dead_letter_topic, dlq_partitions)
        letters = [DeadLetter.of(m.headers(), m.key(), m.value())
                   for m in _read(consumer, start, end, plan.dead_letter_topic)]
        replayed = replayed_origins(kafka, plan.topic, pending) if pending is not None else set()
        writers: dict[int, str] = {}
        with SchemaRegistry(registry_url, security=registry_security) as registry:
            for schema_id in sorted({i for letter in letters if (i := letter.unknown_schema_id) is not None}):
                writer = registry.schema_by_id(schema_id)
                if writer is not None and not can_read(plan.reader_schema, writer):
                    writers[schema_id] = writer
        event_times = {}
        for letter in letters:
            writer = writers.get(letter.unknown_schema_id or -1)
            if writer is not None and letter.value is not None:
                event_times[letter.origin] = _event_time_ms(letter.value, writer, plan.reader_schema,
                                                            plan.event_time_field)
        mark = watermark(redis_url, plan)
        shapes = {w.suffix: WindowShape(w.length_ms, w.slide_ms) for w in plan.windows}
        result = plan_replay(letters, set(writers), replayed, event_times, shapes,
                             None if mark is None else mark + margin_ms)
        if result.still_unknown and not skip_unknown:
            raise ReplayRefusedError(
                f"schema id(s) {', '.join(map(str, sorted(result.still_unknown)))} still unknown to the registry: "
                "register them first (or pass --skip-unknown to leave their records in the dead-letter topic)")
        refusal = result.refusal(mark)
        if refusal is not None and not allow_late:
            raise ReplayRefusedError(f"{refusal}. Pass --allow-late to replay them anyway.")
        if dry_run:
            return ReplayReport(result, mark, 0, dry_run=True)
        source = TopicProbe(kafka, plan.topic)
        source_end = source.end_offsets(source.partitions())
        if result.send:
            marker = PENDING + json.dumps({str(p): o for p, o in sorted((pending or source_end).items())})
            _commit(consumer, plan.dead_letter_topic, start, marker)
            _produce(kafka, plan.topic, result)
        _commit(consumer, plan.dead_letter_topic, end, "")
        return ReplayReport(result, mark, len(result.send))
    finally:
        consumer.close()


def _produce(kafka: KafkaEndpoint, topic: str, result: ReplayPlan) -> None:
    errors: list[str] = []

    def delivered(error: KafkaError | None, _message: object) -> None:
        if error is not None:
            errors.append(str(error))

    producer = Producer(kafka.confluent(**{"enable.idempotence": True, "linger.ms": 5}))
    for letter in result.send:
        while True:
            try:
                producer.produce(topic, key=letter.key, value=letter.value, partition=letter.origin.partition,
                                 timestamp=letter.timestamp_ms or 0,
                                 headers=[(REPLAY_OF_HEADER, str(letter.origin).encode())], on_delivery=delivered)
                break
            except BufferError:
                producer.poll(0.05)
        producer.poll(0)
    remaining = producer.flush(120)
    if remaining or errors:
        raise KafkaException(f"replaying into {topic}: {remaining} undelivered, {len(errors)} failed"
                             + (f", first: {errors[0]}" if errors else ""))
