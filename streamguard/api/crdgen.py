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


def _column(name: str, kind: str, path: str, priority: int = 0, description: str = "") -> dict[str, Any]:
    """One ``additionalPrinterColumns`` entry (``priority`` 1: shown by ``kubectl get -o wide`` only)."""
    column: dict[str, Any] = {"name": name, "type": kind, "jsonPath": path}
    if description:
        column["description"] = description
    if priority:
        column["priority"] = priority
    return column


def _condition_column(cond_type: str) -> dict[str, Any]:
    return _column(cond_type, "string", f'.status.conditions[?(@.type=="{cond_type}")].status')


def _age_column() -> dict[str, Any]:
    return _column("Age", "date", ".metadata.creationTimestamp")


KINDS: tuple[KindInfo, ...] = (
    KindInfo(
        FEATURE_VIEW,
        FeatureViewSpec,
        FeatureViewStatus,
        (
            _condition_column("Ready"),
            _column("Entities", "string", ".status.entityNames"),
            _column("Features", "integer", ".status.featureCount"),
            _column("Freshness", "integer", ".status.freshnessSeconds",
                    description="Seconds since the newest materialized data"),
            _column("SLA", "string", ".spec.freshnessSla", priority=1),
            _column("Schedule", "string", ".spec.materialization.schedule", priority=1),
            _age_column(),
        ),
    ),
    KindInfo(
        STREAMING_WINDOW,
        StreamingWindowSpec,
        StreamingWindowStatus,
        (
            _column("Topic", "string", ".spec.source.topic"),
            _column("Windows", "string", ".status.windowNames"),
            _column("Schema Version", "integer", ".status.schemaVersion"),
            _condition_column("Ready"),
            _column("View", "string", ".spec.featureView", priority=1),
            _column("Executors", "integer", ".spec.executors.count", priority=1,
                    description="Spark executor pods (0: the job runs in one pod)."),
            _age_column(),
        ),
    ),
    KindInfo(
        DRIFT_MONITOR,
        DriftMonitorSpec,
        DriftMonitorStatus,
        (
            _column("View", "string", ".spec.featureView"),
            _column("Drift Share", "number", ".status.driftShare"),
            _condition_column("Drifted"),
            _condition_column("Ready"),
            _column("Last Run", "date", ".status.lastRunAt", priority=1),
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
