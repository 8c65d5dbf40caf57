"""``StreamingWindow``: a Kafka topic with an Avro contract, aggregated over sliding event-time windows."""

from datetime import datetime
from typing import Literal

from pydantic import Field

from streamguard.api.common import IDENTIFIER_PATTERN, NAME_PATTERN, ApiModel, CommonStatus, cel, with_rules
from streamguard.api.durations import DURATION_PATTERN, GO_DURATION_PATTERN

AggregationFunction = Literal["count", "sum", "avg", "min", "max"]
AGGREGATIONS_NEEDING_FIELD = ("sum", "avg", "min", "max")


class AvroContract(ApiModel):
    """The Avro schema events on the topic are written with, registered under ``subject``."""

    subject: str | None = Field(
        default=None, max_length=255, description="Registry subject; default '<topic>-value'."
    )
    schema_: str = Field(alias="schema", min_length=2, max_length=262144, description="Avro schema JSON.")
    deletion_policy: Literal["Delete", "Retain"] | None = Field(
        default=None,
        description="What happens to the registry subject when the StreamingWindow is deleted "
        "(default: the operator's setting, Retain unless configured).",
    )


class KafkaSource(ApiModel):
    """The topic the events come from; with partitions set, the operator creates and grows it."""

    topic: str = Field(pattern=r"^[a-zA-Z0-9._-]+$", max_length=249)
    starting_offsets: Literal["earliest", "latest"] = "latest"
    max_offsets_per_trigger: int | None = Field(default=None, ge=1)
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

    length: str = Field(pattern=GO_DURATION_PATTERN, max_length=32)
    slide: str = Field(pattern=GO_DURATION_PATTERN, max_length=32)
    name: str | None = Field(
        default=None, pattern=r"^[a-z0-9_]+$", max_length=16, description="Feature suffix; default the length."
    )

    model_config = with_rules(
        cel("duration(self.slide) > duration('0s')", "slide must be positive", ".slide"),
        cel("duration(self.length) > duration('0s')", "length must be positive", ".length"),
        cel(
            "duration(self.length).getMilliseconds() % duration(self.slide).getMilliseconds() == 0",
            "window length must be a whole multiple of its slide",
            ".length",
        ),
    )

    @property
    def suffix(self) -> str:
        return self.name or self.length


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
    feature_view: str = Field(pattern=NAME_PATTERN, max_length=253, description="Target FeatureView name.")
    source: KafkaSource
    contract: AvroContract
    key_field: str = Field(pattern=IDENTIFIER_PATTERN, description="Event field holding the entity key.")
    event_time_field: str = Field(default="event_time", pattern=IDENTIFIER_PATTERN)
    watermark: str = Field(default="2m", pattern=GO_DURATION_PATTERN)
    trigger_interval: str = Field(default="5s", pattern=GO_DURATION_PATTERN)
    windows: list[Window] = Field(
        min_length=1,
        max_length=16,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel(
                    "self.all(w, self.exists_one(o, (has(o.name) ? o.name : o.length) == "
                    "(has(w.name) ? w.name : w.length)))",
                    "window names (default: their length) must be unique",
                ),
            ]
        },
    )
    aggregations: list[Aggregation] = Field(
        min_length=1,
        max_length=64,
        json_schema_extra={
            "x-kubernetes-validations": [
                cel("self.all(a, self.exists_one(o, o.name == a.name))", "aggregation names must be unique"),
            ]
        },
    )
    suspend: bool = False

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
