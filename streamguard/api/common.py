"""Shared API pieces: the base model, conditions, references and CEL rule helpers."""

import re
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from pydantic.alias_generators import to_camel

GROUP = "streamguard.dev"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"

NAME_PATTERN = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
"""A DNS-1123 label: the form of every reference to another object by name."""
IDENTIFIER_PATTERN = r"^[a-z_][a-z0-9_]*$"
"""Feature, entity and field names: lower-case identifiers, safe in SQL, Feast and Redis keys."""
_IDENTIFIER = re.compile(IDENTIFIER_PATTERN)
PROJECT_PATTERN = r"^[a-z][a-z0-9_]*$"
"""A FeatureView's ``spec.project``: an identifier that starts with a letter (Feast refuses a project name
that starts with ``_``, and only when it first materializes)."""


def cel(rule: str, message: str, field_path: str | None = None) -> dict[str, Any]:
    """One ``x-kubernetes-validations`` entry."""
    entry: dict[str, Any] = {"rule": rule, "message": message}
    if field_path:
        entry["fieldPath"] = field_path
    return entry


def unique_items(message: str, item: str, key: str = "{0}.name") -> dict[str, Any]:
    """``json_schema_extra`` of a list whose items have unique ``key`` (a CEL expression; ``{0}`` is the item)."""
    rule = f"self.all({item}, self.exists_one(o, {key.format('o')} == {key.format(item)}))"
    return {"x-kubernetes-validations": [cel(rule, message)]}


def is_identifier(name: str) -> bool:
    return bool(_IDENTIFIER.match(name))


class ApiModel(BaseModel):
    """Base for every API object: camelCase on the wire, unknown fields refused."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid")

    def wire(self) -> dict[str, Any]:
        """The object as the Kubernetes API stores it (camelCase, unset fields left out)."""
        return self.model_dump(by_alias=True, exclude_none=True, mode="json")


ConditionStatus = Literal["True", "False", "Unknown"]


class Condition(ApiModel):
    """A ``metav1.Condition``."""

    type: str = Field(max_length=316, pattern=r"^([a-zA-Z0-9]([-a-zA-Z0-9]*[a-zA-Z0-9])?)$")
    status: ConditionStatus
    reason: str = Field(max_length=1024)
    message: str = Field(default="", max_length=32768)
    observed_generation: int | None = Field(default=None, ge=0)
    last_transition_time: datetime


class SecretKeyRef(ApiModel):
    """A key of a Secret in the resource's namespace."""

    name: str = Field(pattern=NAME_PATTERN, max_length=253)
    key: str = Field(min_length=1, max_length=253)


class SecretRef(ApiModel):
    """A Secret in the resource's namespace."""

    name: str = Field(pattern=NAME_PATTERN, max_length=253)


OFFLINE_LOCATION_PATTERN = r"^(s3://[a-z0-9][a-z0-9.-]{1,61}[a-z0-9](/.*)?|[^:]+)$"
"""Where offline data is: ``s3://bucket[/prefix]`` (S3 bucket naming), or a path without a scheme, read
from the workload's own filesystem (local development only)."""
OFFLINE_LOCATION_DESCRIPTION = (
    "Parquet file or folder (optionally hive-partitioned by date=YYYY-MM-DD): s3://bucket/prefix on the "
    "object store, or a local path (development only: a pod sees only its own filesystem)."
)
SECRET_REF_DESCRIPTION = (
    "Secret with the object store's endpoint, region, accessKeyId and secretAccessKey for s3:// locations "
    "(default: the operator's object-store Secret)."
)


class CommonStatus(ApiModel):
    """Status fields every StreamGuard kind carries (kstatus-compatible)."""

    observed_generation: int | None = Field(default=None, ge=0)
    conditions: list[Condition] = Field(
        default_factory=list,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


def with_rules(*rules: dict[str, Any]) -> ConfigDict:
    """The ApiModel config plus object-level CEL rules (``x-kubernetes-validations``)."""
    return ConfigDict(**ApiModel.model_config, json_schema_extra={"x-kubernetes-validations": list(rules)})
