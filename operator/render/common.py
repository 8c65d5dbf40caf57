"""Pieces every rendered child shares: identity of the owner, labels, ownerReferences, pod hardening."""

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from streamguard import clientsecurity, objectstore
from streamguard.api.common import API_VERSION, GROUP, SecretRef
from streamguard.api.kinds import PLURALS
from streamguard.jobspec import JOB_CONFIG_DIR, JOB_CONFIG_KEY, JOB_CONFIG_PATH
from streamguard.operator.settings import OperatorSettings, Resources

MANAGED_BY = "streamguard-operator"
PART_OF = "streamguard"
CONFIG_HASH_ANNOTATION = "streamguard.dev/config-hash"
APPLIED_HASH_ANNOTATION = "streamguard.dev/applied-hash"
"""Hash of the desired object as last applied: lets the operator skip writes that would change nothing."""

Manifest = dict[str, Any]


@dataclass(frozen=True)
class Owner:
    """The custom resource a child belongs to."""

    kind: str
    name: str
    namespace: str
    uid: str
    generation: int = 0

    @classmethod
    def of(cls, body: dict[str, Any]) -> "Owner":
        meta = body["metadata"]
        return cls(
            kind=body["kind"],
            name=meta["name"],
            namespace=meta["namespace"],
            uid=meta["uid"],
            generation=int(meta.get("generation") or 0),
        )

    def reference(self) -> dict[str, Any]:
        return {
            "apiVersion": API_VERSION,
            "kind": self.kind,
            "name": self.name,
            "uid": self.uid,
            "controller": True,
            "blockOwnerDeletion": True,
        }


def labels(owner: Owner, component: str) -> dict[str, str]:
    """The ``app.kubernetes.io/*`` labels of every child; ``component`` is unique per owner kind."""
    return {
        "app.kubernetes.io/name": f"streamguard-{component}",
        "app.kubernetes.io/instance": owner.name,
        "app.kubernetes.io/component": component,
        "app.kubernetes.io/part-of": PART_OF,
        "app.kubernetes.io/managed-by": MANAGED_BY,
    }


def selector_labels(owner: Owner, component: str) -> dict[str, str]:
    """The immutable subset used by Deployment selectors and Services."""
    all_labels = labels(owner, component)
    return {key: all_labels[key] for key in ("app.kubernetes.io/name", "app.kubernetes.io/instance")}


def label_selector(owner: Owner, component: str) -> str:
    """Selects every child of one owner, for listing and pruning."""
    return (
        f"app.kubernetes.io/managed-by={MANAGED_BY},app.kubernetes.io/instance={owner.name},"
        f"app.kubernetes.io/component={component}"
    )


def metadata(owner: Owner, component: str, name: str, annotations: dict[str, str] | None = None) -> Manifest:
    meta: Manifest = {
        "name": name,
        "namespace": owner.namespace,
        "labels": labels(owner, component),
        "ownerReferences": [owner.reference()],
    }
    if annotations:
        meta["annotations"] = annotations
    return meta


def digest(value: Any) -> str:
    """A stable SHA-256 of any JSON value."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


IDENTITY_KINDS = ("ServiceAccount", "Role", "RoleBinding")
"""Each workload's own identity: a ServiceAccount bound to a Role naming only its resource."""


def workload_identity(owner: Owner, component: str, name: str, extra_rules: list[Manifest] | None = None
                      ) -> list[Manifest]:
    """ServiceAccount ``name`` and a Role (+ binding) letting it read its own resource and apply that
    resource's status, by ``resourceNames``: a workload's token cannot touch any other object's status.
    ``extra_rules`` add what the workload itself needs (a Spark driver: its executor pods)."""
    plural = PLURALS[owner.kind]
    rbac = "rbac.authorization.k8s.io"
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": metadata(owner, component, name)},
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "Role",
            "metadata": metadata(owner, component, name),
            "rules": [
                {"apiGroups": [GROUP], "resources": [plural], "resourceNames": [owner.name], "verbs": ["get"]},
                {
                    "apiGroups": [GROUP],
                    "resources": [f"{plural}/status"],
                    "resourceNames": [owner.name],
                    "verbs": ["get", "patch"],
                },
                *(extra_rules or []),
            ],
        },
        {
            "apiVersion": f"{rbac}/v1",
            "kind": "RoleBinding",
            "metadata": metadata(owner, component, name),
            "roleRef": {"apiGroup": rbac, "kind": "Role", "name": name},
            "subjects": [{"kind": "ServiceAccount", "name": name, "namespace": owner.namespace}],
        },
    ]


def job_config_map(owner: Owner, component: str, name: str, job_json: str) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": metadata(owner, component, name),
        "data": {JOB_CONFIG_KEY: job_json},
    }


def pod_security_context(settings: OperatorSettings) -> Manifest:
    return {
        "runAsNonRoot": True,
        "runAsUser": settings.run_as_user,
        "runAsGroup": settings.run_as_user,
        "fsGroup": settings.run_as_user,
        "seccompProfile": {"type": "RuntimeDefault"},
    }


def container_security_context() -> Manifest:
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": True,
        "runAsNonRoot": True,
        "capabilities": {"drop": ["ALL"]},
    }


def env_value(name: str, value: str) -> Manifest:
    return {"name": name, "value": value}


def redis_env(settings: OperatorSettings) -> Manifest:
    """The Redis URL comes from a Secret by reference: credentials never appear in a manifest."""
    return {
        "name": "STREAMGUARD_REDIS_URL",
        "valueFrom": {"secretKeyRef": {"name": settings.redis_secret_name, "key": settings.redis_secret_key}},
    }


CLIENT_SECRETS_DIR = "/etc/streamguard/secrets"
"""Where the Kafka, registry and Redis certificates are mounted (read-only, one directory per Secret)."""
REDIS_CA_VOLUME, REDIS_CA_NAME = "redis-ca", "ca.crt"
REDIS_CA_FILE = f"{CLIENT_SECRETS_DIR}/{REDIS_CA_VOLUME}/{REDIS_CA_NAME}"
"""Where every pod talking to Redis finds the private CA of the Redis Secret, when it has one
(:func:`redis_ca`): a ``rediss://`` URL names it, ``?ssl_ca_certs=/etc/streamguard/secrets/redis-ca/ca.crt``."""


def secret_volume(volume: str, secret: str, items: Mapping[str, str] | None = None,
                  optional: bool = False) -> tuple[Manifest, Manifest]:
    """``(volume, mount)``: Secret ``secret`` read-only at ``CLIENT_SECRETS_DIR/<volume>`` (group-readable through
    the pod's ``fsGroup``); only its keys in ``items`` (key -> file name) when given. ``optional``: the pod starts
    without the Secret or those keys, the files then missing."""
    source: Manifest = {"secretName": secret, "defaultMode": 0o440}
    if items:
        source["items"] = [{"key": key, "path": path} for key, path in items.items()]
    if optional:
        source["optional"] = True
    mount = {"name": volume, "mountPath": f"{CLIENT_SECRETS_DIR}/{volume}", "readOnly": True}
    return {"name": volume, "secret": source}, mount


def redis_ca(settings: OperatorSettings) -> tuple[Manifest, Manifest]:
    """``(volume, mount)``: the Redis Secret's CA key as :data:`REDIS_CA_FILE`, optional (a Secret without it
    mounts nothing)."""
    return secret_volume(REDIS_CA_VOLUME, settings.redis_secret_name, {settings.redis_ca_key: REDIS_CA_NAME},
                         optional=True)


@dataclass(frozen=True)
class ClientSecurity:
    """What a container needs to authenticate to Kafka and the registry, and to trust Redis's private CA, all by
    reference to Secrets."""

    env: list[Manifest]
    mounts: list[Manifest]
    volumes: list[Manifest]


def client_security(settings: OperatorSettings) -> ClientSecurity:
    """The :mod:`streamguard.clientsecurity` environment: the protocol and mechanism as values, user names and
    passwords as ``secretKeyRef``s, certificates and keys as files of read-only Secret volumes (group-readable
    through the pod's ``fsGroup``), and the Redis Secret's CA (:func:`redis_ca`)."""
    env: list[Manifest] = []
    mounts: list[Manifest] = []
    volumes_: list[Manifest] = []

    def secret_env(variable: str, secret: str, key: str) -> None:
        env.append({"name": variable, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}})

    def add(volume: Manifest, mount: Manifest) -> None:
        volumes_.append(volume)
        mounts.append(mount)

    def secret_files(volume: str, secret: str, files: dict[str, str]) -> None:
        add(*secret_volume(volume, secret))
        env.extend(env_value(variable, f"{CLIENT_SECRETS_DIR}/{volume}/{key}") for variable, key in files.items())

    if settings.kafka_security_protocol != "PLAINTEXT":
        env.append(env_value(clientsecurity.KAFKA_PROTOCOL_ENV, settings.kafka_security_protocol))
    if settings.kafka_security_protocol.startswith("SASL_"):
        env.append(env_value(clientsecurity.KAFKA_MECHANISM_ENV, settings.kafka_sasl_mechanism))
        secret_env(clientsecurity.KAFKA_USERNAME_ENV, settings.kafka_credentials_secret, "username")
        secret_env(clientsecurity.KAFKA_PASSWORD_ENV, settings.kafka_credentials_secret, "password")
    if settings.kafka_ca_secret and settings.kafka_security_protocol.endswith("SSL"):
        secret_files("kafka-ca", settings.kafka_ca_secret, {clientsecurity.KAFKA_CA_FILE_ENV: "ca.crt"})
    if settings.registry_ca_secret:
        secret_files("registry-ca", settings.registry_ca_secret, {clientsecurity.REGISTRY_CA_FILE_ENV: "ca.crt"})
    if settings.registry_client_cert_secret:
        secret_files(
            "registry-client",
            settings.registry_client_cert_secret,
            {clientsecurity.REGISTRY_CERT_FILE_ENV: "tls.crt", clientsecurity.REGISTRY_KEY_FILE_ENV: "tls.key"},
        )
    if settings.registry_credentials_secret:
        secret_env(clientsecurity.REGISTRY_USERNAME_ENV, settings.registry_credentials_secret, "username")
        secret_env(clientsecurity.REGISTRY_PASSWORD_ENV, settings.registry_credentials_secret, "password")
    add(*redis_ca(settings))
    return ClientSecurity(env, mounts, volumes_)


def object_store_env(settings: OperatorSettings, secret: SecretRef | None, locations: list[str]) -> list[Manifest]:
    """The object store's endpoint and keys by reference to ``secret`` (default: the operator's), when any
    location is ``s3://``. The references are optional, so a missing Secret or key does not hold the pod
    in ``CreateContainerConfigError``: the workload starts, reports the Secret by name in the resource's
    conditions and exits."""
    if not any(objectstore.is_remote(location) for location in locations):
        return []
    name = secret.name if secret else settings.object_store_secret_name
    return [
        env_value(objectstore.SECRET_NAME_ENV, name),
        *(
            {"name": variable, "valueFrom": {"secretKeyRef": {"name": name, "key": key, "optional": True}}}
            for variable, key in objectstore.SECRET_KEYS.items()
        ),
    ]


def container(
    settings: OperatorSettings,
    name: str,
    workload: str,
    env: list[Manifest],
    resources: Resources,
    extra_mounts: list[Manifest] | None = None,
    ports: list[Manifest] | None = None,
    image: str | None = None,
) -> Manifest:
    """A workload container: ``streamguard workload <workload> --config /etc/streamguard/job.json``, from
    ``image`` (default: the settings' image)."""
    spec: Manifest = {
        "name": name,
        "image": image or settings.image,
        "imagePullPolicy": settings.image_pull_policy,
        "command": ["streamguard", "workload", workload, "--config", JOB_CONFIG_PATH],
        "env": [env_value("HOME", "/tmp"), *env],
        "resources": resources.wire(),
        "securityContext": container_security_context(),
        "volumeMounts": [
            {"name": "job-config", "mountPath": JOB_CONFIG_DIR, "readOnly": True},
            {"name": "tmp", "mountPath": "/tmp"},
            *(extra_mounts or []),
        ],
    }
    if ports:
        spec["ports"] = ports
    return spec


def volumes(config_map: str, extra: list[Manifest] | None = None) -> list[Manifest]:
    return [
        {"name": "job-config", "configMap": {"name": config_map}},
        {"name": "tmp", "emptyDir": {}},
        *(extra or []),
    ]


def metrics_probe(port_name: str, settings: OperatorSettings, initial_delay: int | None = None) -> Manifest:
    return {
        "httpGet": {"path": "/metrics", "port": port_name},
        "initialDelaySeconds": settings.probe_initial_delay_seconds if initial_delay is None else initial_delay,
        "periodSeconds": 15,
        "failureThreshold": 4,
    }


def metrics_service(owner: Owner, component: str, name: str, port: int) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(
            owner,
            component,
            name,
            {"prometheus.io/scrape": "true", "prometheus.io/port": str(port), "prometheus.io/path": "/metrics"},
        ),
        "spec": {
            "type": "ClusterIP",
            "selector": selector_labels(owner, component),
            "ports": [{"name": "metrics", "port": port, "targetPort": "metrics", "protocol": "TCP"}],
        },
    }


def metrics_port(port: int) -> list[Manifest]:
    return [{"name": "metrics", "containerPort": port, "protocol": "TCP"}]


def single_pod_deployment(
    owner: Owner,
    component: str,
    name: str,
    settings: OperatorSettings,
    main: Manifest,
    pod_volumes: list[Manifest],
    job_json: str,
    replicas: int = 1,
    pod_extra: Manifest | None = None,
) -> Manifest:
    """A one-pod Deployment (``Recreate``: never two jobs on one checkpoint or port) whose pod rolls when
    its job file changes (config-hash annotation). The pod runs as ServiceAccount ``name``
    (:func:`workload_identity`)."""
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": metadata(owner, component, name),
        "spec": {
            "replicas": replicas,
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": selector_labels(owner, component)},
            "template": {
                "metadata": {
                    "labels": labels(owner, component),
                    "annotations": {CONFIG_HASH_ANNOTATION: digest(job_json)},
                },
                "spec": {
                    "serviceAccountName": name,
                    "securityContext": pod_security_context(settings),
                    **(pod_extra or {}),
                    "containers": [main],
                    "volumes": pod_volumes,
                },
            },
        },
    }
