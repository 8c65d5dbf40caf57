"""``DriftMonitor``: PSI and KS drift of a FeatureView's features, current window against a reference."""

from datetime import datetime
from typing import Literal

from pydantic import Field

from streamguard.api.common import (
    IDENTIFIER_PATTERN,
    NAME_PATTERN,
    OFFLINE_LOCATION_DESCRIPTION,
    OFFLINE_LOCATION_PATTERN,
    SECRET_REF_DESCRIPTION,
    ApiModel,
    CommonStatus,
    SecretRef,
    cel,
    unique_items,
    with_rules,
)
from streamguard.api.durations import PositiveDayDuration, PositiveDuration


class DataSlice(ApiModel):
    """Rows of a Parquet data set, optionally limited to a time range or a trailing window."""

    path: str = Field(
        min_length=1, max_length=4096, pattern=OFFLINE_LOCATION_PATTERN, description=OFFLINE_LOCATION_DESCRIPTION
    )
    timestamp_field: str = Field(default="event_timestamp", pattern=IDENTIFIER_PATTERN)
    start: datetime | None = None
    end: datetime | None = None
    last: PositiveDayDuration | None = Field(
        default=None, description="Only the trailing window ending at the newest row."
    )


class Thresholds(ApiModel):
    psi: float = Field(default=0.25, gt=0, le=10)
    ks_p_value: float = Field(default=0.05, gt=0, lt=1)
    drift_share: float = Field(default=0.3, gt=0, le=1)


class DriftMonitorSpec(ApiModel):
    feature_view: str = Field(pattern=NAME_PATTERN, max_length=253)
    features: list[str] = Field(
        default_factory=list,
        max_length=512,
        description="Features to watch; default every numeric feature of the view.",
        json_schema_extra={
            "items": {"type": "string", "pattern": IDENTIFIER_PATTERN, "maxLength": 63},
            **unique_items("features must be unique", "f", "{0}"),
        },
    )
    ks_features: list[str] = Field(
        default_factory=list,
        max_length=512,
        description="Features tested with Kolmogorov-Smirnov instead of PSI.",
        json_schema_extra={"items": {"type": "string", "pattern": IDENTIFIER_PATTERN, "maxLength": 63}},
    )
    reference: DataSlice
    current: DataSlice
    secret_ref: SecretRef | None = Field(
        default=None, description="For s3:// reference and current data: " + SECRET_REF_DESCRIPTION
    )
    thresholds: Thresholds = Field(default_factory=Thresholds)
    interval: PositiveDuration = Field(default="10m", description="Time between drift runs.")
    method: Literal["psi"] = "psi"

    model_config = with_rules(
        cel(
            "!has(self.ksFeatures) || !has(self.features) || size(self.features) == 0 "
            "|| self.ksFeatures.all(k, k in self.features)",
            "every ksFeatures entry must also be listed in features",
            ".ksFeatures",
        ),
    )


class DriftMonitorStatus(CommonStatus):
    last_run_at: datetime | None = None
    drift_share: float | None = None
    drifted_features: list[str] = Field(default_factory=list)
    drifted_count: int | None = None
    scores: dict[str, float] = Field(default_factory=dict)


class DriftMonitor(ApiModel):
    api_version: str = Field(default="streamguard.dev/v1alpha1")
    kind: Literal["DriftMonitor"] = "DriftMonitor"
    metadata: dict[str, object] = Field(default_factory=dict)
    spec: DriftMonitorSpec
    status: DriftMonitorStatus | None = None
