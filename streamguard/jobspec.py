"""What the operator hands to the workloads it deploys.

The operator renders one of these into a ConfigMap (key ``job.json``) mounted at
``/etc/streamguard/job.json``; the workload reads it back with :func:`load`. Connection endpoints come
from the environment (``connections_from_env``), credentials from Secrets, never from these files.
"""

import os
from pathlib import Path
from typing import TypeVar

from pydantic import BaseModel, ConfigDict, Field

from streamguard.api.driftmonitor import DriftMonitorSpec
from streamguard.api.featureview import FeatureViewSpec
from streamguard.api.streamingwindow import StreamingWindowSpec
from streamguard.clientsecurity import KafkaEndpoint, KafkaSecurity, RegistrySecurity

JOB_CONFIG_KEY = "job.json"
JOB_CONFIG_DIR = "/etc/streamguard"
JOB_CONFIG_PATH = f"{JOB_CONFIG_DIR}/{JOB_CONFIG_KEY}"
EXECUTOR_POD_TEMPLATE_KEY = "executor-pod.yaml"
"""Key of the job ConfigMap holding the pod template of a streaming job's Spark executors (when it has any)."""
SPARK_MASTER_ENV = "STREAMGUARD_SPARK_MASTER"
"""The streaming job's Spark master (default ``local[2]``; ``k8s://...`` with executors)."""


def spark_master() -> str:
    return os.environ.get(SPARK_MASTER_ENV, "local[2]")


def spark_on_kubernetes() -> bool:
    """Whether the streaming job runs its executors as pods (``spec.executors``)."""
    return spark_master().startswith("k8s://")


POD_UID_ENV = "POD_UID"
"""The uid of the streaming job's pod (downward API), with executors: it owns them."""
SPARK_CONF_ENV = "STREAMGUARD_SPARK_CONF"
"""A JSON object of Spark settings the streaming job applies last (the operator's executor settings)."""
DEFAULT_DEAD_LETTER_MAX_RATIO = 0.01
DEFAULT_DEAD_LETTER_WINDOW_SECONDS = 60
DEFAULT_UNKNOWN_SCHEMA_GRACE_SECONDS = 120


class _Job(BaseModel):
    model_config = ConfigDict(extra="forbid")

    namespace: str
    name: str
    """Name of the custom resource this job belongs to."""
    generation: int = 0


class MaterializeJob(_Job):
    """A FeatureView's materialization CronJob: Parquet source -> Redis (Feast layout)."""

    view: FeatureViewSpec


class StreamJob(_Job):
    """A StreamingWindow's Spark Structured Streaming Deployment: Kafka -> windows -> Redis."""

    window: StreamingWindowSpec
    view_name: str
    view: FeatureViewSpec
    subject: str
    checkpoint_dir: str
    metrics_port: int = 9108
    dead_letter_max_ratio: float = Field(default=DEFAULT_DEAD_LETTER_MAX_RATIO, ge=0, le=1)
    """Dead letters above this share of the records read over ``dead_letter_window_seconds`` make the job
    ``StreamRunning=False`` (``DeadLettering``) and stop its progress (serving: ``stale``)."""
    dead_letter_window_seconds: int = Field(default=DEFAULT_DEAD_LETTER_WINDOW_SECONDS, ge=1)
    unknown_schema_grace_seconds: int = Field(default=DEFAULT_UNKNOWN_SCHEMA_GRACE_SECONDS, ge=0)
    """How long a writer schema id the registry does not know is looked up again (its batch failing, nothing
    dead-lettered) before its records go to the dead-letter topic."""


class DriftJob(_Job):
    """A DriftMonitor's exporter Deployment: Evidently PSI/KS -> Prometheus gauges + status."""

    monitor: DriftMonitorSpec
    view_name: str
    view: FeatureViewSpec
    metrics_port: int = 9109


J = TypeVar("J", bound=_Job)


def load(kind: type[J], path: Path | str = JOB_CONFIG_PATH) -> J:
    """Read a job file; a missing or malformed file raises with the path in the message."""
    file = Path(path)
    try:
        return kind.model_validate_json(file.read_text())
    except FileNotFoundError as error:
        raise FileNotFoundError(f"job config {file} not found (is the ConfigMap mounted?)") from error


class Connections(BaseModel):
    kafka_bootstrap: str | None = None
    registry_url: str | None = None
    redis_url: str | None = None
    kafka_security: KafkaSecurity = KafkaSecurity()
    registry_security: RegistrySecurity = RegistrySecurity()

    def kafka(self) -> KafkaEndpoint:
        if not self.kafka_bootstrap:
            raise ValueError("STREAMGUARD_KAFKA_BOOTSTRAP is not set")
        return KafkaEndpoint(self.kafka_bootstrap, self.kafka_security)


def connections_from_env() -> Connections:
    """Endpoints from ``STREAMGUARD_KAFKA_BOOTSTRAP``, ``STREAMGUARD_REGISTRY_URL``, ``STREAMGUARD_REDIS_URL``,
    and how to authenticate to Kafka and the registry (:mod:`streamguard.clientsecurity`). An incomplete
    security setting raises ``ValueError`` naming the variable."""
    return Connections(
        kafka_bootstrap=os.environ.get("STREAMGUARD_KAFKA_BOOTSTRAP"),
        registry_url=os.environ.get("STREAMGUARD_REGISTRY_URL"),
        redis_url=os.environ.get("STREAMGUARD_REDIS_URL"),
        kafka_security=KafkaSecurity.from_env(),
        registry_security=RegistrySecurity.from_env(),
    )


METRICS_PORT_ENV = "STREAMGUARD_PORT_METRICS"
"""Overrides a job's metrics port when it runs outside a pod, where several jobs share one host's ports (e.g.
a job started on the host from its Deployment's command line). In a pod the job file's port is used."""


def metrics_port(job_port: int) -> int:
    """The metrics port to listen on: ``$STREAMGUARD_PORT_METRICS`` when set, else the job file's."""
    override = os.environ.get(METRICS_PORT_ENV)
    return int(override) if override else job_port

