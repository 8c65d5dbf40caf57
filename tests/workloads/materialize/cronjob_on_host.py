"""The materialization CronJob's container run on the host, as the kubelet would run it: its command and
args, its env with Secret references resolved, and its ConfigMap mounts written to a work folder."""

import base64
import subprocess
import sys
from pathlib import Path
from typing import Any

from kubernetes import client
from kubernetes.client.exceptions import ApiException

from streamguard.devstack.endpoints import Endpoints
from tests.conftest import REPO

END = "2026-10-03T00:00:00Z"
"""The end of every run: the test tables hold 2026-10-01 and 2026-10-02."""


def store_secret(core: client.CoreV1Api, namespace: str, stack: Endpoints) -> None:
    """Secret ``streamguard-redis`` (the Redis address the rendered workloads read) in ``namespace``."""
    core.create_namespaced_secret(
        namespace,
        client.V1Secret(metadata=client.V1ObjectMeta(name="streamguard-redis"), string_data={"url": stack.redis_url}),
    )


def pod_env(core: client.CoreV1Api, namespace: str, env: list[Any]) -> dict[str, str]:
    """The container's env as the kubelet resolves it: an optional reference to a missing Secret or key
    leaves the variable unset."""
    out = {}
    for item in env:
        if item.value is not None:
            out[item.name] = item.value
            continue
        ref = item.value_from.secret_key_ref
        try:
            data = core.read_namespaced_secret(ref.name, namespace).data or {}
        except ApiException as error:
            if error.status == 404 and ref.optional:
                continue
            raise
        if ref.key in data:
            out[item.name] = base64.b64decode(data[ref.key]).decode()
        elif not ref.optional:
            raise AssertionError(f"Secret {ref.name} lacks {ref.key}")
    return out


def run_cronjob(core: client.CoreV1Api, cron: Any, namespace: str, work: Path,
                stack: Endpoints) -> subprocess.CompletedProcess[str]:
    """Run ``cron``'s container until ``END`` with its env and mounted files (under ``work``)."""
    work.mkdir(parents=True, exist_ok=True)
    pod = cron.spec.job_template.spec.template.spec
    container = pod.containers[0]
    command = list(container.command) + list(container.args or [])
    for mount in container.volume_mounts:
        volume = next(v for v in pod.volumes if v.name == mount.name)
        if volume.config_map is None:
            continue
        local = work / mount.name
        local.mkdir(parents=True)
        for key, text in (core.read_namespaced_config_map(volume.config_map.name, namespace).data or {}).items():
            (local / key).write_text(text)
        command = [arg.replace(mount.mount_path, str(local)) for arg in command]
    command[0] = str(Path(sys.executable).parent / command[0])
    env = {**pod_env(core, namespace, container.env or []), "KUBECONFIG": stack.kubeconfig,
           "PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(REPO)}  # this checkout's code, as the image's
    return subprocess.run([*command, "--end", END], env=env, cwd=work, capture_output=True, text=True,
                          timeout=300, check=False)
