"""How development tools (the demo, the tests) reach the stack's cluster: a thin JSON client over the apiserver
(plain dicts in and out, errors with the API's message), and a pod's port on 127.0.0.1 through a supervised
``kubectl port-forward``."""

import json
import shlex
from pathlib import Path
from typing import Any

from kubernetes import client, config

from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.supervisor import Service, Supervisor

Obj = dict[str, Any]


class KubeError(Exception):
    def __init__(self, status: int, method: str, path: str, body: str) -> None:
        try:
            message = json.loads(body).get("message", body)
        except ValueError:
            message = body
        super().__init__(f"{method} {path}: HTTP {status}: {message}")
        self.status = status


class Kube:
    def __init__(self, api: client.ApiClient) -> None:
        self.api = api

    @classmethod
    def from_kubeconfig(cls, path: str) -> "Kube":
        return cls(config.new_client_from_config(config_file=path))  # type: ignore[no-untyped-call]

    @property
    def server(self) -> str:
        host: str = self.api.configuration.host
        return host

    def request(
        self,
        method: str,
        path: str,
        body: Any = None,
        query: dict[str, str] | None = None,
        content_type: str = "application/json",
        timeout: float = 30.0,
    ) -> Obj:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        params = self.api.param_serialize(
            method, path, query_params=list((query or {}).items()), header_params=headers, body=body,
            auth_settings=["BearerToken"],
        )
        response = self.api.call_api(*params, _request_timeout=timeout)
        data = response.read()  # type: ignore[no-untyped-call]
        text = data.decode() if isinstance(data, bytes) else str(data or "")
        if not 200 <= response.status < 300:
            raise KubeError(response.status, method, path, text)
        parsed: Obj = json.loads(text) if text else {}
        return parsed

    def get(self, path: str, query: dict[str, str] | None = None) -> Obj | None:
        """The object, or ``None`` on 404."""
        try:
            return self.request("GET", path, query=query)
        except KubeError as error:
            if error.status == 404:
                return None
            raise

    def create(self, path: str, body: Obj) -> Obj:
        return self.request("POST", path, body)

    def merge_patch(self, path: str, body: Obj) -> Obj:
        return self.request("PATCH", path, body, content_type="application/merge-patch+json")

    def delete(self, path: str, body: Obj | None = None) -> None:
        try:
            self.request("DELETE", path, body)
        except KubeError as error:
            if error.status != 404:
                raise


def port_forward_argv(endpoints: Endpoints, namespace: str, target: str, port: int, target_port: int) -> list[str]:
    """A shell loop running ``kubectl port-forward`` from 127.0.0.1:``port`` to ``target`` (e.g.
    ``deployment/<name>``) and starting it again one second after it ends: a forward follows one pod, which a
    rollout or restart replaces, and fails while the target has no running pod yet."""
    forward = shlex.join([str(Path(endpoints.bin_dir) / "kubectl"), f"--kubeconfig={endpoints.kubeconfig}",
                          "port-forward", "--address", "127.0.0.1", "-n", namespace, target, f"{port}:{target_port}"])
    return ["sh", "-c", f"while true; do {forward}; sleep 1; done"]


def port_forward(supervisor: Supervisor, name: str, endpoints: Endpoints, namespace: str, target: str, port: int,
                 target_port: int) -> None:
    """Start (unless it runs) the forward of :func:`port_forward_argv` as ``supervisor``'s process ``name``
    (logged and stopped like any of its processes: ``supervisor.stop(name)``)."""
    argv = port_forward_argv(endpoints, namespace, target, port, target_port)
    supervisor.start(Service(name, argv, lambda: True, timeout=10))
