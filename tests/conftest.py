"""Session fixtures: the real local stack (started here unless one already runs) and clients for it.

A component that cannot start fails the session with its log tail; nothing is skipped. Set
``STREAMGUARD_KEEP_STACK=1`` to leave a stack this session started running afterwards.
"""

import os
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import redis
from kubernetes import client, config

from streamguard.devstack import image, node
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.provision import ensure
from streamguard.devstack.stack import Stack
from tests.polling import wait_for

REPO = Path(__file__).resolve().parent.parent
CHART = REPO / "charts" / "streamguard"
Kubectl = Callable[..., subprocess.CompletedProcess[str]]
Helm = Callable[..., subprocess.CompletedProcess[str]]


def _attach_or_start() -> tuple[Endpoints, Stack, bool]:
    run_dir = Path(os.environ.get("STREAMGUARD_RUN_DIR", REPO / ".run" / "stack"))
    os.environ["STREAMGUARD_RUN_DIR"] = str(run_dir)
    stack = Stack(run_dir)
    if (run_dir / "endpoints.json").exists() and all(stack.status().values()):
        return Endpoints.load(run_dir), stack, False
    return stack.up(), stack, True


@pytest.fixture(scope="session")
def stack() -> Iterator[Endpoints]:
    endpoints, handle, started = _attach_or_start()
    yield endpoints
    if started and os.environ.get("STREAMGUARD_KEEP_STACK") != "1":
        handle.down()


@pytest.fixture(scope="session")
def kube_api(stack: Endpoints) -> client.ApiClient:
    api: client.ApiClient = config.new_client_from_config(config_file=stack.kubeconfig)  # type: ignore[no-untyped-call]
    return api


@pytest.fixture(scope="session")
def kubectl(stack: Endpoints) -> Kubectl:
    binary = str(Path(stack.bin_dir) / "kubectl")

    def run(*args: str, check: bool = True, input: str | None = None) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([binary, f"--kubeconfig={stack.kubeconfig}", *args], capture_output=True,
                                text=True, input=input, check=False, timeout=120)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    return run


@pytest.fixture(scope="session")
def crds(kubectl: Kubectl) -> None:
    """The StreamGuard CRDs installed and Established."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(REPO / "crds"))


@pytest.fixture(scope="session")
def prometheus_crds(stack: Endpoints, kubectl: Kubectl) -> Path:
    """The Prometheus Operator's ServiceMonitor and PrometheusRule CRDs (generated from its Go API types by
    provisioning), installed and Established."""
    out = ensure(["prometheus-crds"])["prometheus-crds"].directory
    for kind in ("servicemonitors", "prometheusrules"):
        file = out / f"monitoring.coreos.com_{kind}.yaml"
        kubectl("apply", "--server-side", "--force-conflicts", "-f", str(file))
        kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(file))
    return out


@pytest.fixture
def namespace(kube_api: client.ApiClient) -> Iterator[str]:
    name = f"t-{uuid.uuid4().hex[:10]}"
    core = client.CoreV1Api(kube_api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name)))
    # The apiserver's ServiceAccount admission refuses pods until the controller-manager has created the
    # namespace's `default` account (as in any cluster).
    wait_for(f"ServiceAccount default in {name}",
             lambda: core.list_namespaced_service_account(name, field_selector="metadata.name=default").items,
             timeout=30)
    yield name
    core.delete_namespace(name)


@pytest.fixture(scope="session")
def built_images() -> image.ProjectImages:
    """The images of the current sources (`streamguard dev image`: cached by digest, rebuilt when they change)."""
    return image.build()


@pytest.fixture(scope="session")
def project_images(stack: Endpoints, built_images: image.ProjectImages) -> image.ProjectImages:
    """The images, imported into the stack's node, where every pod runs."""
    node.put_images(built_images, Path(stack.run_dir))
    return built_images


@pytest.fixture(scope="session")
def redis_client(stack: Endpoints) -> redis.Redis:
    return redis.Redis.from_url(stack.redis_url)


@pytest.fixture(scope="session")
def registry_url(stack: Endpoints) -> str:
    return stack.registry_url


@pytest.fixture(scope="session")
def kafka_bootstrap(stack: Endpoints) -> str:
    return stack.kafka_bootstrap


@pytest.fixture(scope="session")
def helm(stack: Endpoints, tmp_path_factory: pytest.TempPathFactory) -> Helm:
    """``helm(*args, check=True)`` with the stack's kubeconfig and throwaway helm home folders."""
    binary = Path(stack.bin_dir) / "helm"
    assert binary.is_file(), f"helm is missing from the stack's bin dir {stack.bin_dir}"
    home = tmp_path_factory.mktemp("helm-home")
    env = {
        "PATH": f"{stack.bin_dir}:/usr/bin:/bin",
        "KUBECONFIG": stack.kubeconfig,
        "HELM_CACHE_HOME": str(home / "cache"),
        "HELM_CONFIG_HOME": str(home / "config"),
        "HELM_DATA_HOME": str(home / "data"),
    }

    def run(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        result = subprocess.run([str(binary), *args], capture_output=True, text=True, env=env, check=False,
                                timeout=300)
        if check and result.returncode != 0:
            raise AssertionError(f"helm {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    return run


@pytest.fixture(scope="session")
def chart_crds(kubectl: Kubectl, crds: None) -> None:
    """Every CRD the chart ships (StreamGuard's and kopf's peering) installed and Established."""
    kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CHART / "crds"))
    kubectl("wait", "--for=condition=Established", "--timeout=60s", "-f", str(CHART / "crds"))
