"""Run a rendered container's exact command line as a local process, with its config files mounted at
the paths the pod would see (a private mount namespace over an overlay of /etc, so the host is untouched)."""

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

VENV_BIN = str(Path(sys.executable).parent)


def container_of(manifests: list[dict[str, Any]], kind: str = "Deployment") -> dict[str, Any]:
    workload = next(m for m in manifests if m["kind"] == kind)
    container: dict[str, Any] = workload["spec"]["template"]["spec"]["containers"][0]
    return container


def start(
    container: dict[str, Any], mounts: dict[str, Path], env: dict[str, str], workdir: Path, log: Path
) -> subprocess.Popen[bytes]:
    """Start ``command + args`` of ``container`` with each ``mounts`` folder bound at its absolute path."""
    argv = [*container["command"], *container.get("args", [])]
    plain_env = {e["name"]: e["value"] for e in container.get("env", []) if "value" in e}
    binds = []
    for index, (target, source) in enumerate(mounts.items()):
        top = Path(target).parts[1]
        layer = workdir / f"overlay-{index}"
        (layer / "upper").mkdir(parents=True)
        (layer / "work").mkdir()
        binds.append(
            f"mount -t overlay overlay -o lowerdir=/{top},upperdir={layer}/upper,workdir={layer}/work /{top}"
            f" && mkdir -p {target} && mount --bind {source} {target}"
        )
    script = " && ".join([*binds, 'exec "$@"'])
    process_env = {**os.environ, **plain_env, **env, "PATH": f"{VENV_BIN}{os.pathsep}{os.environ['PATH']}"}
    with log.open("wb") as out:
        return subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "--", "sh", "-c", script, "pod", *argv],
            env=process_env,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
