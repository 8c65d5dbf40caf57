"""FeatureView -> job ConfigMap + materialization CronJob (only when the view has a batch source)."""

from streamguard.api.featureview import FeatureViewSpec
from streamguard.jobspec import MaterializeJob
from streamguard.operator.render.common import (
    CONFIG_HASH_ANNOTATION,
    IDENTITY_KINDS,
    Manifest,
    Owner,
    container,
    digest,
    job_config_map,
    labels,
    metadata,
    object_store_env,
    pod_security_context,
    redis_ca,
    redis_env,
    volumes,
    workload_identity,
)
from streamguard.operator.settings import OperatorSettings

COMPONENT = "materializer"
CHILD_KINDS = ("ConfigMap", "CronJob", *IDENTITY_KINDS)


def child_name(owner: Owner) -> str:
    return f"{owner.name}-materialize"


def job(owner: Owner, spec: FeatureViewSpec) -> MaterializeJob:
    return MaterializeJob(namespace=owner.namespace, name=owner.name, generation=owner.generation, view=spec)


def render(owner: Owner, spec: FeatureViewSpec, settings: OperatorSettings) -> list[Manifest]:
    """The desired children of a FeatureView; none when nothing is materialized from a batch source."""
    if spec.source is None or not spec.online:
        return []
    name = child_name(owner)
    job_json = job(owner, spec).model_dump_json(by_alias=True, exclude_none=True, indent=2)
    pod_labels = labels(owner, COMPONENT)
    ca_volume, ca_mount = redis_ca(settings)
    pod = {
        "metadata": {"labels": pod_labels, "annotations": {CONFIG_HASH_ANNOTATION: digest(job_json)}},
        "spec": {
            "restartPolicy": "Never",
            "serviceAccountName": name,
            "securityContext": pod_security_context(settings),
            "containers": [
                container(
                    settings,
                    "materialize",
                    "materialize",
                    [redis_env(settings), *object_store_env(settings, spec.source.secret_ref, [spec.source.path])],
                    settings.materialize_resources,
                    extra_mounts=[ca_mount],
                )
            ],
            "volumes": volumes(name, [ca_volume]),
        },
    }
    cron_job: Manifest = {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": metadata(owner, COMPONENT, name),
        "spec": {
            "schedule": spec.materialization.schedule,
            "timeZone": "Etc/UTC",
            "suspend": spec.materialization.suspend,
            "concurrencyPolicy": "Forbid",
            "startingDeadlineSeconds": 300,
            "successfulJobsHistoryLimit": 3,
            "failedJobsHistoryLimit": 3,
            "jobTemplate": {
                "metadata": {"labels": pod_labels},
                "spec": {"backoffLimit": 2, "template": pod},
            },
        },
    }
    return [*workload_identity(owner, COMPONENT, name), job_config_map(owner, COMPONENT, name, job_json), cron_job]
