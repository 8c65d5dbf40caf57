"""The project's container images, built here without a daemon and put on the stack's node.

``buildah bud`` builds the repository's Dockerfile twice, once per target (chroot isolation, vfs storage
under the cache, no registry pulls), on a Debian base bootstrapped from Debian's archive (the
``debian-base`` artifact): ``runtime`` (the operator, serving, materializer and drift exporter) and
``spark`` (the Spark streaming job). The results are cached as OCI archives named by a digest of everything
that goes into them: the Dockerfile, .dockerignore, the base suite and every file of the build context
(what .dockerignore lets through). They are rebuilt only when that digest changes, then imported into the
node's containerd (``ctr images import``).
"""

import contextlib
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
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import IO, cast

from streamguard.devstack import versions
from streamguard.devstack.paths import cache_root
from streamguard.devstack.provision import Artifact, ProvisionError, ensure, log_tail

REPOSITORY = "localhost/streamguard"
SPARK_REPOSITORY = "localhost/streamguard-spark"
TARGETS = (("runtime", REPOSITORY), ("spark", SPARK_REPOSITORY))
"""Each Dockerfile target the stack builds and the repository its image is tagged in."""
SIZE_BUDGET_BYTES = 1_200_000_000
"""Issue 13's budget for each image, uncompressed."""
LOCAL_CAS = Path("/usr/local/share/ca-certificates")
"""Trust anchors this machine adds to Debian's (e.g. a TLS-inspecting egress proxy's CA). The base carries
them so `apt-get`, Maven and pip inside the build reach their registries as the host does; Debian's
``ca-certificates``, once a stage installs it, merges them into the system store."""


@dataclass(frozen=True)
class BuiltImage:
    name: str
    """The reference pods use, ``<repository>:<digest prefix>``."""
    digest: str
    archive: str
    size_bytes: int
    """Uncompressed: the sum of the image's layer tarballs."""
    build_seconds: float


@dataclass(frozen=True)
class ProjectImages:
    """The two images of one version of the sources."""

    main: BuiltImage
    """The Dockerfile's default target: operator, serving, materializer, drift exporter."""
    spark: BuiltImage
    """The ``spark`` target: the streaming job."""

    def each(self) -> tuple[tuple[str, BuiltImage], ...]:
        return ((REPOSITORY, self.main), (SPARK_REPOSITORY, self.spark))


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


def build(root: Path | None = None) -> ProjectImages:
    """The images of the current sources: from the cache when their digest is known, else built now."""
    root = root or repo_root()
    images = _images_dir()
    images.mkdir(parents=True, exist_ok=True)
    digest = context_digest(root)
    record = images / f"images-{digest[:16]}.json"
    with (images / ".lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if record.exists():
            saved = json.loads(record.read_text())
            return ProjectImages(main=BuiltImage(**saved["main"]), spark=BuiltImage(**saved["spark"]))
        built = ensure(["debian-base"])
        logs = cache_root() / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        base = ensure_base(built["debian-base"], logs / f"image-{digest[:16]}-base.log")
        # Both targets at once: their stages are independent and half their time is downloads.
        with ThreadPoolExecutor(max_workers=len(TARGETS)) as pool:
            futures = {target: pool.submit(_build_target, root, target, f"{repository}:{digest[:16]}", digest, base,
                                           logs / f"image-{digest[:16]}-{target}.log")
                       for target, repository in TARGETS}
            results = {target: future.result() for target, future in futures.items()}
        result = ProjectImages(main=results["runtime"], spark=results["spark"])
        record.write_text(json.dumps({"main": asdict(result.main), "spark": asdict(result.spark)}, indent=2))
        _prune(keep=digest[:16])
        return result


def _build_target(root: Path, target: str, name: str, digest: str, base: str, log: Path) -> BuiltImage:
    log.write_text("")
    started = time.monotonic()
    _say(f"[image] building {name} (target {target}) from {root / 'Dockerfile'} (log: {log})")
    _buildah("bud", "--isolation", "chroot", "--pull-never", "--build-arg", f"BASE={base}", "--target", target,
             "--tag", name, "--file", str(root / "Dockerfile"), str(root), log=log)
    archive = _images_dir() / f"{name.rsplit('/', 1)[1].replace(':', '-')}.oci.tar"
    partial = archive.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    _buildah("push", name, f"oci-archive:{partial}:{name}", log=log)
    partial.rename(archive)
    result = BuiltImage(name=name, digest=digest, archive=str(archive), size_bytes=layers_size(archive),
                        build_seconds=round(time.monotonic() - started, 1))
    _say(f"[image] {name}: {result.size_bytes / 1e9:.2f} GB uncompressed, built in {result.build_seconds:.0f}s")
    return result


@contextlib.contextmanager
def _layers(archive: Path) -> Iterator[Iterator[IO[bytes]]]:
    """The image's layer tarballs, lowest first, each as an uncompressed stream."""
    with tarfile.open(archive) as tar:
        def member(digest: str) -> IO[bytes]:
            found = tar.extractfile("blobs/" + digest.replace(":", "/"))
            if found is None:
                raise ProvisionError(f"{archive}: missing blob {digest}")
            return found

        index = json.load(member_named(tar, archive, "index.json"))
        manifest = json.load(member(index["manifests"][0]["digest"]))

        def streams() -> Iterator[IO[bytes]]:
            for layer in manifest["layers"]:
                blob = member(layer["digest"])
                yield cast(IO[bytes], gzip.GzipFile(fileobj=blob)) if layer["mediaType"].endswith("gzip") else blob

        yield streams()


def layers_size(archive: Path) -> int:
    """The image's uncompressed size: the bytes of its layer tarballs once decompressed."""
    total = 0
    with _layers(archive) as streams:
        for stream in streams:
            while chunk := stream.read(1 << 20):
                total += len(chunk)
    return total


def image_files(archive: Path) -> dict[str, int]:
    """The image's file system as a container sees it: each path (relative to /) and its size, the layers
    applied lowest first with their whiteouts (``.wh.<name>`` deletes a path, ``.wh..wh..opq`` a folder's
    content from the layers below)."""
    files: dict[str, int] = {}
    with _layers(archive) as streams:
        for stream in streams:
            added: dict[str, int] = {}
            removed: list[str] = []
            with tarfile.open(fileobj=stream, mode="r|") as layer:
                for entry in layer:
                    path = entry.name.removeprefix("./").strip("/")
                    folder, _, name = path.rpartition("/")
                    if name == ".wh..wh..opq":
                        removed.append(f"{folder}/" if folder else "")
                    elif name.startswith(".wh."):
                        removed.append(f"{folder}/{name[4:]}".lstrip("/"))
                    elif path:
                        added[path] = entry.size
            for gone in removed:
                prefix = gone if gone.endswith("/") or not gone else gone + "/"
                files = {p: s for p, s in files.items() if p != gone and not p.startswith(prefix)}
            files.update(added)
    return files


def member_named(tar: tarfile.TarFile, archive: Path, name: str) -> IO[bytes]:
    found = tar.extractfile(name)
    if found is None:
        raise ProvisionError(f"{archive} has no {name}")
    return found


def _prune(keep: str) -> None:
    """Drop older builds of the project's images (tags other than ``keep``, a digest prefix) and dangling
    stages from buildah's storage (vfs keeps full copies), and their archives and records."""
    listing = json.loads(_buildah("images", "--json").stdout or "[]")
    for image in listing:
        names = image.get("names") or []
        old = [n for n in names for _, repository in TARGETS
               if n.startswith(repository + ":") and n != f"{repository}:{keep}"]
        if old or not names:
            _buildah("rmi", "--force", image["id"], check=False)
    for path in [*_images_dir().glob("*.oci.tar"), *_images_dir().glob("images-*.json"),
                 *_images_dir().glob("streamguard-*.json")]:
        if keep not in path.name:
            path.unlink()


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
