"""Serving's and the operator's objects (Deployment, ServiceAccount, RBAC, ...) as ``charts/streamguard``
renders them.

The chart is the one source of both Deployments: the demo and the tests deploy what ``helm template`` makes
of it, with ``values-dev.yaml`` (one replica, small CPU requests) under a few settings of their own, so the
probes, securityContext, resources, mounts and arguments they run are the ones users install.
:func:`serving_values` is pure; :func:`render` runs the stack's helm binary (no cluster needed) and keeps one
component's objects.
"""

import json
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from streamguard import __version__
from streamguard.devstack.provision import artifacts

CHART = Path(__file__).resolve().parents[2] / "charts" / "streamguard"
BASE_VALUES = CHART / "values-dev.yaml"
Manifest = dict[str, Any]


class ChartError(RuntimeError):
    """helm is missing or refused the chart; the message carries helm's output."""


@dataclass(frozen=True)
class ServingDeployment:
    namespace: str
    auth_token_secret: str | None
    """Existing Secret whose ``auth_token_key`` lists the accepted bearer tokens (mounted as a directory);
    ``None`` renders ``--insecure-no-auth`` (development only)."""
    name: str = "streamguard-serving"
    """Name of the Deployment, Service, ServiceAccount and Role; also the Helm release name, so two
    Deployments in one namespace select only their own pods."""
    image: str = f"streamguard:{__version__}"
    image_pull_policy: str = "IfNotPresent"
    replicas: int = 1
    port: int = 8080
    workers: int = 1
    watch_namespace: str | None = None
    """Namespace of the FeatureViews to serve (default: the Deployment's own)."""
    redis_secret: str = "streamguard-redis"
    redis_secret_key: str = "url"
    auth_token_key: str = "tokens"
    required_views: tuple[str, ...] = ("*",)
    """Globs of the views readiness requires (default: all)."""
    advisory_views: tuple[str, ...] = ()
    """Globs of the views that are reported only (win over :attr:`required_views`)."""


def split_image(image: str) -> tuple[str, str]:
    """``repo[:tag]`` -> (repo, tag); a colon before the last ``/`` is a registry port, not a tag."""
    repository, colon, tag = image.rpartition(":")
    if not colon or "/" in tag:
        return image, "latest"
    return repository, tag


def serving_values(spec: ServingDeployment) -> dict[str, Any]:
    """The settings layered over ``values-dev.yaml``: serving only, on an existing Redis Secret."""
    repository, tag = split_image(spec.image)
    return {
        "image": {"repository": repository, "tag": tag, "pullPolicy": spec.image_pull_policy},
        "operator": {"enabled": False},
        "serviceAccount": {"create": False},
        "devRedis": {"enabled": False},
        "connections": {"redis": {"existingSecret": spec.redis_secret, "secretKey": spec.redis_secret_key}},
        "monitoring": {"dashboard": {"enabled": False}},
        "tests": {"enabled": False},
        "serving": {
            "fullnameOverride": spec.name,
            "replicas": spec.replicas,
            "port": spec.port,
            "workers": spec.workers,
            "namespace": spec.watch_namespace or "",
            "requiredViews": list(spec.required_views),
            "advisoryViews": list(spec.advisory_views),
            "auth": {"insecureNoAuth": spec.auth_token_secret is None, "existingSecret": spec.auth_token_secret or "",
                     "tokenKey": spec.auth_token_key},
        },
    }


def helm_binary() -> Path:
    binary = artifacts()["helm"].ready
    if not binary.is_file():
        raise ChartError(f"helm is not provisioned ({binary} is missing): run `streamguard dev up` once")
    return binary


def render(release: str, namespace: str, values: dict[str, Any], component: str,
           helm: Path | None = None) -> list[Manifest]:
    """``helm template`` of the chart with ``values`` over ``values-dev.yaml``, keeping the objects labelled
    ``app.kubernetes.io/component: <component>`` (``serving`` or ``operator``)."""
    argv = [str(helm or helm_binary()), "template", release, str(CHART), "--namespace", namespace,
            "-f", str(BASE_VALUES), "-f", "-"]
    result = subprocess.run(argv, input=json.dumps(values), capture_output=True, text=True, check=False,
                            timeout=120)
    if result.returncode != 0:
        raise ChartError(f"helm template failed ({result.returncode}): {result.stderr.strip()}")
    docs = [doc for doc in yaml.safe_load_all(result.stdout) if isinstance(doc, dict)]
    return [doc for doc in docs if doc["metadata"].get("labels", {}).get("app.kubernetes.io/component") == component]


def render_serving(spec: ServingDeployment, helm: Path | None = None) -> list[Manifest]:
    """Serving's objects alone (the release is named after the Deployment)."""
    return render(spec.name, spec.namespace, serving_values(spec), "serving", helm)
