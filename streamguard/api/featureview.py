"""``FeatureView``: entities, features, batch source, TTL, freshness SLA and materialization."""

from datetime import datetime
from typing import Literal

from pydantic import Field

from streamguard.api.common import (
    IDENTIFIER_PATTERN,
    OFFLINE_LOCATION_DESCRIPTION,
    OFFLINE_LOCATION_PATTERN,
    PROJECT_PATTERN,
    SECRET_REF_DESCRIPTION,
    ApiModel,
    CommonStatus,
    SecretRef,
    cel,
    unique_items,
    with_rules,
)
from streamguard.api.durations import MAX_DURATION_DAYS, PositiveDayDuration

ValueType = Literal["INT64", "INT32", "FLOAT64", "FLOAT32", "STRING", "BOOL"]


class Entity(ApiModel):
    """An entity the view is keyed by, e.g. ``customer`` joined on ``customer_id``."""

    name: str = Field(pattern=IDENTIFIER_PATTERN, max_length=63)
    join_key: str = Field(pattern=IDENTIFIER_PATTERN, max_length=63)
    value_type: Literal["STRING", "INT64"] = "STRING"
    description: str = Field(default="", max_length=1024)


class Feature(ApiModel):
    """One feature column of the view."""

    name: str = Field(pattern=IDENTIFIER_PATTERN, max_length=63)
    dtype: ValueType
    description: str = Field(default="", max_length=1024)
    deprecated: bool = False
    """Still served; the view reports a ``Deprecated`` warning condition."""


class BatchSource(ApiModel):
    """A Parquet file or directory holding the view's offline rows."""

    path: str = Field(
        min_length=1, max_length=4096, pattern=OFFLINE_LOCATION_PATTERN, description=OFFLINE_LOCATION_DESCRIPTION
    )
    secret_ref: SecretRef | None = Field(default=None, description=SECRET_REF_DESCRIPTION)
    timestamp_field: str = Field(default="event_timestamp", pattern=IDENTIFIER_PATTERN)
    created_timestamp_field: str | None = Field(default=None, pattern=IDENTIFIER_PATTERN)


class Materialization(ApiModel):
    """How the offline rows reach the online store."""

    schedule: str = Field(
        default="*/15 * * * *",
        min_length=6,
        max_length=128,
        pattern=r"^(@(yearly|annually|monthly|weekly|daily|midnight|hourly)|(\S+\s+){4}\S+)$",
        description="Cron schedule of the materialization CronJob.",
    )
    suspend: bool = False
    start: datetime | None = Field(
        default=None, description="Where the first incremental run starts (default: now minus the TTL)."
    )


class FeatureViewSpec(ApiModel):
    project: str = Field(default="streamguard", pattern=PROJECT_PATTERN, max_length=63)
    description: str = Field(default="", max_length=4096)
    entities: list[Entity] = Field(
        min_length=1,
        max_length=8,
        json_schema_extra=unique_items("entity names must be unique", "e"),
    )
    features: list[Feature] = Field(
        min_length=1,
        max_length=512,
        json_schema_extra=unique_items("feature names must be unique", "f"),
    )
    source: BatchSource | None = Field(
        default=None, description="Offline source; omit for a view filled only by a StreamingWindow."
    )
    ttl: PositiveDayDuration = Field(
        default="1d",
        description=f"Values older than this read as expired. Greater than 0 and at most {MAX_DURATION_DAYS}d "
        "(there is no 'never expires': use the maximum).",
    )
    freshness_sla: PositiveDayDuration = Field(
        default="1h",
        description="The view is not Fresh (and serving not Ready) when its newest data is older than this. "
        f"Greater than 0 and at most {MAX_DURATION_DAYS}d.",
    )
    materialization: Materialization = Field(default_factory=Materialization)
    online: bool = True

    model_config = with_rules(
        cel(
            "!self.features.exists(f, self.entities.exists(e, e.joinKey == f.name))",
            "a feature may not reuse an entity join key as its name",
            ".features",
        ),
    )


class FeatureViewStatus(CommonStatus):
    last_materialized_at: datetime | None = None
    materialized_until: datetime | None = Field(
        default=None, description="The incremental watermark: the end of the last materialized interval."
    )
    online_store_generation: str | None = Field(
        default=None,
        description="The online store's generation the watermark belongs to; when the store's current "
        "generation differs (flushed, restarted, failed over, evicted), the next run backfills the TTL.",
    )
    freshness_seconds: int | None = Field(default=None, ge=0)
    rows_materialized: int | None = Field(default=None, ge=0)
    feature_count: int | None = Field(default=None, ge=0)
    entity_names: str | None = Field(default=None, description="Comma-separated entity names (for kubectl).")


class FeatureView(ApiModel):
    api_version: str = Field(default="streamguard.dev/v1alpha1")
    kind: Literal["FeatureView"] = "FeatureView"
    metadata: dict[str, object] = Field(default_factory=dict)
    spec: FeatureViewSpec
    status: FeatureViewStatus | None = None
