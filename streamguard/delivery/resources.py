"""Load the StreamGuard resources (FeatureView, StreamingWindow, DriftMonitor) of a folder of YAML.

Every document is validated against the pydantic API models; a document that does not validate is
reported as a :class:`Problem` naming the file, the resource and the field, never raised.
"""

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ValidationError

from streamguard.api import API_VERSION, DriftMonitor, FeatureView, StreamingWindow
from streamguard.api.common import ApiModel
from streamguard.api.crdgen import KINDS

MODELS: dict[str, type[BaseModel]] = {
    "FeatureView": FeatureView,
    "StreamingWindow": StreamingWindow,
    "DriftMonitor": DriftMonitor,
}
SPEC_MODELS: dict[str, type[ApiModel]] = {info.kind: info.spec for info in KINDS}  # type: ignore[misc]
KIND_ORDER = ("FeatureView", "StreamingWindow", "DriftMonitor")
"""Apply order: views before the windows and monitors that reference them."""


@dataclass(frozen=True, order=True)
class Key:
    """Identity of one resource in the cluster."""

    kind: str
    namespace: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind} {self.namespace}/{self.name}"

    @property
    def sort_key(self) -> tuple[int, str, str]:
        rank = KIND_ORDER.index(self.kind) if self.kind in KIND_ORDER else len(KIND_ORDER)
        return rank, self.namespace, self.name


@dataclass(frozen=True)
class Problem:
    """Something that would break: ``where`` names the resource (or file), ``field`` the spec path."""

    where: str
    message: str
    field: str = ""
    check: str = "schema"

    def __str__(self) -> str:
        location = f"{self.where} {self.field}".strip() if self.field else self.where
        return f"{location}: {self.message}"


@dataclass
class Resource:
    """One resource as a folder (or the cluster) declares it."""

    key: Key
    spec: dict[str, Any]
    """The spec normalised through the API model (defaults filled in, camelCase), for diffing."""
    document: dict[str, Any]
    """The document as written, with ``metadata.namespace`` filled in: what would be applied."""
    source: Path | None = None


@dataclass
class Folder:
    resources: dict[Key, Resource] = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    """Documents of other kinds (e.g. a Namespace in the same folder), by ``file: kind/name``."""


def _field_path(loc: Iterable[int | str]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    return path


def validation_problems(where: str, error: ValidationError, prefix: str = "") -> list[Problem]:
    """One :class:`Problem` per pydantic error, with a ``.spec.x[0].y``-style field path."""
    return [
        Problem(where, err["msg"], prefix + _field_path(err["loc"]))
        for err in error.errors(include_url=False)
    ]


def normalize_spec(kind: str, spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as the API model reads it (defaults filled in); unchanged if it does not validate."""
    try:
        return SPEC_MODELS[kind].model_validate(spec).wire()
    except ValidationError:
        return spec


def parse_document(
    doc: Any, where: str, default_namespace: str, source: Path | None = None
) -> Resource | list[Problem] | None:
    """A resource, its problems, or ``None`` for a document that is not a StreamGuard resource."""
    if not isinstance(doc, dict):
        return [Problem(where, f"expected a mapping, got {type(doc).__name__}")]
    api_version, kind = doc.get("apiVersion"), doc.get("kind")
    if not isinstance(api_version, str) or not api_version.startswith("streamguard.dev/"):
        return None
    metadata = doc.get("metadata") or {}
    name = metadata.get("name") if isinstance(metadata, dict) else None
    label = f"{kind} {name or '<unnamed>'} ({where})"
    if api_version != API_VERSION:
        return [Problem(label, f"unsupported apiVersion {api_version!r} (expected {API_VERSION})", ".apiVersion")]
    if kind not in MODELS:
        return [Problem(label, f"unknown kind {kind!r} (expected one of {', '.join(KIND_ORDER)})", ".kind")]
    if not isinstance(name, str) or not name:
        return [Problem(label, "metadata.name is required", ".metadata.name")]
    namespace = metadata.get("namespace") or default_namespace
    key = Key(kind, namespace, name)
    try:
        model = MODELS[kind].model_validate(doc)
    except ValidationError as error:
        return validation_problems(f"{key} ({where})", error)
    spec = model.model_dump(by_alias=True, exclude_none=True, mode="json")["spec"]
    document = {**doc, "metadata": {**metadata, "namespace": namespace}}
    return Resource(key, spec, document, source)


def documents(path: Path) -> Iterator[tuple[str, Any]]:
    """``(file:index, document)`` for every YAML document under ``path`` (a file or a folder)."""
    files = [path] if path.is_file() else sorted(
        p for p in path.rglob("*") if p.suffix in (".yaml", ".yml") and p.is_file()
    )
    for file in files:
        text = file.read_text()
        try:
            docs = [d for d in yaml.safe_load_all(text) if d is not None]
        except yaml.YAMLError as error:
            yield f"{file}", error
            continue
        for index, doc in enumerate(docs):
            yield f"{file}#{index}" if len(docs) > 1 else str(file), doc


def load_folder(path: Path, default_namespace: str = "default") -> Folder:
    """Every StreamGuard resource under ``path``; duplicates and invalid documents become problems."""
    folder = Folder()
    if not path.exists():
        folder.problems.append(Problem(str(path), "no such file or directory"))
        return folder
    for where, doc in documents(path):
        if isinstance(doc, yaml.YAMLError):
            folder.problems.append(Problem(where, f"not valid YAML: {doc}"))
            continue
        source = Path(where.split("#", 1)[0])
        parsed = parse_document(doc, where, default_namespace, source)
        if parsed is None:
            meta = doc.get("metadata") if isinstance(doc, dict) else None
            name = meta.get("name") if isinstance(meta, dict) else "?"
            folder.skipped.append(f"{where}: {doc.get('kind', '?') if isinstance(doc, dict) else '?'}/{name}")
        elif isinstance(parsed, list):
            folder.problems.extend(parsed)
        elif parsed.key in folder.resources:
            first = folder.resources[parsed.key].source
            folder.problems.append(Problem(str(parsed.key), f"declared twice ({first} and {where})"))
        else:
            folder.resources[parsed.key] = parsed
    return folder
