"""The serving Deployment, Service and the RBAC it needs to watch the feature resources (pure).

The pod runs ``streamguard serve --from-cluster <namespace>``; Redis' URL comes from a Secret. It is
Ready only while ``/readyz`` passes (Redis reachable and every *required* view within its freshness
SLA), so a pod with stale required features leaves the Service's endpoints; advisory views are only
reported. Non-root, read-only root filesystem.
"""

from dataclasses import dataclass, field
from typing import Any

from streamguard import __version__
from streamguard.api.common import GROUP
from streamguard.api.kinds import FEATURE_VIEW, STREAMING_WINDOW

COMPONENT = "serving"


@dataclass(frozen=True)
class ServingDeployment:
    namespace: str
    auth_token_secret: str | None
    """Secret whose ``auth_token_key`` lists the accepted bearer tokens (mounted as a directory, so a rotated
    Secret reaches the pod without a restart); ``None`` renders ``--insecure-no-auth`` (development only)."""
    name: str = "streamguard-serving"
    image: str = f"streamguard:{__version__}"
    image_pull_policy: str = "IfNotPresent"
    replicas: int = 2
    port: int = 8080
    service_port: int = 80
    watch_namespace: str | None = None
    """Namespace of the FeatureViews to serve (default: the Deployment's own)."""
    redis_secret: str = "streamguard-redis"
    redis_secret_key: str = "url"
    auth_token_key: str = "tokens"
    workers: int = 1
    cache_staleness_seconds: float = 1.0
    max_batch: int = 1000
    required_views: tuple[str, ...] = ("*",)
    """Globs of the views readiness requires (default: all)."""
    advisory_views: tuple[str, ...] = ()
    """Globs of the views that are reported only (win over :attr:`required_views`)."""
    resources: dict[str, dict[str, str]] = field(
        default_factory=lambda: {
            "requests": {"cpu": "500m", "memory": "256Mi"},
            "limits": {"cpu": "2", "memory": "512Mi"},
        }
    )


def labels(spec: ServingDeployment) -> dict[str, str]:
    return {
        "app.kubernetes.io/name": spec.name,
        "app.kubernetes.io/component": COMPONENT,
        "app.kubernetes.io/part-of": "streamguard",
        "app.kubernetes.io/managed-by": "streamguard",
        "app.kubernetes.io/version": __version__,
    }


def _selector(spec: ServingDeployment) -> dict[str, str]:
    return {"app.kubernetes.io/name": spec.name, "app.kubernetes.io/component": COMPONENT}


def _meta(spec: ServingDeployment, **extra: Any) -> dict[str, Any]:
    return {"name": spec.name, "namespace": spec.namespace, "labels": labels(spec), **extra}


AUTH_DIR = "/var/run/streamguard/serving-auth"


def _auth_args(spec: ServingDeployment) -> list[str]:
    if spec.auth_token_secret is None:
        return ["--insecure-no-auth"]
    return [f"--auth-token-file={AUTH_DIR}/{spec.auth_token_key}"]


def _container(spec: ServingDeployment) -> dict[str, Any]:
    watch = spec.watch_namespace or spec.namespace
    mounts: list[dict[str, Any]] = [{"name": "tmp", "mountPath": "/tmp"}]
    if spec.auth_token_secret is not None:
        mounts.append({"name": "auth-tokens", "mountPath": AUTH_DIR, "readOnly": True})
    return {
        "name": "serving",
        "image": spec.image,
        "imagePullPolicy": spec.image_pull_policy,
        "args": [
            "serve",
            "--from-cluster",
            watch,
            "--port",
            str(spec.port),
            "--workers",
            str(spec.workers),
            "--cache-staleness",
            str(spec.cache_staleness_seconds),
            "--max-batch",
            str(spec.max_batch),
            f"--required-views={','.join(spec.required_views)}",
            f"--advisory-views={','.join(spec.advisory_views)}",
            *_auth_args(spec),
        ],
        "env": [
            {
                "name": "STREAMGUARD_REDIS_URL",
                "valueFrom": {"secretKeyRef": {"name": spec.redis_secret, "key": spec.redis_secret_key}},
            },
        ],
        "ports": [{"name": "http", "containerPort": spec.port, "protocol": "TCP"}],
        "readinessProbe": {
            "httpGet": {"path": "/readyz", "port": "http"},
            "periodSeconds": 5,
            "timeoutSeconds": 3,
            "failureThreshold": 2,
            "successThreshold": 1,
        },
        "livenessProbe": {
            "httpGet": {"path": "/livez", "port": "http"},
            "initialDelaySeconds": 5,
            "periodSeconds": 10,
            "timeoutSeconds": 3,
            "failureThreshold": 3,
        },
        "resources": spec.resources,
        "securityContext": {
            "runAsNonRoot": True,
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        },
        "volumeMounts": mounts,
    }


def _volumes(spec: ServingDeployment) -> list[dict[str, Any]]:
    volumes: list[dict[str, Any]] = [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}]
    if spec.auth_token_secret is not None:
        volumes.append({"name": "auth-tokens", "secret": {"secretName": spec.auth_token_secret}})
    return volumes


def render(spec: ServingDeployment) -> list[dict[str, Any]]:
    """ServiceAccount, Role + RoleBinding (read FeatureViews and StreamingWindows), Deployment, Service."""
    watch = spec.watch_namespace or spec.namespace
    role_meta = {**_meta(spec), "namespace": watch}
    return [
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": _meta(spec), "automountServiceAccountToken": True},
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": role_meta,
            "rules": [
                {
                    "apiGroups": [GROUP],
                    "resources": [FEATURE_VIEW.plural, STREAMING_WINDOW.plural],
                    "verbs": ["get", "list", "watch"],
                }
            ],
        },
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": role_meta,
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": spec.name},
            "subjects": [{"kind": "ServiceAccount", "name": spec.name, "namespace": spec.namespace}],
        },
        {
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": _meta(spec),
            "spec": {
                "replicas": spec.replicas,
                "selector": {"matchLabels": _selector(spec)},
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {
                        "labels": labels(spec),
                        "annotations": {
                            "prometheus.io/scrape": "true",
                            "prometheus.io/port": str(spec.port),
                            "prometheus.io/path": "/metrics",
                        },
                    },
                    "spec": {
                        "serviceAccountName": spec.name,
                        "securityContext": {
                            "runAsNonRoot": True,
                            "runAsUser": 10001,
                            "runAsGroup": 10001,
                            "fsGroup": 10001,
                            "seccompProfile": {"type": "RuntimeDefault"},
                        },
                        "containers": [_container(spec)],
                        "volumes": _volumes(spec),
                    },
                },
            },
        },
        {
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": _meta(spec),
            "spec": {
                "type": "ClusterIP",
                "selector": _selector(spec),
                "ports": [{"name": "http", "port": spec.service_port, "targetPort": "http", "protocol": "TCP"}],
            },
        },
    ]
