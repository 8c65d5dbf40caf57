"""Operator configuration: what the operator puts into the workloads it deploys, read from the environment.

Every field can be set with ``STREAMGUARD_OPERATOR_<FIELD>`` (upper case); structured fields take JSON.
The endpoints handed to workloads default to ``STREAMGUARD_KAFKA_BOOTSTRAP`` / ``STREAMGUARD_REGISTRY_URL``.
Credentials are never configured here by value: the Redis URL, the object store's keys and Kafka's and
the registry's credentials reach pods through ``secretKeyRef``s and read-only Secret volumes, named here.
"""

import json
import os
from collections.abc import Mapping
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from streamguard.api.streamingwindow import DEFAULT_MAX_WINDOWS_PER_EVENT, WINDOWS_PER_EVENT_CEILING
from streamguard.clientsecurity import (
    KAFKA_MECHANISM_ENV,
    KAFKA_PROTOCOL_ENV,
    KafkaProtocol,
    KafkaSecurity,
    SaslMechanism,
)
from streamguard.jobspec import (
    DEFAULT_DEAD_LETTER_MAX_RATIO,
    DEFAULT_DEAD_LETTER_WINDOW_SECONDS,
    DEFAULT_UNKNOWN_SCHEMA_GRACE_SECONDS,
)

ENV_PREFIX = "STREAMGUARD_OPERATOR_"
FIELD_MANAGER = "streamguard-operator"


class Resources(BaseModel):
    """A container's ``resources`` (canonical quantity strings, as the apiserver stores them)."""

    model_config = ConfigDict(extra="forbid")

    requests: dict[str, str] = Field(default_factory=dict)
    limits: dict[str, str] = Field(default_factory=dict)

    def wire(self) -> dict[str, dict[str, str]]:
        return {key: value for key, value in (("requests", self.requests), ("limits", self.limits)) if value}


class OperatorSettings(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    image: str = "streamguard:0.1.0"
    """The image of the materialization Jobs and drift exporters (and of the operator and serving)."""
    spark_image: str = "streamguard-spark:0.1.0"
    """The image of StreamingWindow Deployments: the Spark job (JRE, pyspark, connector jars)."""
    image_pull_policy: Literal["Always", "IfNotPresent", "Never"] = "IfNotPresent"
    run_as_user: int = Field(default=10001, ge=1)

    materialize_resources: Resources = Resources(requests={"cpu": "250m", "memory": "512Mi"}, limits={"memory": "1Gi"})
    stream_resources: Resources = Resources(requests={"cpu": "500m", "memory": "1Gi"}, limits={"memory": "3Gi"})
    drift_resources: Resources = Resources(requests={"cpu": "100m", "memory": "512Mi"}, limits={"memory": "1536Mi"})

    kafka_bootstrap: str = Field(default="", description="STREAMGUARD_KAFKA_BOOTSTRAP handed to workloads.")
    registry_url: str = Field(default="", description="STREAMGUARD_REGISTRY_URL handed to workloads.")
    operator_registry_url: str = Field(default="", description="Registry base URL the operator itself calls.")
    operator_kafka_bootstrap: str = Field(
        default="", description="Kafka bootstrap the operator's admin client uses (default: kafka_bootstrap)."
    )
    kafka_security_protocol: KafkaProtocol = "PLAINTEXT"
    """How the operator and the streaming jobs connect to Kafka (``SSL``/``SASL_SSL``: TLS, broker names verified)."""
    kafka_sasl_mechanism: SaslMechanism = "SCRAM-SHA-512"
    kafka_credentials_secret: str = Field(
        default="", description="Secret with the SASL `username` and `password` (required for SASL_* protocols)."
    )
    kafka_ca_secret: str = Field(
        default="", description="Secret whose `ca.crt` (PEM) signs the brokers' certificates; empty: system CAs."
    )
    registry_ca_secret: str = Field(
        default="", description="Secret whose `ca.crt` (PEM) signs the registry's certificate; empty: system CAs."
    )
    registry_client_cert_secret: str = Field(
        default="", description="kubernetes.io/tls Secret (`tls.crt`, `tls.key`): the client certificate the "
        "workloads present to a registry that requires mTLS."
    )
    registry_credentials_secret: str = Field(
        default="", description="Secret with the registry's HTTP basic auth `username` and `password`."
    )
    redis_secret_name: str = Field(default="streamguard-redis", description="Secret holding the Redis URL.")
    redis_secret_key: str = "url"
    redis_ca_key: str = Field(
        default="ca.crt", min_length=1, description="Key of the Redis Secret holding a private CA (PEM), mounted, "
        "when the Secret has it, in every pod that talks to Redis (render.common.REDIS_CA_FILE)."
    )
    object_store_secret_name: str = Field(
        default="streamguard-object-store",
        description="Secret with the object store's endpoint, region, accessKeyId and secretAccessKey, read by "
        "workloads whose offline data is on s3:// (a resource's secretRef overrides it).",
    )

    feast_registry: str = Field(
        default="",
        description="Feast registry file the operator keeps in step with the FeatureViews (s3://bucket/key, "
        "read and written with the object-store credentials of the operator's environment); empty: none.",
    )

    checkpoint_root: str = "/var/lib/streamguard/checkpoints"
    checkpoint_storage: str | None = Field(
        default="1Gi", description="PVC size for streaming checkpoints; empty means an emptyDir (lost on restart)."
    )
    checkpoint_storage_class: str | None = None
    checkpoint_access_mode: Literal["ReadWriteOnce", "ReadWriteMany"] = Field(
        default="ReadWriteOnce",
        description="Access mode of checkpoint PVCs. Spark executors write the windows' state into the "
        "checkpoint, so with ReadWriteOnce they run on their driver's node; ReadWriteMany lets them spread.",
    )
    executor_cpu_request: str | None = Field(
        default=None,
        description="CPU request of each Spark executor pod; default: the StreamingWindow's spec.executors.cores.",
    )

    subject_deletion_policy: Literal["Delete", "Retain"] = "Retain"
    """Default for StreamingWindows that leave ``spec.contract.deletionPolicy`` unset."""
    subject_hard_delete: bool = False
    """``Delete`` soft-deletes a subject (its versions stay recoverable in the registry); ``True`` also
    deletes it permanently. Either way a subject another StreamingWindow uses, in any namespace, is kept."""
    cleanup_timeout_seconds: int = Field(default=600, ge=0)
    """After this long in deletion, an unreachable registry no longer blocks the finalizer."""
    registry_timeout_seconds: float = Field(default=5.0, gt=0)
    kafka_timeout_seconds: float = Field(default=10.0, gt=0)

    resync_seconds: float = Field(default=300.0, gt=0)
    """Every object is reconciled again this long after its last reconcile, events or not: the registry
    subject, the topic and the children are checked against what status records."""
    stream_grace_seconds: float | None = Field(default=None, gt=0)
    """How long ``StreamRunning`` may be False before ``Ready`` follows it; default per StreamingWindow:
    twice its trigger interval plus 60 s."""

    dead_letter_max_ratio: float = Field(default=DEFAULT_DEAD_LETTER_MAX_RATIO, ge=0, le=1)
    """A streaming job whose dead letters exceed this share of the records it read over
    ``dead_letter_window_seconds`` reports ``StreamRunning=False`` (``DeadLettering``) and makes no progress."""
    dead_letter_window_seconds: int = Field(default=DEFAULT_DEAD_LETTER_WINDOW_SECONDS, ge=1)
    unknown_schema_grace_seconds: int = Field(default=DEFAULT_UNKNOWN_SCHEMA_GRACE_SECONDS, ge=0)
    """How long a streaming job looks up a writer schema id the registry does not know (its batch failing,
    nothing dead-lettered) before that id's records go to the dead-letter topic."""

    max_windows_per_event: int = Field(default=DEFAULT_MAX_WINDOWS_PER_EVENT, ge=1, le=WINDOWS_PER_EVENT_CEILING)
    """A StreamingWindow whose events would each count in more windows (sum of length/slide) is Stalled."""

    probe_initial_delay_seconds: int = Field(default=30, ge=0)
    workers: int = Field(default=4, ge=1, le=64)

    def registry_for_operator(self) -> str:
        return self.operator_registry_url or self.registry_url

    def kafka_for_operator(self) -> str:
        return self.operator_kafka_bootstrap or self.kafka_bootstrap

    def kafka_security_for_operator(self, environ: Mapping[str, str] | None = None) -> KafkaSecurity:
        """The protocol and mechanism from these settings; the user name, password and CA file from the
        operator's own environment (the chart fills it from the same Secrets the workloads get)."""
        return KafkaSecurity.from_env({
            **(os.environ if environ is None else environ),
            KAFKA_PROTOCOL_ENV: self.kafka_security_protocol,
            KAFKA_MECHANISM_ENV: self.kafka_sasl_mechanism,
        })

    @model_validator(mode="after")
    def _kafka_credentials(self) -> "OperatorSettings":
        if self.kafka_security_protocol.startswith("SASL_") and not self.kafka_credentials_secret:
            raise ValueError(f"kafka_security_protocol {self.kafka_security_protocol} needs kafka_credentials_secret")
        return self

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None, **overrides: Any) -> "OperatorSettings":
        """Settings from ``STREAMGUARD_OPERATOR_*`` (JSON for structured fields), then ``overrides``."""
        env = os.environ if environ is None else environ
        values: dict[str, Any] = {}
        if env.get("STREAMGUARD_KAFKA_BOOTSTRAP"):
            values["kafka_bootstrap"] = env["STREAMGUARD_KAFKA_BOOTSTRAP"]
        if env.get("STREAMGUARD_REGISTRY_URL"):
            values["registry_url"] = env["STREAMGUARD_REGISTRY_URL"]
        for name, field in cls.model_fields.items():
            raw = env.get(ENV_PREFIX + name.upper())
            if raw is None:
                continue
            structured = field.annotation is Resources
            try:
                values[name] = json.loads(raw) if structured else raw
            except json.JSONDecodeError as error:
                raise ValueError(f"{ENV_PREFIX}{name.upper()}: not valid JSON ({error})") from error
        values.update({key: value for key, value in overrides.items() if value is not None})
        for optional in ("checkpoint_storage", "checkpoint_storage_class"):
            if values.get(optional) == "":
                values[optional] = None
        try:
            return cls.model_validate(values)
        except ValidationError as error:
            raise ValueError(f"invalid operator settings: {error}") from error
