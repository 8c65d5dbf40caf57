"""Pure translation of a pod's container into a local process: argv, environment, paths and ports.

Conventions (documented in docs/demo.md):

* A ``mountPath`` is mapped to a local directory; every string that names a path under it is rewritten
  (command, args, env values, and the text of files materialized from ConfigMaps), so a container that
  reads ``/etc/streamguard/job.json`` reads the pod's local copy. ``STREAMGUARD_DEV_MOUNTS`` holds the
  mapping as JSON for anything else.
* Each declared ``containerPort`` keeps its number when it is free on this machine, otherwise it gets a
  free one. The port actually assigned is always passed as ``STREAMGUARD_PORT_<NAME>`` (the port's name
  upper-cased, ``-`` as ``_``; unnamed ports use the number), and probes target it.
"""

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

Obj = dict[str, Any]

DEFAULT_ENTRYPOINTS: dict[str, list[str]] = {"streamguard": ["streamguard"]}
"""Image repository -> the entrypoint its Dockerfile declares (used when a container sets no command)."""


class ConfigError(Exception):
    """A container cannot be started as specified (kubelet's CreateContainerConfigError)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.message = message


class Lookup(Protocol):
    """Reads the objects a pod refers to; ``None`` when the object does not exist."""

    def config_map(self, namespace: str, name: str) -> dict[str, str] | None: ...

    def secret(self, namespace: str, name: str) -> dict[str, str] | None:
        """The Secret's data, base64-decoded to text."""
        ...


@dataclass(frozen=True)
class Launch:
    """Everything needed to start one container as a local process."""

    container: str
    argv: list[str]
    env: dict[str, str]
    cwd: str
    ports: dict[str, int] = field(default_factory=dict)
    """Port name (or number as text) -> the local port assigned."""


def port_key(port: Obj) -> str:
    return str(port.get("name") or port["containerPort"])


def port_env_name(key: str) -> str:
    return "STREAMGUARD_PORT_" + re.sub(r"[^A-Za-z0-9]", "_", key).upper()


def translate(mounts: Mapping[str, str], text: str) -> str:
    """Rewrite every absolute path under a mountPath to the same path under its local directory (one
    pass, longest mountPath first, so a rewritten path is never rewritten again)."""
    roots = {path.rstrip("/"): local for path, local in mounts.items() if path.rstrip("/")}
    if not roots:
        return text
    alternatives = "|".join(re.escape(root) for root in sorted(roots, key=len, reverse=True))
    pattern = re.compile(r"(?<![\w./-])(" + alternatives + r")(?=/|$|[^\w.-])")
    return pattern.sub(lambda match: roots[match.group(1)], text)


_REFERENCE = re.compile(r"\$\$|\$\(([A-Za-z_][A-Za-z0-9_.-]*)\)")


def expand(text: str, env: Mapping[str, str]) -> str:
    """Kubernetes ``$(VAR)`` expansion: defined names are replaced, ``$$`` escapes, unknown ones stay."""

    def substitute(match: re.Match[str]) -> str:
        if match.group(0) == "$$":
            return "$"
        name = match.group(1)
        return env.get(name, match.group(0))

    return _REFERENCE.sub(substitute, text)


def _key_ref(kind: str, ref: Obj, namespace: str, lookup: Lookup, variable: str) -> str | None:
    name, key = ref.get("name", ""), ref.get("key", "")
    data = lookup.config_map(namespace, name) if kind == "configmap" else lookup.secret(namespace, name)
    optional = bool(ref.get("optional"))
    if data is None:
        if optional:
            return None
        raise ConfigError("CreateContainerConfigError", f'env {variable}: {kind} "{name}" not found')
    if key not in data:
        if optional:
            return None
        raise ConfigError("CreateContainerConfigError", f'env {variable}: couldn\'t find key {key} in {kind} "{name}"')
    return data[key]


_FIELD_PATH = re.compile(r"metadata\.(labels|annotations)\['([^']+)'\]")


def field_ref(pod: Obj, path: str, variable: str) -> str:
    meta, spec = pod.get("metadata", {}), pod.get("spec", {})
    simple = {
        "metadata.name": meta.get("name"),
        "metadata.namespace": meta.get("namespace"),
        "metadata.uid": meta.get("uid"),
        "spec.nodeName": spec.get("nodeName"),
        "spec.serviceAccountName": spec.get("serviceAccountName"),
        "status.hostIP": "127.0.0.1",
        "status.podIP": "127.0.0.1",
    }
    if path in simple:
        return str(simple[path] or "")
    match = _FIELD_PATH.fullmatch(path)
    if match:
        return str(meta.get(match.group(1), {}).get(match.group(2), ""))
    raise ConfigError("CreateContainerConfigError", f"env {variable}: fieldRef {path!r} is not supported by devkubelet")


def resolve_env(pod: Obj, container: Obj, lookup: Lookup, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """The container's environment in Kubernetes order: ``envFrom``, then ``env`` (with ``$(VAR)``)."""
    namespace = pod["metadata"]["namespace"]
    env: dict[str, str] = dict(base or {})
    for source in container.get("envFrom") or []:
        prefix = source.get("prefix", "")
        for kind, ref in (("configmap", source.get("configMapRef")), ("secret", source.get("secretRef"))):
            if ref is None:
                continue
            name = ref.get("name", "")
            data = lookup.config_map(namespace, name) if kind == "configmap" else lookup.secret(namespace, name)
            if data is None:
                if ref.get("optional"):
                    continue
                raise ConfigError("CreateContainerConfigError", f'envFrom: {kind} "{name}" not found')
            env.update({prefix + key: value for key, value in data.items()})
    for item in container.get("env") or []:
        name = item["name"]
        source = item.get("valueFrom")
        if source is None:
            env[name] = expand(str(item.get("value", "")), env)
            continue
        value: str | None
        if "secretKeyRef" in source:
            value = _key_ref("secret", source["secretKeyRef"], namespace, lookup, name)
        elif "configMapKeyRef" in source:
            value = _key_ref("configmap", source["configMapKeyRef"], namespace, lookup, name)
        elif "fieldRef" in source:
            value = field_ref(pod, source["fieldRef"].get("fieldPath", ""), name)
        else:
            raise ConfigError("CreateContainerConfigError", f"env {name}: unsupported valueFrom {sorted(source)}")
        if value is not None:
            env[name] = value
    return env


def entrypoint(container: Obj, entrypoints: Mapping[str, list[str]] = DEFAULT_ENTRYPOINTS) -> list[str]:
    """The container's command, or its image's entrypoint when it sets none."""
    if container.get("command"):
        return [str(part) for part in container["command"]]
    image = str(container.get("image", ""))
    repository = image.rsplit("/", 1)[-1].split(":", 1)[0].split("@", 1)[0]
    if repository in entrypoints:
        return list(entrypoints[repository])
    raise ConfigError(
        "CreateContainerConfigError",
        f"container {container['name']}: no command and devkubelet does not know the entrypoint of image {image!r}",
    )


def plan(
    pod: Obj,
    container: Obj,
    lookup: Lookup,
    *,
    mounts: Mapping[str, str],
    ports: Mapping[str, int],
    base_env: Mapping[str, str],
    workdir: str,
    entrypoints: Mapping[str, list[str]] = DEFAULT_ENTRYPOINTS,
) -> Launch:
    """The local process for ``container``: ``mounts`` maps mountPath -> local directory."""
    env = resolve_env(pod, container, lookup, base_env)
    env = {key: value if base_env.get(key) == value else translate(mounts, value) for key, value in env.items()}
    env.update({port_env_name(key): str(port) for key, port in ports.items()})
    env["STREAMGUARD_DEV_MOUNTS"] = json.dumps(dict(mounts), sort_keys=True)
    env["STREAMGUARD_DEV_RUNTIME"] = "devkubelet"
    argv = [translate(mounts, expand(part, env)) for part in entrypoint(container, entrypoints)]
    argv += [translate(mounts, expand(str(part), env)) for part in container.get("args") or []]
    cwd = translate(mounts, container["workingDir"]) if container.get("workingDir") else workdir
    return Launch(container=container["name"], argv=argv, env=env, cwd=cwd, ports=dict(ports))


def container_mounts(container: Obj, volumes: Mapping[str, Path]) -> dict[str, str]:
    """mountPath -> local path for the container's volumeMounts (``subPath`` honoured)."""
    mounts: dict[str, str] = {}
    for mount in container.get("volumeMounts") or []:
        name = mount["name"]
        if name not in volumes:
            raise ConfigError("CreateContainerConfigError", f"volumeMounts {name}: no volume of that name")
        local = volumes[name] / mount["subPath"] if mount.get("subPath") else volumes[name]
        mounts[mount["mountPath"]] = str(local)
    return mounts
