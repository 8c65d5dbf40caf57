"""Feast objects (entities, file sources, feature views) built from FeatureView specs.

Importing this module imports Feast (seconds): keep it out of hot paths.
"""

from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

from feast import Entity, FeatureView, Field, FileSource, ValueType
from feast.types import Bool, Float32, Float64, Int32, Int64, PrimitiveFeastType, String

from streamguard import objectstore
from streamguard.api.durations import parse_duration
from streamguard.api.featureview import FeatureViewSpec
from streamguard.feastrepo.config import MANAGED_TAG

DTYPES: dict[str, PrimitiveFeastType] = {
    "INT64": Int64,
    "INT32": Int32,
    "FLOAT64": Float64,
    "FLOAT32": Float32,
    "STRING": String,
    "BOOL": Bool,
}
_ENTITY_TYPES = {"STRING": (ValueType.STRING, String), "INT64": (ValueType.INT64, Int64)}


def source_path(spec: FeatureViewSpec, base_dir: Path) -> str:
    """The view's Parquet source: an ``s3://`` URI as is, relative local paths taken from ``base_dir``."""
    if spec.source is None:
        raise ValueError("spec.source is not set")
    if objectstore.is_remote(spec.source.path):
        return spec.source.path
    path = Path(spec.source.path)
    return str(path if path.is_absolute() else (base_dir / path).resolve())


def feast_objects(views: Mapping[str, FeatureViewSpec], base_dir: Path) -> list[Any]:
    """Entities first, then one FileSource + FeatureView per view that has a source.

    Raises ``ValueError`` naming the view and field when two views disagree on an entity."""
    entities: dict[str, Entity] = {}
    join_key_of: dict[str, tuple[str, str, str]] = {}
    views_out: list[Any] = []
    for name, spec in sorted(views.items()):
        for entity in spec.entities:
            seen = join_key_of.get(entity.name)
            if seen and seen[:2] != (entity.join_key, entity.value_type):
                raise ValueError(
                    f"FeatureView {name}: spec.entities[{entity.name}] is joined on {entity.join_key} "
                    f"({entity.value_type}) but FeatureView {seen[2]} joins it on {seen[0]} ({seen[1]})"
                )
            join_key_of[entity.name] = (entity.join_key, entity.value_type, name)
            entities.setdefault(
                entity.name,
                Entity(
                    name=entity.name,
                    join_keys=[entity.join_key],
                    value_type=_ENTITY_TYPES[entity.value_type][0],
                    description=entity.description,
                ),
            )
        if spec.source is None:
            continue
        path = source_path(spec, base_dir)
        source = FileSource(
            name=f"{name}-source",
            path=path,
            # No endpoint is recorded: it would be the writer's (the operator's is a pod address). Feast's file
            # offline store reads s3:// through pyarrow, which takes the reader's own AWS_ENDPOINT_URL and keys.
            timestamp_field=spec.source.timestamp_field,
            created_timestamp_column=spec.source.created_timestamp_field or "",
        )
        schema = [Field(name=e.join_key, dtype=_ENTITY_TYPES[e.value_type][1]) for e in spec.entities]
        schema += [Field(name=f.name, dtype=DTYPES[f.dtype], description=f.description) for f in spec.features]
        views_out.append(
            FeatureView(
                name=name,
                entities=[entities[e.name] for e in spec.entities],
                schema=schema,
                source=source,
                ttl=timedelta(seconds=parse_duration(spec.ttl).total_seconds()),
                online=spec.online,
                description=spec.description,
                tags={MANAGED_TAG: "streamguard"},
            )
        )
    return [*entities.values(), *views_out]
