"""Unit tests of devkubelet's pure translation of a container into a local process."""

import json
from pathlib import Path
from typing import Any

import pytest

from streamguard.devkubelet.spec import ConfigError, container_mounts, entrypoint, expand, plan, translate
from streamguard.devkubelet.volumes import materialize, volume_dirs


class Objects:
    """An in-memory Lookup: ConfigMaps and Secrets by (namespace, name)."""

    def __init__(self, config_maps: dict[tuple[str, str], dict[str, str]],
                 secrets: dict[tuple[str, str], dict[str, str]]) -> None:
        self.config_maps, self.secrets = config_maps, secrets

    def config_map(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.config_maps.get((namespace, name))

    def secret(self, namespace: str, name: str) -> dict[str, str] | None:
        return self.secrets.get((namespace, name))


POD = {
    "metadata": {"name": "p-1", "namespace": "ns", "uid": "u-1", "labels": {"app": "x"}},
    "spec": {"nodeName": "n", "serviceAccountName": "sa"},
}


def test_translate_rewrites_only_whole_path_segments() -> None:
    mounts = {"/etc/sg": "/run/p/volumes/cfg", "/tmp": "/run/p/volumes/tmp"}
    assert translate(mounts, "--config=/etc/sg/job.json") == "--config=/run/p/volumes/cfg/job.json"
    assert translate(mounts, "/etc/sg") == "/run/p/volumes/cfg"
    assert translate(mounts, "/etc/sgx/a /x/etc/sg/a") == "/etc/sgx/a /x/etc/sg/a"
    assert translate(mounts, '{"dir": "/tmp/spark"}') == '{"dir": "/run/p/volumes/tmp/spark"}'


def test_translate_never_rewrites_a_rewritten_path() -> None:
    mounts = {"/etc/sg": "/tmp/run/p/cfg", "/tmp": "/tmp/run/p/tmp"}
    assert translate(mounts, "/etc/sg/job.json /tmp/x") == "/tmp/run/p/cfg/job.json /tmp/run/p/tmp/x"


def test_translate_prefers_the_longest_mount() -> None:
    mounts = {"/var/lib": "/a", "/var/lib/ckpt": "/b"}
    assert translate(mounts, "/var/lib/ckpt/ns/x") == "/b/ns/x"
    assert translate(mounts, "/var/lib/other") == "/a/other"


def test_expand_follows_kubernetes_rules() -> None:
    env = {"PORT": "8080"}
    assert expand("--port=$(PORT)", env) == "--port=8080"
    assert expand("$$(PORT) $(MISSING)", env) == "$(PORT) $(MISSING)"


def test_plan_resolves_env_sources_ports_and_paths() -> None:
    objects = Objects({("ns", "cm"): {"level": "debug"}}, {("ns", "redis"): {"url": "redis://h:1/0"}})
    container = {
        "name": "main",
        "image": "streamguard:0.1.0",
        "args": ["workload", "stream", "--config", "/etc/sg/job.json", "--port", "$(STREAMGUARD_PORT_METRICS)"],
        "env": [
            {"name": "HOME", "value": "/tmp"},
            {"name": "REDIS", "valueFrom": {"secretKeyRef": {"name": "redis", "key": "url"}}},
            {"name": "LEVEL", "valueFrom": {"configMapKeyRef": {"name": "cm", "key": "level"}}},
            {"name": "POD", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
            {"name": "NS", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
            {"name": "APP", "valueFrom": {"fieldRef": {"fieldPath": "metadata.labels['app']"}}},
            {"name": "GREETING", "value": "pod $(POD) in $(NS)"},
        ],
        "ports": [{"name": "metrics", "containerPort": 9108}],
        "volumeMounts": [{"name": "cfg", "mountPath": "/etc/sg"}, {"name": "tmp", "mountPath": "/tmp"}],
    }
    volumes = {"cfg": Path("/run/p/volumes/cfg"), "tmp": Path("/run/p/volumes/tmp")}
    mounts = container_mounts(container, volumes)
    base = {"PATH": "/venv/bin", "KUBECONFIG": "/tmp/run/kubeconfig"}
    launch = plan(POD, container, objects, mounts=mounts, ports={"metrics": 41000}, base_env=base, workdir="/repo")
    assert launch.argv == ["streamguard", "workload", "stream", "--config", "/run/p/volumes/cfg/job.json",
                           "--port", "41000"]
    assert launch.env["HOME"] == "/run/p/volumes/tmp"
    assert launch.env["REDIS"] == "redis://h:1/0"
    assert launch.env["LEVEL"] == "debug"
    assert (launch.env["POD"], launch.env["NS"], launch.env["APP"]) == ("p-1", "ns", "x")
    assert launch.env["GREETING"] == "pod p-1 in ns"
    assert launch.env["STREAMGUARD_PORT_METRICS"] == "41000"
    assert launch.env["PATH"] == "/venv/bin"
    assert launch.env["KUBECONFIG"] == "/tmp/run/kubeconfig"
    assert json.loads(launch.env["STREAMGUARD_DEV_MOUNTS"]) == {"/etc/sg": "/run/p/volumes/cfg",
                                                                "/tmp": "/run/p/volumes/tmp"}
    assert launch.cwd == "/repo"


def test_missing_secret_names_the_variable_and_secret() -> None:
    container = {"name": "c", "command": ["true"],
                 "env": [{"name": "REDIS", "valueFrom": {"secretKeyRef": {"name": "nope", "key": "url"}}}]}
    with pytest.raises(ConfigError, match='env REDIS: secret "nope" not found'):
        plan(POD, container, Objects({}, {}), mounts={}, ports={}, base_env={}, workdir="/")


def test_optional_reference_is_skipped() -> None:
    container = {"name": "c", "command": ["true"],
                 "env": [{"name": "X", "valueFrom": {"configMapKeyRef": {"name": "no", "key": "k", "optional": True}}}]}
    launch = plan(POD, container, Objects({}, {}), mounts={}, ports={}, base_env={}, workdir="/")
    assert "X" not in launch.env


def test_unknown_image_without_command_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="entrypoint of image 'nginx:1'"):
        entrypoint({"name": "web", "image": "nginx:1"})
    assert entrypoint({"name": "s", "image": "registry.example/streamguard:0.1.0"}) == ["streamguard"]


def test_the_service_account_admissions_token_volume_is_accepted_and_left_empty(tmp_path: Path) -> None:
    """The apiserver's ServiceAccount admission adds ``kube-api-access-*`` to every pod; devkubelet gives the
    process a kubeconfig instead, so the volume is an empty folder. Any other projected volume is refused."""
    token: dict[str, Any] = {"name": "kube-api-access-x1",
                             "projected": {"sources": [{"serviceAccountToken": {"path": "token"}}]}}
    spec: dict[str, Any] = {"nodeName": "n", "serviceAccountName": "sa"}
    pod = {**POD, "spec": {**spec, "volumes": [token]}}
    dirs = volume_dirs(pod, tmp_path / "pod", tmp_path / "claims")
    materialize(pod, dirs, Objects({}, {}), {})
    assert dirs["kube-api-access-x1"].is_dir() and not list(dirs["kube-api-access-x1"].iterdir())
    other = {**POD, "spec": {**spec, "volumes": [{**token, "name": "mine"}]}}
    with pytest.raises(ConfigError, match="not supported by devkubelet"):
        volume_dirs(other, tmp_path / "pod", tmp_path / "claims")
