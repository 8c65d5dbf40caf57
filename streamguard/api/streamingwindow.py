"""``StreamingWindow``: a Kafka topic with an Avro contract, aggregated over sliding event-time windows."""

from datetime import datetime
from typing import Annotated, Literal, Self

from pydantic import Field, model_validator

from streamguard.api.common import (
    IDENTIFIER_PATTERN,
    NAME_PATTERN,
    ApiModel,
    CommonStatus,
    cel,
    unique_items,
    with_rules,
)
from streamguard.api.durations import (
    DURATION_PATTERN,
    Duration,
    PositiveDuration,
    cel_duration_safe,
    duration_check,
    duration_field,
    duration_ms,
)

AggregationFunction = Literal["count", "sum", "avg", "min", "max"]
AGGREGATIONS_NEEDING_FIELD = ("sum", "avg", "min", "max")
MIN_SLIDE = "1s"
DEFAULT_MAX_WINDOWS_PER_EVENT = 1_000
"""The operator's default limit on windows per event (the sum of length/slide over the windows)."""
WINDOWS_PER_EVENT_CEILING = 100_000
"""Highest value the operator's ``max_windows_per_event`` setting accepts."""
RECORDS_PER_TRIGGER_SECOND = 200_000
"""Default ``maxOffsetsPerTrigger`` per second of ``triggerInterval``: about 15 s of work for one job on 2 cores,
so it bounds a catch-up batch but not the steady state at 20k events/s, where a batch takes 4-8 s (a cap of
50,000 held those batches back: docs/benchmarks.md)."""

def default_subject(namespace: str, topic: str) -> str:
    """``<namespace>.<topic>-value``: the subject of a contract that names none (owned by ``namespace``)."""
    return f"{namespace}.{topic}-value"


Slide = Annotated[str, duration_field(minimum=MIN_SLIDE), duration_check(minimum=MIN_SLIDE)]


class AvroContract(ApiModel):
    """The Avro schema events on the topic are written with, registered under ``subject``."""

    subject: str | None = Field(
        default=None,
        max_length=255,
        description="Registry subject; default '<namespace>.<topic>-value'. A subject another namespace's "
        "StreamingWindow uses is refused (SchemaRegistered=False, SubjectOwnedElsewhere).",
    )
    schema_: str = Field(alias="schema", min_length=2, max_length=262144, description="Avro schema JSON.")
    deletion_policy: Literal["Delete", "Retain"] | None = Field(
        default=None,
        description="What happens to the registry subject when the StreamingWindow is deleted "
        "(default: the operator's setting, Retain unless configured). Delete is a soft delete unless the "
        "operator is configured for hard deletes; a subject another StreamingWindow uses is kept.",
    )


class KafkaSource(ApiModel):
    """The topic the events come from; with partitions set, the operator creates and grows it."""

    topic: str = Field(pattern=r"^[a-zA-Z0-9._-]+$", max_length=249)
    starting_offsets: Literal["earliest", "latest"] = "latest"
    max_offsets_per_trigger: int | None = Field(
        default=None,
        ge=1,
        description="Most records (all partitions together) one micro-batch reads. Default: "
        f"{RECORDS_PER_TRIGGER_SECOND} per second of triggerInterval, so a job catching up with a backlog still "
        "ends a batch, writes its windows and reports progress every few seconds.",
    )
    partitions: int | None = Field(
        default=None,
        ge=1,
        le=10000,
        description="Let the operator manage the topic: create it with this many partitions, or raise its "
        "partitions to this many (never lowered: that is refused). Unset: the topic must already exist.",
    )
    replication_factor: int | None = Field(
        default=None,
        ge=1,
        le=32,
        description="Replication factor of a topic the operator creates (default: the broker's). Needs partitions.",
    )
    retention: str | None = Field(
        default=None,
        pattern=DURATION_PATTERN,
        max_length=32,
        description="retention.ms of a topic the operator manages, e.g. '7d' (raised, never shortened). "
        "Needs partitions.",
    )

    model_config = with_rules(
        cel(
            "has(self.partitions) || (!has(self.replicationFactor) && !has(self.retention))",
            "replicationFactor and retention need partitions (they apply to a topic the operator manages)",
            ".partitions",
        ),
    )


class Window(ApiModel):
    """A sliding window: ``length`` long, a new one every ``slide``. Names the feature suffix."""

    length: PositiveDuration
    slide: Slide = Field(description=f"At least {MIN_SLIDE}.")
    name: str | None = Field(
        default=None, pattern=r"^[a-z0-9_]+$", max_length=16, description="Feature suffix; default the length."
    )

    model_config = with_rules(
        cel(
            f"!({cel_duration_safe('self.length')} && {cel_duration_safe('self.slide')} "
            f"&& duration(self.slide) >= duration('{MIN_SLIDE}')) || "
            "duration(self.length).getMilliseconds() % duration(self.slide).getMilliseconds() == 0",
            "window length must be a whole multiple of its slide",
            ".length",
        ),
    )

    @model_validator(mode="after")
    def _whole_multiple(self) -> Self:
        if duration_ms(self.length) % duration_ms(self.slide):
            raise ValueError(
                f"window length must be a whole multiple of its slide ({self.length} is not a multiple of {self.slide})"
            )
        return self

    @property
    def suffix(self) -> str:
        return self.name or self.length

    @property
    def windows_per_event(self) -> int:
        """How many windows of this shape contain each event (length / slide)."""
        return duration_ms(self.length) // duration_ms(self.slide)


EXECUTOR_MEMORY_PATTERN = r"^[1-9][0-9]{0,5}(Mi|Gi)$"


class Executors(ApiModel):
    """Spark executors on Kubernetes: the job's pod becomes the driver and creates ``count`` executor pods
    from the Spark image through the API server (docs/architecture.md, "Executors on Kubernetes")."""

    count: int = Field(default=0, ge=0, le=64, description="Executor pods; 0 runs the job in its own pod (local mode).")
    cores: int = Field(default=1, ge=1, le=16, description="Task slots (and CPU request) of each executor.")
    memory: str = Field(
        default="1Gi",
        pattern=EXECUTOR_MEMORY_PATTERN,
        description="JVM heap of each executor (Mi or Gi); the pod asks for it plus Spark's overhead "
        "(10%, at least 384Mi).",
    )

    @property
    def spark_memory(self) -> str:
        """``memory`` as Spark writes a size (``1024Mi`` -> ``1024m``)."""
        return self.memory[:-2] + self.memory[-2].lower()


class Aggregation(ApiModel):
    """An aggregate computed in every window; the feature is ``<name>_<window suffix>``."""

    name: str = Field(pattern=IDENTIFIER_PATTERN, max_length=40)
    function: AggregationFunction
    field: str | None = Field(default=None, pattern=IDENTIFIER_PATTERN, description="Event field (not for count).")

    model_config = with_rules(
        cel(
            "self.function == 'count' || has(self.field)",
            "field is required for sum, avg, min and max",
            ".field",
        ),
    )


class StreamingWindowSpec(ApiModel):
    feature_view: str = Field(
        pattern=NAME_PATTERN,
        max_length=253,
        description="Target FeatureView name. The view must have exactly one entity: the window's key field "
        "fills its join key. The operator checks this, not admission (the view is another object, which "
        "admission cannot read): a window targeting a view with several join keys is Stalled (reason "
        "MultiEntityView) and gets no Deployment. Multi-entity windows are future work.",
    )
    source: KafkaSource
    contract: AvroContract
    key_field: str = Field(pattern=IDENTIFIER_PATTERN, description="Event field holding the entity key.")
    event_time_field: str = Field(default="event_time", pattern=IDENTIFIER_PATTERN)
    watermark: Duration = "2m"
    trigger_interval: Duration = Field(
        default="1s",
        description="How often a micro-batch starts (when the previous one has ended): the floor of the "
        "windows' freshness.",
    )
    windows: list[Window] = Field(
        min_length=1,
        max_length=16,
        description="Sliding windows. Each event is counted in length/slide windows of each; the sum over the "
        "windows is limited by the operator's max_windows_per_event setting (default "
        f"{DEFAULT_MAX_WINDOWS_PER_EVENT}). Above it the StreamingWindow is Stalled (reason TooManyWindows): "
        "the limit is the operator's, so it is checked when reconciling, not at admission.",
        json_schema_extra=unique_items("window names (default: their length) must be unique", "w",
                                       "(has({0}.name) ? {0}.name : {0}.length)"),
    )
    aggregations: list[Aggregation] = Field(
        min_length=1,
        max_length=64,
        json_schema_extra=unique_items("aggregation names must be unique", "a"),
    )
    executors: Executors = Field(
        default_factory=Executors,
        description="Scale-out on Spark's Kubernetes scheduler; the default (count 0) runs the job in one pod.",
    )
    suspend: bool = False

    def subject_in(self, namespace: str) -> str:
        """The registry subject of this window's contract when it lives in ``namespace``."""
        return self.contract.subject or default_subject(namespace, self.source.topic)

    def windows_per_event(self) -> int:
        """How many windows each event is counted in: the sum of length/slide over the windows."""
        return sum(w.windows_per_event for w in self.windows)

    def feature_names(self) -> list[str]:
        """Every feature this window writes, aggregation-major."""
        return [f"{a.name}_{w.suffix}" for a in self.aggregations for w in self.windows]


class StreamingWindowStatus(CommonStatus):
    subject: str | None = None
    schema_id: int | None = None
    schema_version: int | None = None
    schema_fingerprint: str | None = Field(default=None, description="SHA-256 of the registered schema text.")
    window_names: str | None = Field(default=None, description="Comma-separated windows (for kubectl).")
    topic_partitions: int | None = Field(default=None, description="Partitions of the source topic, last seen.")
    stream_down_since: datetime | None = Field(
        default=None,
        description="Since when the job has reported StreamRunning=False, as first seen by the operator (kept "
        "across job restarts; Ready follows once the grace period has passed).",
    )


class StreamingWindow(ApiModel):
    api_version: str = Field(default="streamguard.dev/v1alpha1")
    kind: Literal["StreamingWindow"] = "StreamingWindow"
    metadata: dict[str, object] = Field(default_factory=dict)
    spec: StreamingWindowSpec
    status: StreamingWindowStatus | None = None
