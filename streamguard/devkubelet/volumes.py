"""A pod's volumes as local directories: ConfigMaps and Secrets written out, emptyDirs, claims, hostPaths."""

import shutil
from collections.abc import Mapping
from pathlib import Path

from streamguard.devkubelet.spec import ConfigError, Lookup, Obj, translate

SUPPORTED = ("configMap", "secret", "emptyDir", "persistentVolumeClaim", "hostPath")


def volume_dirs(pod: Obj, pod_dir: Path, claims_dir: Path) -> dict[str, Path]:
    """Where each volume lives locally. Claims outlive the pod (``<claims>/<namespace>/<claim>``)."""
    namespace = pod["metadata"]["namespace"]
    dirs: dict[str, Path] = {}
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        if "persistentVolumeClaim" in volume:
            dirs[name] = claims_dir / namespace / volume["persistentVolumeClaim"]["claimName"]
        elif "hostPath" in volume:
            dirs[name] = Path(volume["hostPath"]["path"])
        elif any(kind in volume for kind in SUPPORTED) or is_service_account_volume(volume):
            dirs[name] = pod_dir / "volumes" / name
        else:
            kinds = sorted(set(volume) - {"name"})
            raise ConfigError("FailedMount", f"volume {name}: type {kinds} is not supported by devkubelet")
    return dirs


def is_service_account_volume(volume: Obj) -> bool:
    """The token volume the apiserver's ServiceAccount admission adds to every pod. devkubelet hands the
    account's credentials to the process as a kubeconfig instead (``Kubelet._service_account_kubeconfig``),
    so the volume stays an empty folder."""
    return "projected" in volume and str(volume["name"]).startswith("kube-api-access-")


def _items(volume_source: Obj, data: Mapping[str, str], what: str) -> dict[str, str]:
    items = volume_source.get("items")
    if not items:
        return dict(data)
    chosen: dict[str, str] = {}
    for item in items:
        if item["key"] not in data:
            if volume_source.get("optional"):
                continue
            raise ConfigError("FailedMount", f"{what}: key {item['key']!r} not found")
        chosen[item["path"]] = data[item["key"]]
    return chosen


def _write_files(directory: Path, files: Mapping[str, str], mode: int) -> None:
    if directory.exists():
        shutil.rmtree(directory)
    directory.mkdir(parents=True)
    for relative, text in files.items():
        target = directory / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        target.chmod(mode)


def materialize(pod: Obj, dirs: Mapping[str, Path], lookup: Lookup, mounts: Mapping[str, str]) -> None:
    """Write every volume's content. ConfigMap text has container paths rewritten through ``mounts``."""
    namespace = pod["metadata"]["namespace"]
    for volume in pod["spec"].get("volumes") or []:
        name = volume["name"]
        directory = dirs[name]
        if "configMap" in volume:
            source = volume["configMap"]
            what = f'volume {name}: configmap "{source.get("name")}"'
            data = lookup.config_map(namespace, source.get("name", ""))
            if data is None and not source.get("optional"):
                raise ConfigError("FailedMount", f"{what} not found")
            files = {key: translate(mounts, text) for key, text in _items(source, data or {}, what).items()}
            _write_files(directory, files, int(source.get("defaultMode", 0o644)))
        elif "secret" in volume:
            source = volume["secret"]
            what = f'volume {name}: secret "{source.get("secretName")}"'
            data = lookup.secret(namespace, source.get("secretName", ""))
            if data is None and not source.get("optional"):
                raise ConfigError("FailedMount", f"{what} not found")
            _write_files(directory, _items(source, data or {}, what), int(source.get("defaultMode", 0o644)))
        else:
            directory.mkdir(parents=True, exist_ok=True)
