"""The project's container image, built here without a daemon and put on the stack's node.

``buildah bud`` builds the repository's Dockerfile (chroot isolation, vfs storage under the cache, no
registry pulls) on a Debian base bootstrapped from Debian's archive (the ``debian-base`` artifact). The
result is cached as an OCI archive named by a digest of everything that goes into it: the Dockerfile,
.dockerignore, the base suite and every file of the build context (what .dockerignore lets through). It is
rebuilt only when that digest changes, then imported into the node's containerd (``ctr images import``).
"""

import fcntl
import fnmatch
import gzip
import hashlib
import json
import os
import subprocess
import sys
import tarfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO

from streamguard.devstack import node, versions
from streamguard.devstack.paths import cache_root
from streamguard.devstack.provision import Artifact, ProvisionError, ensure, log_tail

REPOSITORY = "localhost/streamguard"
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
"""Trust anchors this machine adds to Debian's (e.g. a TLS-inspecting egress proxy's CA). The base carries
them so `apt-get`, Maven and pip inside the build reach their registries as the host does; Debian's
``ca-certificates``, once a stage installs it, merges them into the system store."""


@dataclass(frozen=True)
class BuiltImage:
    name: str
    """The reference pods use, ``localhost/streamguard:<digest prefix>``."""
    digest: str
    archive: str
    size_bytes: int
    """Uncompressed: the sum of the image's layer tarballs."""
    build_seconds: float


def repo_root() -> Path:
    """The source checkout holding the Dockerfile (the development install is editable)."""
    import streamguard

    root = Path(streamguard.__file__).resolve().parents[1]
    if not (root / "Dockerfile").is_file():
        raise ProvisionError(f"no Dockerfile at {root}: `streamguard dev image` runs from a source checkout")
    return root


def ignore_patterns(text: str) -> list[tuple[bool, str]]:
    """``(re-include, pattern)`` rules of a .dockerignore, in order."""
    rules = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        rules.append((negate, line.lstrip("!").strip("/")))
    return rules


def excluded(path: str, rules: list[tuple[bool, str]]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parent folders wins."""
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    verdict = False
    for negate, pattern in rules:
        if any(fnmatch.fnmatchcase(p, pattern) or fnmatch.fnmatchcase(p, pattern.removeprefix("**/"))
               for p in prefixes):
            verdict = not negate
    return verdict


def context_files(root: Path) -> list[str]:
    """The build context: every file under ``root`` that .dockerignore lets through (sorted, relative)."""
    rules = ignore_patterns((root / ".dockerignore").read_text())
    reincluded = [pattern for negate, pattern in rules if negate]
    files = []
    for folder, dirs, names in os.walk(root, followlinks=False):
        rel = Path(folder).relative_to(root).as_posix()
        rel = "" if rel == "." else rel + "/"
        # Skip a folder only when it is excluded and no `!` rule could bring back something inside it.
        dirs[:] = sorted(d for d in dirs if not (excluded(rel + d, rules) and
                                                not any(p.startswith(rel + d + "/") for p in reincluded)))
        files += [rel + n for n in names if not excluded(rel + n, rules)]
    return sorted(files)


def context_digest(root: Path) -> str:
    digest = hashlib.sha256(f"base {base_image()}\n".encode())
    for rel in ["Dockerfile", ".dockerignore", *context_files(root)]:
        path = root / rel
        digest.update(f"{rel} {os.access(path, os.X_OK)} {path.is_symlink()}\n".encode())
        digest.update(str(path.readlink()).encode() if path.is_symlink() else path.read_bytes())
    return digest.hexdigest()


def local_cas() -> list[Path]:
    return sorted(p for p in LOCAL_CAS.rglob("*.crt") if p.is_file()) if LOCAL_CAS.is_dir() else []


def base_image() -> str:
    """The local base's reference: the Debian suite plus a digest of the machine's extra trust anchors."""
    digest = hashlib.sha256(b"".join(p.read_bytes() for p in local_cas())).hexdigest()[:12]
    return f"localhost/streamguard/debian:{versions.DEBIAN_SUITE}-{digest}"


def _images_dir() -> Path:
    return cache_root() / "images"


def _buildah(*args: str, log: Path | None = None, check: bool = True,
             timeout: float = 3600) -> subprocess.CompletedProcess[str]:
    store = _images_dir() / "buildah"
    argv = ["buildah", "--root", str(store / "storage"), "--runroot", str(store / "run"), "--storage-driver", "vfs",
            *args]
    if log is None:
        result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
        if check and result.returncode != 0:
            raise ProvisionError(f"buildah {' '.join(args[:2])} failed: {result.stderr.strip()[-2000:]}")
        return result
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        result = subprocess.run(argv, stdout=out, stderr=subprocess.STDOUT, text=True, check=False, timeout=timeout)
    if check and result.returncode != 0:
        raise ProvisionError(f"buildah {' '.join(args[:2])} failed (log {log}):\n{log_tail(log)}")
    return result


def ensure_base(debian: Artifact, log: Path) -> str:
    """Commit the bootstrapped Debian root filesystem, plus this machine's extra trust anchors, into
    buildah's storage as ``base_image()`` (once)."""
    name = base_image()
    if _buildah("inspect", "--type", "image", name, check=False).returncode == 0:
        return name
    container = _buildah("from", "scratch").stdout.strip()
    try:
        _buildah("add", container, str(debian.directory / "rootfs.tar"), "/", log=log)
        for ca in local_cas():
            _buildah("copy", container, str(ca), f"/usr/local/share/ca-certificates/{ca.name}", log=log)
        _buildah("config", "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                 "--cmd", "/bin/bash", "--os", "linux", "--arch", "amd64", container, log=log)
        _buildah("commit", "--format", "oci", container, name, log=log)
    finally:
        _buildah("rm", container, check=False)
    return name


def build(root: Path | None = None) -> BuiltImage:
    """The image for the current sources: from the cache when its digest is known, else built now."""
    root = root or repo_root()
    images = _images_dir()
    images.mkdir(parents=True, exist_ok=True)
    digest = context_digest(root)
    name = f"{REPOSITORY}:{digest[:16]}"
    record = images / f"streamguard-{digest[:16]}.json"
    with (images / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if record.exists():
            return BuiltImage(**json.loads(record.read_text()))
        built = ensure(["debian-base"])
        log = cache_root() / "logs" / f"image-{digest[:16]}.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("")
        started = time.monotonic()
        _say(f"[image] building {name} from {root / 'Dockerfile'} (log: {log})")
        base = ensure_base(built["debian-base"], log)
        _buildah("bud", "--isolation", "chroot", "--pull-never", "--build-arg", f"BASE={base}",
                 "--tag", name, "--file", str(root / "Dockerfile"), str(root), log=log)
        archive = images / f"streamguard-{digest[:16]}.oci.tar"
        partial = archive.with_suffix(".partial")
        partial.unlink(missing_ok=True)
        _buildah("push", name, f"oci-archive:{partial}:{name}", log=log)
        partial.rename(archive)
        result = BuiltImage(name=name, digest=digest, archive=str(archive), size_bytes=layers_size(archive),
                            build_seconds=round(time.monotonic() - started, 1))
        record.write_text(json.dumps(asdict(result), indent=2))
        _prune(keep=name)
        _say(f"[image] {name}: {result.size_bytes / 1e9:.2f} GB uncompressed, built in {result.build_seconds:.0f}s")
        return result


def layers_size(archive: Path) -> int:
    """The image's uncompressed size: the bytes of its layer tarballs once decompressed."""
    with tarfile.open(archive) as tar:
        def member(digest: str) -> IO[bytes]:
            found = tar.extractfile("blobs/" + digest.replace(":", "/"))
            if found is None:
                raise ProvisionError(f"{archive}: missing blob {digest}")
            return found

        index = json.load(member_named(tar, archive, "index.json"))
        manifest = json.load(member(index["manifests"][0]["digest"]))
        total = 0
        for layer in manifest["layers"]:
            blob = member(layer["digest"])
            stream = gzip.GzipFile(fileobj=blob) if layer["mediaType"].endswith("gzip") else blob
            while chunk := stream.read(1 << 20):
                total += len(chunk)
        return total


def member_named(tar: tarfile.TarFile, archive: Path, name: str) -> IO[bytes]:
    found = tar.extractfile(name)
    if found is None:
        raise ProvisionError(f"{archive} has no {name}")
    return found


def _prune(keep: str) -> None:
    """Drop older builds of the project image and dangling stages from buildah's storage (vfs keeps full copies)."""
    listing = json.loads(_buildah("images", "--json").stdout or "[]")
    for image in listing:
        names = image.get("names") or []
        if any(n.startswith(REPOSITORY + ":") and n != keep for n in names) or not names:
            _buildah("rmi", "--force", image["id"], check=False)
    for old in _images_dir().glob("streamguard-*.oci.tar"):
        if not old.name.startswith(f"streamguard-{keep.rsplit(':', 1)[1]}"):
            old.unlink()
            old.with_name(old.name.replace(".oci.tar", ".json")).unlink(missing_ok=True)


def put_on_node(image: BuiltImage, run_dir: Path) -> bool:
    """Import the image into the stack's containerd (True if it was not there yet)."""
    layout = node.NodeLayout(run_dir.resolve())
    built = ensure(["containerd"])
    return node.import_image(built, layout, Path(image.archive), image.name, replaces=REPOSITORY)


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
