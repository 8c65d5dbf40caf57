"""A StreamingWindow's Kafka topic: checked on every reconcile, created or grown when the spec asks for it.

``plan`` is pure: from ``spec.source`` and what the broker holds it decides what to do and what the
``TopicReady`` condition says. :class:`Topics` is the thin shell over confluent-kafka's ``AdminClient``.
Nothing here deletes a topic, lowers its partitions or shortens its retention: those would lose data, so
they are refused with a condition naming the field.
"""

import asyncio
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from confluent_kafka import KafkaError, KafkaException, TopicCollection
from confluent_kafka.admin import AdminClient
from confluent_kafka.admin._config import AlterConfigOpType, ConfigEntry, ConfigResource
from confluent_kafka.admin._resource import ResourceType
from confluent_kafka.cimpl import NewPartitions, NewTopic

from streamguard.api.durations import parse_duration
from streamguard.api.streamingwindow import KafkaSource
from streamguard.clientsecurity import AUTHENTICATION_CODES, KafkaEndpoint, KafkaSecurity, Refusals
from streamguard.operator.status import Cond

CONDITION = "TopicReady"
RETENTION = "retention.ms"
T = TypeVar("T")


class KafkaUnavailableError(Exception):
    """The brokers could not be reached or answered with a retriable error: try again later."""


class KafkaAuthenticationError(KafkaUnavailableError):
    """The brokers refused the operator's TLS handshake or SASL credentials: fix the Secret (retried, since
    credentials and certificates rotate)."""


class TopicRejectedError(Exception):
    """Kafka refused a topic operation for a reason retrying cannot fix (e.g. too high a replication factor)."""


@dataclass(frozen=True)
class TopicState:
    partitions: int
    replication_factor: int
    retention_ms: int
    """``-1``: unlimited."""


@dataclass(frozen=True)
class TopicPlan:
    create: bool = False
    partitions: int | None = None
    """The partition count to create with, or to raise the topic to."""
    replication_factor: int | None = None
    retention_ms: int | None = None
    """The retention to create with, or to raise the topic to."""
    refused: Cond | None = None
    """Set when the spec asks for something that would lose data (or the topic is missing and unmanaged)."""
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def changes(self) -> bool:
        return self.create or self.partitions is not None or self.retention_ms is not None


def retention_ms(source: KafkaSource) -> int | None:
    return None if source.retention is None else int(parse_duration(source.retention).total_seconds() * 1000)


def missing(topic: str) -> Cond:
    return Cond(
        CONDITION,
        "False",
        "TopicMissing",
        f"Kafka topic {topic!r} does not exist: create it, or set spec.source.partitions to let the operator create it",
    )


def plan(source: KafkaSource, live: TopicState | None) -> TopicPlan:
    """What to do about ``source.topic`` given the live topic (``None``: it does not exist)."""
    wanted_retention = retention_ms(source)
    if live is None:
        if source.partitions is None:
            return TopicPlan(refused=missing(source.topic))
        return TopicPlan(
            create=True,
            partitions=source.partitions,
            replication_factor=source.replication_factor,
            retention_ms=wanted_retention,
        )
    if source.partitions is not None and source.partitions < live.partitions:
        return TopicPlan(
            refused=Cond(
                CONDITION,
                "False",
                "PartitionDecreaseRefused",
                f"spec.source.partitions: Kafka topic {source.topic!r} has {live.partitions} partitions; lowering "
                f"them to {source.partitions} is refused (Kafka cannot remove partitions without losing data)",
            )
        )
    if wanted_retention is not None and _shorter(wanted_retention, live.retention_ms):
        return TopicPlan(
            refused=Cond(
                CONDITION,
                "False",
                "RetentionDecreaseRefused",
                f"spec.source.retention: Kafka topic {source.topic!r} keeps data for "
                f"{_describe_retention(live.retention_ms)}; shortening it to {source.retention} is refused (it "
                "would delete data): change the topic's retention.ms yourself if you mean it",
            )
        )
    notes = []
    if source.replication_factor is not None and source.replication_factor != live.replication_factor:
        notes.append(
            f"replication factor {live.replication_factor} (spec.source.replicationFactor "
            f"{source.replication_factor} applies only when the operator creates the topic)"
        )
    return TopicPlan(
        partitions=source.partitions if source.partitions is not None and source.partitions > live.partitions else None,
        retention_ms=wanted_retention
        if wanted_retention is not None and wanted_retention != live.retention_ms
        else None,
        notes=tuple(notes),
    )


def after(live: TopicState, change: TopicPlan) -> TopicState:
    """The topic once ``change`` (partitions, retention) has been applied to it."""
    return replace(
        live,
        partitions=change.partitions or live.partitions,
        retention_ms=live.retention_ms if change.retention_ms is None else change.retention_ms,
    )


def ready(topic: str, state: TopicState, plan_: TopicPlan) -> Cond:
    """``TopicReady=True`` describing the topic as it now stands (creating it is an Event, not a reason that
    would change again on the next reconcile)."""
    reason = "Exists"
    message = f"Kafka topic {topic!r} has {state.partitions} partitions"
    if state.retention_ms >= 0:
        message += f", retention {_describe_retention(state.retention_ms)}"
    for note in plan_.notes:
        message += f"; {note}"
    return Cond(CONDITION, "True", reason, message)


def _shorter(wanted: int, live: int) -> bool:
    if wanted < 0:
        return False
    return live < 0 or wanted < live


def _describe_retention(ms: int) -> str:
    if ms < 0:
        return "ever (retention.ms -1)"
    seconds = ms // 1000
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{ms}ms"


def _transient(error: KafkaError) -> bool:
    return bool(error.retriable()) or error.code() in (
        KafkaError._TRANSPORT,
        KafkaError._TIMED_OUT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NOT_CONTROLLER,
    )


class Topics:
    """The operator's one Kafka admin client."""

    def __init__(self, bootstrap: str, timeout: float = 10.0, security: KafkaSecurity | None = None) -> None:
        if not bootstrap:
            raise ValueError(
                "no Kafka bootstrap (set STREAMGUARD_OPERATOR_KAFKA_BOOTSTRAP or STREAMGUARD_KAFKA_BOOTSTRAP)"
            )
        self._timeout = timeout
        self._security = security or KafkaSecurity()
        self._refusals = Refusals()
        """The last TLS or SASL refusal librdkafka reported on a connection; cleared by a successful call."""
        endpoint = KafkaEndpoint(bootstrap, self._security)
        self._admin = AdminClient(
            endpoint.confluent(**{"socket.timeout.ms": int(timeout * 1000), "error_cb": self._refusals})
        )
        self.calls = 0

    def _authentication_failure(self, what: str) -> KafkaAuthenticationError | None:
        self._admin.poll(0)
        refused = self._refusals.last
        if refused is None:
            return None
        return KafkaAuthenticationError(
            f"{what}: Kafka refused the operator's connection ({self._security.describe()}): {refused.str()}"
        )

    async def _await(self, future: "Future[T]", what: str, absent: int | None = None) -> T | None:
        """The future's result; ``None`` when it failed with error code ``absent`` (e.g. an unknown topic)."""
        self.calls += 1
        try:
            result = await asyncio.wrap_future(future)
        except KafkaException as error:
            kafka_error: KafkaError = error.args[0]
            if absent is not None and kafka_error.code() == absent:
                self._refusals.last = None
                return None
            refused = self._authentication_failure(what)
            if refused is not None or kafka_error.code() in AUTHENTICATION_CODES:
                raise refused or KafkaAuthenticationError(f"{what}: {kafka_error.str()}") from error
            if _transient(kafka_error):
                raise KafkaUnavailableError(f"{what}: {kafka_error.str()}") from error
            raise TopicRejectedError(f"{what}: {kafka_error.str()}") from error
        self._refusals.last = None
        return result

    async def describe(self, topic: str) -> TopicState | None:
        """The topic as the brokers hold it; ``None`` when it does not exist."""
        futures: dict[str, Future[Any]] = self._admin.describe_topics(
            TopicCollection([topic]), request_timeout=self._timeout
        )
        description = await self._await(
            futures[topic], f"describing topic {topic!r}", absent=KafkaError.UNKNOWN_TOPIC_OR_PART
        )
        if description is None:
            return None
        partitions = description.partitions
        replicas = len(partitions[0].replicas) if partitions else 0
        resource = ConfigResource(ResourceType.TOPIC, topic)
        configs = self._admin.describe_configs([resource], request_timeout=self._timeout)
        entries: dict[str, ConfigEntry] | None = await self._await(
            configs[resource], f"reading the config of {topic!r}", absent=KafkaError.UNKNOWN_TOPIC_OR_PART
        )
        if entries is None:
            return None
        entry = entries.get(RETENTION)
        retention = int(entry.value) if entry is not None and entry.value is not None else -1
        return TopicState(partitions=len(partitions), replication_factor=replicas, retention_ms=retention)

    async def apply(self, topic: str, change: TopicPlan) -> None:
        """Create the topic or raise its partitions and retention, as planned (idempotent)."""
        if change.create:
            config = {RETENTION: str(change.retention_ms)} if change.retention_ms is not None else {}
            new = NewTopic(
                topic,
                num_partitions=change.partitions or 1,
                replication_factor=change.replication_factor or -1,
                config=config,
            )
            created = self._admin.create_topics([new], request_timeout=self._timeout)
            await self._await(created[topic], f"creating topic {topic!r}", absent=KafkaError.TOPIC_ALREADY_EXISTS)
            return
        if change.partitions is not None:
            grown = self._admin.create_partitions(
                [NewPartitions(topic, change.partitions)], request_timeout=self._timeout
            )
            await self._await(grown[topic], f"raising the partitions of {topic!r} to {change.partitions}")
        if change.retention_ms is not None:
            resource = ConfigResource(
                ResourceType.TOPIC,
                topic,
                incremental_configs=[
                    ConfigEntry(RETENTION, str(change.retention_ms), incremental_operation=AlterConfigOpType.SET)
                ],
            )
            altered = self._admin.incremental_alter_configs([resource], request_timeout=self._timeout)
            await self._await(altered[resource], f"raising the retention of {topic!r}")
