"""StreamingWindow -> job ConfigMap + Spark streaming Deployment + metrics Service (+ checkpoint PVC)."""

import json
from dataclasses import dataclass

import fastavro
from fastavro.schema import SchemaParseException

from streamguard.api.featureview import FeatureViewSpec
from streamguard.api.streamingwindow import (
    AGGREGATIONS_NEEDING_FIELD,
    DEFAULT_MAX_WINDOWS_PER_EVENT,
    StreamingWindowSpec,
)
from streamguard.contracts.fields import describe, field_types, is_numeric
from streamguard.jobspec import EXECUTOR_POD_TEMPLATE_KEY, StreamJob
from streamguard.operator.render import executors
from streamguard.operator.render.common import (
    IDENTITY_KINDS,
    Manifest,
    Owner,
    client_security,
    container,
    digest,
    env_value,
    job_config_map,
    metadata,
    metrics_port,
    metrics_probe,
    metrics_service,
    redis_env,
    single_pod_deployment,
    volumes,
    workload_identity,
)
from streamguard.operator.settings import OperatorSettings

COMPONENT = "stream"
METRICS_PORT = 9108
CHILD_KINDS = ("ConfigMap", "Deployment", "Service", "PersistentVolumeClaim", *IDENTITY_KINDS)


@dataclass(frozen=True)
class Problem:
    """Why a spec cannot be acted on; ``message`` names the offending field."""

    reason: str
    message: str


def fingerprint(text: str) -> str:
    return digest(json.loads(text))


def child_names(owner: Owner) -> dict[str, str]:
    return {
        "ConfigMap": f"{owner.name}-stream",
        "Deployment": f"{owner.name}-stream",
        "Service": f"{owner.name}-stream-metrics",
        "PersistentVolumeClaim": f"{owner.name}-checkpoint",
    }


def _type_problem(spec: StreamingWindowSpec, types: dict[str, list[str]]) -> Problem | None:
    """The contract's field types against what the job reads: keys, event times and numbers."""
    key = types[spec.key_field]
    if len(key) != 1 or key[0] not in ("string", "int", "long"):
        return Problem(
            "FieldTypeMismatch",
            f"spec.keyField: {spec.key_field!r} is {describe(key)} in the contract; the key field must be a "
            "string, int or long",
        )
    event_time = types[spec.event_time_field]
    if len(event_time) != 1 or event_time[0] not in ("long:timestamp-millis", "long:timestamp-micros"):
        return Problem(
            "FieldTypeMismatch",
            f"spec.eventTimeField: {spec.event_time_field!r} is {describe(event_time)} in the contract; it must "
            "be a long with logicalType timestamp-millis or timestamp-micros",
        )
    for i, agg in enumerate(spec.aggregations):
        if agg.function in AGGREGATIONS_NEEDING_FIELD and agg.field and not is_numeric(types[agg.field]):
            return Problem(
                "FieldTypeMismatch",
                f"spec.aggregations[{i}].field: {agg.field!r} is {describe(types[agg.field])} in the contract; "
                f"{agg.function} needs a numeric field (int, long, float or double, optionally nullable)",
            )
    return None


def _windows_problem(spec: StreamingWindowSpec, limit: int) -> Problem | None:
    count = spec.windows_per_event()
    if count <= limit:
        return None
    shares = ", ".join(f"{w.length}/{w.slide} = {w.windows_per_event}" for w in spec.windows)
    return Problem(
        "TooManyWindows",
        f"spec.windows: each event would be counted in {count} windows ({shares}), more than the operator's "
        f"limit of {limit} (setting max_windows_per_event); use a longer slide",
    )


def check(
    spec: StreamingWindowSpec,
    view_name: str,
    view: FeatureViewSpec | None,
    max_windows_per_event: int = DEFAULT_MAX_WINDOWS_PER_EVENT,
    checkpoint_volume: bool = True,
) -> Problem | None:
    """Checks the CRD schema cannot express: the Avro contract, the operator's limits (``checkpoint_volume``:
    whether checkpoints live on a PVC) and the target view."""
    try:
        parsed = json.loads(spec.contract.schema_)
        fastavro.parse_schema(parsed)
    except (json.JSONDecodeError, SchemaParseException, ValueError, TypeError, KeyError) as error:
        return Problem("InvalidSchema", f"spec.contract.schema: not a valid Avro schema: {error}")
    types = field_types(parsed) if isinstance(parsed, dict) and parsed.get("type") == "record" else {}
    if not types:
        return Problem("InvalidSchema", "spec.contract.schema: must be an Avro record with fields")
    needed = [("spec.keyField", spec.key_field), ("spec.eventTimeField", spec.event_time_field)]
    needed += [(f"spec.aggregations[{i}].field", agg.field) for i, agg in enumerate(spec.aggregations) if agg.field]
    for path, field in needed:
        if field not in types:
            return Problem("InvalidSchema", f"{path}: field {field!r} is not in the Avro schema of spec.contract")
    problem = _type_problem(spec, types) or _windows_problem(spec, max_windows_per_event)
    if problem is None and spec.executors.count and not checkpoint_volume:
        problem = Problem(
            "ExecutorsNeedCheckpointVolume",
            f"spec.executors.count: {spec.executors.count} executors write the windows' state into the "
            "checkpoint, which this operator keeps in each pod's own emptyDir (setting checkpoint_storage is "
            "empty); configure checkpoint_storage or set count to 0",
        )
    if problem is not None:
        return problem
    if view is None:
        return Problem("FeatureViewNotFound", f"spec.featureView: FeatureView {view_name!r} does not exist")
    if len(view.entities) != 1:
        keys = ", ".join(e.join_key for e in view.entities)
        return Problem(
            "MultiEntityView",
            f"spec.featureView: FeatureView {view_name!r} has {len(view.entities)} join keys ({keys}); a "
            "StreamingWindow writes one key field, so it can only feed a view with exactly one entity "
            "(multi-entity windows are not supported yet)",
        )
    declared = {feature.name for feature in view.features}
    missing = [name for name in spec.feature_names() if name not in declared]
    if missing:
        return Problem(
            "FeaturesNotDeclared",
            f"spec.aggregations/spec.windows: FeatureView {view_name!r} does not declare "
            f"{', '.join(missing)} in its spec.features",
        )
    return None


def job(owner: Owner, spec: StreamingWindowSpec, view: FeatureViewSpec, settings: OperatorSettings) -> StreamJob:
    return StreamJob(
        namespace=owner.namespace,
        name=owner.name,
        generation=owner.generation,
        window=spec,
        view_name=spec.feature_view,
        view=view,
        subject=spec.subject_in(owner.namespace),
        checkpoint_dir=f"{settings.checkpoint_root}/{owner.namespace}/{owner.name}",
        metrics_port=METRICS_PORT,
        dead_letter_max_ratio=settings.dead_letter_max_ratio,
        dead_letter_window_seconds=settings.dead_letter_window_seconds,
        unknown_schema_grace_seconds=settings.unknown_schema_grace_seconds,
    )


def render(
    owner: Owner, spec: StreamingWindowSpec, view: FeatureViewSpec, settings: OperatorSettings
) -> list[Manifest]:
    """The desired children of an accepted StreamingWindow (contract registered, view checked)."""
    names = child_names(owner)
    job_json = job(owner, spec, view, settings).model_dump_json(by_alias=True, exclude_none=True, indent=2)
    checkpoint_volume: Manifest
    scaled_out = spec.executors.count > 0
    identity = workload_identity(owner, COMPONENT, names["Deployment"], executors.DRIVER_RULES if scaled_out else None)
    config_map = job_config_map(owner, COMPONENT, names["ConfigMap"], job_json)
    children: list[Manifest] = [*identity, config_map]
    if settings.checkpoint_storage:
        checkpoint_volume = {
            "name": "checkpoint",
            "persistentVolumeClaim": {"claimName": names["PersistentVolumeClaim"]},
        }
        claim_spec: Manifest = {
            "accessModes": [settings.checkpoint_access_mode],
            "resources": {"requests": {"storage": settings.checkpoint_storage}},
        }
        if settings.checkpoint_storage_class:
            claim_spec["storageClassName"] = settings.checkpoint_storage_class
        children.append(
            {
                "apiVersion": "v1",
                "kind": "PersistentVolumeClaim",
                "metadata": metadata(owner, COMPONENT, names["PersistentVolumeClaim"]),
                "spec": claim_spec,
            }
        )
    else:
        checkpoint_volume = {"name": "checkpoint", "emptyDir": {}}
    endpoints = (
        ("STREAMGUARD_KAFKA_BOOTSTRAP", settings.kafka_bootstrap),
        ("STREAMGUARD_REGISTRY_URL", settings.registry_url),
    )
    security = client_security(settings)
    env = [*(env_value(name, value) for name, value in endpoints if value), redis_env(settings), *security.env]
    ports = metrics_port(METRICS_PORT)
    if scaled_out:
        env += executors.driver_env(owner, spec, settings)
        ports += executors.driver_ports()
        config_map["data"][EXECUTOR_POD_TEMPLATE_KEY] = executors.pod_template(owner, settings, checkpoint_volume,
                                                                                security)
    stream = container(
        settings,
        "stream",
        "stream",
        env,
        settings.stream_resources,
        extra_mounts=[{"name": "checkpoint", "mountPath": settings.checkpoint_root}, *security.mounts],
        ports=ports,
        image=settings.spark_image,
    )
    stream["livenessProbe"] = metrics_probe("metrics", settings, initial_delay=settings.probe_initial_delay_seconds * 2)
    stream["readinessProbe"] = metrics_probe("metrics", settings)
    children.append(
        single_pod_deployment(
            owner,
            COMPONENT,
            names["Deployment"],
            settings,
            stream,
            volumes(names["ConfigMap"], [checkpoint_volume, *security.volumes]),
            job_json,
            replicas=0 if spec.suspend else 1,
            pod_extra={"terminationGracePeriodSeconds": 60},
        )
    )
    children.append(metrics_service(owner, COMPONENT, names["Service"], METRICS_PORT))
    return children
