"""Generate the CustomResourceDefinitions in ``crds/`` from the pydantic models.

Pydantic emits JSON Schema 2020-12; the apiserver wants a *structural* OpenAPI v3 schema: no ``$ref``,
no ``anyOf`` with ``null``, boolean ``exclusiveMinimum``, no ``additionalProperties: false`` beside
``properties``. :func:`structural` does that conversion.
"""

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel

from streamguard.api.common import GROUP, VERSION
from streamguard.api.driftmonitor import DriftMonitorSpec, DriftMonitorStatus
from streamguard.api.featureview import FeatureViewSpec, FeatureViewStatus
from streamguard.api.kinds import DRIFT_MONITOR, FEATURE_VIEW, STREAMING_WINDOW, Kind
from streamguard.api.streamingwindow import StreamingWindowSpec, StreamingWindowStatus

_DROP = {"title", "additionalProperties_false", "$defs"}
MAX_NAME_LENGTH = 40
"""Longest name of a custom resource: its children append suffixes such as ``-stream-metrics``."""


@dataclass(frozen=True)
class KindInfo:
    """A kind of :mod:`streamguard.api.kinds` with what its CRD needs besides the names."""

    names: Kind
    spec: type[BaseModel]
    status: type[BaseModel]
    columns: tuple[dict[str, Any], ...]

    @property
    def kind(self) -> str:
        return self.names.kind

    @property
    def plural(self) -> str:
        return self.names.plural


def _ready_column() -> dict[str, Any]:
    return {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'}


def _age_column() -> dict[str, Any]:
    return {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"}


KINDS: tuple[KindInfo, ...] = (
    KindInfo(
        FEATURE_VIEW,
        FeatureViewSpec,
        FeatureViewStatus,
        (
            _ready_column(),
            {"name": "Entities", "type": "string", "jsonPath": ".status.entityNames"},
            {"name": "Features", "type": "integer", "jsonPath": ".status.featureCount"},
            {"name": "Freshness", "type": "integer", "jsonPath": ".status.freshnessSeconds",
             "description": "Seconds since the newest materialized data"},
            {"name": "SLA", "type": "string", "jsonPath": ".spec.freshnessSla", "priority": 1},
            {"name": "Schedule", "type": "string", "jsonPath": ".spec.materialization.schedule", "priority": 1},
            _age_column(),
        ),
    ),
    KindInfo(
        STREAMING_WINDOW,
        StreamingWindowSpec,
        StreamingWindowStatus,
        (
            {"name": "Topic", "type": "string", "jsonPath": ".spec.source.topic"},
            {"name": "Windows", "type": "string", "jsonPath": ".status.windowNames"},
            {"name": "Schema Version", "type": "integer", "jsonPath": ".status.schemaVersion"},
            _ready_column(),
            {"name": "View", "type": "string", "jsonPath": ".spec.featureView", "priority": 1},
            _age_column(),
        ),
    ),
    KindInfo(
        DRIFT_MONITOR,
        DriftMonitorSpec,
        DriftMonitorStatus,
        (
            {"name": "View", "type": "string", "jsonPath": ".spec.featureView"},
            {"name": "Drift Share", "type": "number", "jsonPath": ".status.driftShare"},
            {"name": "Drifted", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Drifted")].status'},
            _ready_column(),
            {"name": "Last Run", "type": "date", "jsonPath": ".status.lastRunAt", "priority": 1},
            _age_column(),
        ),
    ),
)


def structural(schema: dict[str, Any], defs: dict[str, Any] | None = None) -> dict[str, Any]:
    """Turn one pydantic JSON schema node into a structural OpenAPI v3 node."""
    defs = schema.get("$defs", defs or {})
    if "$ref" in schema:
        target = defs[schema["$ref"].rsplit("/", 1)[-1]]
        merged = {**target, **{k: v for k, v in schema.items() if k != "$ref"}}
        return structural(merged, defs)
    if "anyOf" in schema:
        options = [o for o in schema["anyOf"] if o.get("type") != "null"]
        if len(options) != 1:
            raise ValueError(f"cannot express union {schema['anyOf']} structurally")
        merged = {**options[0], **{k: v for k, v in schema.items() if k != "anyOf"}}
        return structural(merged, defs)
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _DROP or (key == "default" and value is None):
            continue
        if key == "properties":
            out[key] = {name: structural(sub, defs) for name, sub in value.items()}
        elif key == "items":
            out[key] = structural(value, defs)
        elif key == "additionalProperties":
            if isinstance(value, dict):
                out[key] = structural(value, defs)
        elif key == "const":
            out["enum"] = [value]
        elif key in ("exclusiveMinimum", "exclusiveMaximum") and not isinstance(value, bool):
            out["minimum" if key == "exclusiveMinimum" else "maximum"] = value
            out[key] = True
        else:
            out[key] = value
    if "enum" in out and "type" not in out:
        out["type"] = "string"
    if out.get("type") == "object" and "properties" not in out and "additionalProperties" not in out:
        out["x-kubernetes-preserve-unknown-fields"] = True
    return out


def _model_schema(model: type[BaseModel]) -> dict[str, Any]:
    return structural(model.model_json_schema(by_alias=True, mode="validation"))


def crd(info: KindInfo) -> dict[str, Any]:
    """The CustomResourceDefinition of one kind."""
    schema = {
        "type": "object",
        "required": ["spec"],
        "x-kubernetes-validations": [
            {
                "rule": f"self.metadata.name.size() <= {MAX_NAME_LENGTH} && "
                "self.metadata.name.matches('^[a-z]([-a-z0-9]*[a-z0-9])?$')",
                "message": f"metadata.name must be a DNS-1035 label of at most {MAX_NAME_LENGTH} characters "
                "(lower-case letters, digits and '-', starting with a letter): child objects are named after it",
            }
        ],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": {"type": "object"},
            "spec": _model_schema(info.spec),
            "status": _model_schema(info.status),
        },
    }
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": info.names.crd_name, "labels": {"app.kubernetes.io/part-of": "streamguard"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": info.kind,
                "listKind": f"{info.kind}List",
                "plural": info.plural,
                "singular": info.names.singular,
                "shortNames": [info.names.short_name],
                "categories": ["streamguard"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": list(info.columns),
                    "schema": {"openAPIV3Schema": schema},
                }
            ],
        },
    }


def render_all() -> dict[str, str]:
    """File name -> YAML text for every CRD."""
    header = "# Generated from streamguard.api by `streamguard crds generate`. Do not edit.\n"
    return {
        f"{info.names.crd_name}.yaml": header + yaml.safe_dump(crd(info), sort_keys=False, width=120)
        for info in KINDS
    }


def write_all(directory: Path) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    written = []
    for name, text in render_all().items():
        path = directory / name
        path.write_text(text)
        written.append(path)
    return written
