"""The streaming job's plan: a ``StreamJob`` checked against its own contract and turned into plain values.

Pure: every mistake in the spec (a field the contract lacks, a non-numeric sum, an entity the view does not
have) is a :class:`StreamSpecError` naming the resource and the field, raised before Spark starts.
"""

import json
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from streamguard.api.durations import parse_duration
from streamguard.api.streamingwindow import RECORDS_PER_TRIGGER_SECOND
from streamguard.contracts.compatibility import SchemaParseError, parse
from streamguard.contracts.fields import field_types, is_numeric
from streamguard.jobspec import StreamJob
from streamguard.onlinestore.feast_layout import EntityValue, serialize_entity_key
from streamguard.onlinestore.pane_layout import PaneAggregation, PaneShape, shape_of
from streamguard.onlinestore.tenancy import store_project
from streamguard.onlinestore.window_layout import expiry_ms
from streamguard.windows import WindowShape

DLQ_SUFFIX = ".dlq"


class StreamSpecError(ValueError):
    """The job's spec cannot run; the message names the resource and the field."""


@dataclass(frozen=True)
class WindowPlan:
    suffix: str
    length_ms: int
    slide_ms: int
    expiry_ms: int

    @property
    def count(self) -> int:
        """How many windows contain each event."""
        return self.length_ms // self.slide_ms


@dataclass(frozen=True)
class StreamPlan:
    ref: str
    """``namespace/name`` of the StreamingWindow, for messages."""
    namespace: str
    name: str
    generation: int
    topic: str
    dead_letter_topic: str
    subject: str
    reader_schema: str
    starting_offsets: str
    max_offsets_per_trigger: int
    key_field: str
    event_time_field: str
    watermark_ms: int
    trigger_ms: int
    windows: tuple[WindowPlan, ...]
    aggregations: tuple[PaneAggregation, ...]
    project: str
    """The store project (:func:`~streamguard.onlinestore.tenancy.store_project`): namespace and
    ``spec.project``, the name every key of the view carries."""
    view: str
    join_key: str
    join_key_type: str
    """``STRING`` or ``INT64``: how entity keys are serialized."""
    checkpoint_dir: str
    metrics_port: int
    required_fields: tuple[str, ...] = ()
    """Reader fields that cannot be null: one null after decoding means the body did not decode."""
    dead_letter_max_ratio: float = 0.01
    dead_letter_window_ms: int = 60_000
    unknown_schema_grace_ms: int = 120_000

    @property
    def slides(self) -> tuple[int, ...]:
        """The distinct slides of the windows, ascending: one pane series each (``panes``)."""
        return tuple(sorted({w.slide_ms for w in self.windows}))

    def entity_key(self, raw: Any) -> bytes:
        """The serialized Feast entity key of a key column value (an ``int`` for an ``INT64`` join key)."""
        value: EntityValue = int(raw) if self.join_key_type == "INT64" else str(raw)
        return serialize_entity_key({self.join_key: value})

    @cached_property
    def pane_shape(self) -> PaneShape:
        """What the job's state rows and stored panes mean (``streamguard.onlinestore.pane_layout``)."""
        return shape_of(self.key_field, self.join_key_type, self.event_time_field,
                        ((w.length_ms, w.slide_ms) for w in self.windows), self.aggregations)

    def longest(self, slide_ms: int) -> int:
        """The longest window with slide ``slide_ms``: a pane of that slide is needed while one contains it."""
        return max(w.length_ms for w in self.windows if w.slide_ms == slide_ms)


def _ms(text: str, where: str, ref: str) -> int:
    try:
        return int(parse_duration(text).total_seconds() * 1000)
    except ValueError as error:
        raise StreamSpecError(f"StreamingWindow {ref}: {where}: {error}") from error


def default_max_offsets(trigger_ms: int) -> int:
    """``maxOffsetsPerTrigger`` of a spec that sets none: :data:`RECORDS_PER_TRIGGER_SECOND` per second of
    trigger interval, at least one second's worth (a zero interval starts batches back to back)."""
    return RECORDS_PER_TRIGGER_SECOND * max(1000, trigger_ms) // 1000


def build(job: StreamJob) -> StreamPlan:
    """Check ``job`` and resolve every default; raises :class:`StreamSpecError`."""
    ref = f"{job.namespace}/{job.name}"
    spec = job.window
    try:
        parse(spec.contract.schema_)
        schema = json.loads(spec.contract.schema_)
    except (SchemaParseError, ValueError) as error:
        raise StreamSpecError(f"StreamingWindow {ref}: spec.contract.schema: {error}") from error
    if not isinstance(schema, dict) or schema.get("type") != "record":
        raise StreamSpecError(f"StreamingWindow {ref}: spec.contract.schema: the contract must be an Avro record")
    types = field_types(schema)
    if spec.key_field not in types:
        raise StreamSpecError(
            f"StreamingWindow {ref}: spec.keyField: {spec.key_field!r} is not a field of the contract"
        )
    if not set(types[spec.key_field]) & {"string", "long", "int"}:
        raise StreamSpecError(f"StreamingWindow {ref}: spec.keyField: {spec.key_field!r} must be a string or integer")
    event_types = types.get(spec.event_time_field)
    if event_types is None:
        raise StreamSpecError(
            f"StreamingWindow {ref}: spec.eventTimeField: {spec.event_time_field!r} is not a field of the contract"
        )
    if not set(event_types) & {"long:timestamp-millis", "long:timestamp-micros"}:
        raise StreamSpecError(
            f"StreamingWindow {ref}: spec.eventTimeField: {spec.event_time_field!r} must be a long with logicalType "
            f"timestamp-millis or timestamp-micros (found {', '.join(event_types)})"
        )
    aggregations = []
    for i, agg in enumerate(spec.aggregations):
        if agg.function != "count":
            where = f"spec.aggregations[{i}].field"
            if not agg.field:
                raise StreamSpecError(f"StreamingWindow {ref}: {where}: required for {agg.function}")
            if agg.field not in types:
                raise StreamSpecError(f"StreamingWindow {ref}: {where}: {agg.field!r} is not a field of the contract")
            if not is_numeric(types[agg.field]):
                raise StreamSpecError(
                    f"StreamingWindow {ref}: {where}: {agg.field!r} is {'/'.join(types[agg.field])}, "
                    f"not numeric ({agg.function} needs int, long, float or double)"
                )
        field = agg.field if agg.function != "count" else None
        integral = agg.function == "count" or (agg.function != "avg" and types[str(field)][0] in ("int", "long"))
        aggregations.append(PaneAggregation(agg.name, agg.function, field, integral))
    watermark = _ms(spec.watermark, "spec.watermark", ref)
    trigger_ms = _ms(spec.trigger_interval, "spec.triggerInterval", ref)
    windows = []
    for i, window in enumerate(spec.windows):
        length = _ms(window.length, f"spec.windows[{i}].length", ref)
        slide = _ms(window.slide, f"spec.windows[{i}].slide", ref)
        try:
            WindowShape(length, slide)
        except ValueError as error:
            raise StreamSpecError(f"StreamingWindow {ref}: spec.windows[{i}]: {error}") from error
        windows.append(WindowPlan(window.suffix, length, slide, expiry_ms(length, slide, watermark)))
    entities = job.view.entities
    entity = next((e for e in entities if e.join_key == spec.key_field), entities[0] if len(entities) == 1 else None)
    if entity is None:
        raise StreamSpecError(
            f"StreamingWindow {ref}: spec.keyField: {spec.key_field!r} is not a join key of FeatureView "
            f"{job.view_name} (join keys: {', '.join(e.join_key for e in entities)})"
        )
    return StreamPlan(
        ref=ref,
        namespace=job.namespace,
        name=job.name,
        generation=job.generation,
        topic=spec.source.topic,
        dead_letter_topic=spec.source.topic + DLQ_SUFFIX,
        subject=job.subject,
        reader_schema=spec.contract.schema_,
        starting_offsets=spec.source.starting_offsets,
        max_offsets_per_trigger=spec.source.max_offsets_per_trigger or default_max_offsets(trigger_ms),
        key_field=spec.key_field,
        event_time_field=spec.event_time_field,
        watermark_ms=watermark,
        trigger_ms=trigger_ms,
        windows=tuple(windows),
        aggregations=tuple(aggregations),
        project=store_project(job.namespace, job.view.project),
        view=job.view_name,
        join_key=entity.join_key,
        join_key_type=entity.value_type,
        checkpoint_dir=job.checkpoint_dir,
        metrics_port=job.metrics_port,
        dead_letter_max_ratio=job.dead_letter_max_ratio,
        dead_letter_window_ms=job.dead_letter_window_seconds * 1000,
        unknown_schema_grace_ms=job.unknown_schema_grace_seconds * 1000,
        required_fields=tuple(
            f["name"] for f in schema.get("fields", [])
            if not (isinstance(f.get("type"), list) and "null" in f["type"])
        ),
    )
