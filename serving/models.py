"""The HTTP API's JSON shapes (camelCase on the wire), published in the OpenAPI document.

Requests are validated with :data:`LookupRequest`; responses are built as plain dicts on the fast path
and serialized with orjson, in exactly the shape of :class:`LookupResponse`.
"""

from typing import Annotated, Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, StringConstraints, model_validator
from pydantic.alias_generators import to_camel
from pydantic.json_schema import SkipJsonSchema

FeatureRef = Annotated[
    str,
    StringConstraints(pattern=r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?:[a-z_][a-z0-9_]*$", max_length=320),
]
EntityValue = (
    Annotated[StrictStr, StringConstraints(max_length=1024)] | Annotated[StrictInt, Field(ge=-(2**63), le=2**63 - 1)]
)
Status = Literal["present", "stale", "partial", "expired", "not_found"]
Scalar = StrictStr | StrictInt | float | bool | None
EntityRow = dict[Annotated[str, StringConstraints(max_length=63)], EntityValue]
"""One entity row: join keys to values."""


def _no_default(schema: dict[str, Any]) -> None:
    """Optional but not nullable: the published schema has no ``default: null``."""
    schema.pop("default", None)


class _Wire(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")


class LookupRequest(_Wire):
    """Feature values for one or many entity rows.

    Name the features either as ``view:feature`` references or as a feature set (FeatureViews
    annotated ``streamguard.dev/feature-sets: <name>``), not both. Each entity row maps join keys to
    values (strings, or integers for INT64 entities) and must hold the join keys of every view asked for.
    """

    model_config = ConfigDict(json_schema_extra={"oneOf": [{"required": ["features"]}, {"required": ["featureSet"]}]})

    features: Annotated[list[FeatureRef], Field(min_length=1, max_length=1024)] | SkipJsonSchema[None] = Field(
        default=None,
        examples=[["customer-profile:age", "customer-txn:count_1m"]],
        json_schema_extra=_no_default,
    )
    feature_set: Annotated[StrictStr, StringConstraints(min_length=1, max_length=253)] | SkipJsonSchema[None] = Field(
        default=None, examples=["fraud"], json_schema_extra=_no_default
    )
    entities: list[EntityRow] = Field(
        min_length=1, examples=[[{"customer_id": "C00042", "account_id": "A00042", "merchant_id": "M0007"}]]
    )

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for key in ("features", "featureSet"):
                if key in data and data[key] is None:
                    raise ValueError(f"{key!r} may not be null (leave it out instead)")
        return data

    @model_validator(mode="after")
    def _one_selector(self) -> Self:
        if (self.features is None) == (self.feature_set is None):
            raise ValueError("give exactly one of 'features' or 'featureSet'")
        return self


class FeatureRow(_Wire):
    """One entity row's values, aligned with :attr:`LookupResponse.features`."""

    values: list[Scalar] = Field(
        description="The value of each feature; null when not_found or expired (and a stale value that is "
        "absent from the store)."
    )
    statuses: list[Status] = Field(
        description="present: correct and fresh (may be null); stale: the view's stream is not progressing "
        "within its freshness SLA, or the online store does not vouch for the value (flushed, restarted, "
        "evicted, not re-seeded yet) or the cluster master holding it does not answer, value as last known or null; "
        "partial: the window starts before the events "
        "the stream holds, value over what it holds; expired: older than the view's TTL, withheld; "
        "not_found: no value for this entity. See docs/semantics.md."
    )
    event_timestamps: list[str | None] = Field(
        description="RFC 3339 UTC event time of each value (batch: the row's event timestamp; window: "
        "when the stream was last caught up); null when unknown."
    )


class LookupResponse(_Wire):
    features: list[str] = Field(description="The resolved feature references, in the order of the values.")
    results: list[FeatureRow] = Field(description="One entry per entity row, in request order.")


class ErrorResponse(BaseModel):
    detail: str = Field(description="What was wrong, naming the view, feature or entity field.")


class ValidationErrorItem(BaseModel):
    loc: list[str | int]
    msg: str
    type: str


class ValidationErrorResponse(BaseModel):
    detail: list[ValidationErrorItem] | str


class ViewHealth(BaseModel):
    view: str
    required: bool = Field(description="Readiness depends on this view (else advisory: reported only).")
    fresh: bool
    freshness_seconds: float | None = Field(description="Age of the view's newest data; null when unknown.")
    sla_seconds: float
    source: str = Field(description="Where freshness comes from: materializer, stream, or both.")
    reason: str = Field(default="", description="Why the view is not fresh (empty when fresh).")
    stream_state: str | None = Field(
        default=None, description="The streaming job's own state (running, catching-up, dead-lettering, ...)."
    )
    coverage: dict[str, str] = Field(
        default_factory=dict,
        description="Per writer part (batch, stream): 'Covered' when the online store's current generation "
        "holds what the view serves, else why not (StoreGenerationMissing, NotReseeded, CoverageTooShort).",
    )


class ReadinessPolicyBody(BaseModel):
    required: list[str] = Field(description="Globs of the views readiness requires.")
    advisory: list[str] = Field(description="Globs of the views that are reported only.")


class Readiness(BaseModel):
    ready: bool
    reasons: list[str] = Field(description="Why the server is not ready (empty when ready).")
    advisories: list[str] = Field(description="Problems of advisory views (they never make the server unready).")
    redis: str = Field(description="'ok' or the error talking to Redis.")
    policy: ReadinessPolicyBody
    views: list[ViewHealth]


class CatalogView(BaseModel):
    project: str
    entities: list[str]
    features: list[str]
    ttl_seconds: float
    freshness_sla_seconds: float
    required: bool = Field(description="Readiness depends on this view's freshness (else advisory).")


class CatalogResponse(BaseModel):
    views: dict[str, CatalogView]
    feature_sets: dict[str, list[str]]
    problems: list[str]
