"""Fetch and build the stack's components into the cache, once per version.

Each artifact is built into a temporary folder and moved into place only when complete, so an
interrupted build is redone rather than half-used. Builds run concurrently (the Kubernetes build is
CPU-bound, the Maven fetches are network-bound) and print progress with elapsed time.
"""

import fcntl
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from streamguard.devstack import versions
from streamguard.devstack.paths import cache_root


class ProvisionError(RuntimeError):
    """A component could not be fetched or built; the message carries the log tail."""


def _package_file(*parts: str) -> Path:
    return Path(str(resources.files("streamguard.devstack").joinpath(*parts)))


def log_tail(path: Path, lines: int = 40) -> str:
    if not path.exists():
        return f"(no log at {path})"
    return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])


@dataclass(frozen=True)
class Artifact:
    """One cached component: ``ready`` is the file whose presence means the build completed."""

    name: str
    version: str
    directory: Path
    ready: Path
    build: Callable[[Path, Path], list[str]]
    """Given (final directory, log file) return the command that builds into the final directory."""

    def present(self) -> bool:
        return self.ready.exists()


def _script(name: str) -> list[str]:
    return ["bash", str(_package_file("scripts", name))]


def _maven(pom: str, output: Path, extra: Sequence[str] = ()) -> list[str]:
    return ["mvn", "-q", "-B", "-f", str(_package_file("maven", pom)), "dependency:copy-dependencies",
            "-DincludeScope=runtime", f"-DoutputDirectory={output}", *extra]


K8S_COMMANDS = ("kube-apiserver", "kube-controller-manager", "kube-scheduler", "kubelet", "kube-proxy")
"""The commands of the ``k8s.io/kubernetes`` module the stack runs; the last one built marks the artifact ready."""


def artifacts() -> dict[str, Artifact]:
    root = cache_root()
    k8s = root / f"k8s-{versions.K8S}"
    etcd = root / f"etcd-{versions.ETCD}"
    helm = root / f"helm-{versions.HELM}"
    kafka = root / f"kafka-{versions.KAFKA}"
    apicurio = root / f"apicurio-{versions.APICURIO}"
    spark = root / f"spark-connectors-{versions.SPARK}"
    s3a = root / f"spark-s3a-{versions.HADOOP}"
    actionlint = root / f"actionlint-{versions.ACTIONLINT}"
    promtool = root / f"promtool-{versions.PROMTOOL}"
    prometheus_crds = root / f"prometheus-crds-{versions.PROMETHEUS_OPERATOR}"
    containerd = root / f"containerd-{versions.CONTAINERD}"
    cni = root / f"cni-plugins-{versions.CNI_PLUGINS}"
    pause = root / f"pause-{versions.K8S}"
    debian = root / f"debian-{versions.DEBIAN_SUITE}"
    seaweedfs = root / f"seaweedfs-{versions.SEAWEEDFS}"
    return {
        a.name: a
        for a in (
            # The control plane and the node's agents in one `go build`: they share most of their packages.
            Artifact("kubernetes", versions.K8S, k8s, k8s / "kube-proxy",
                     lambda d, _: [*_script("build-k8s.sh"), versions.K8S, versions.K8S_STAGING, str(d),
                                   *K8S_COMMANDS]),
            Artifact("etcd", versions.ETCD, etcd, etcd / "etcd",
                     lambda d, _: [*_script("build-etcd.sh"), versions.ETCD, str(d)]),
            Artifact("helm", versions.HELM, helm, helm / "helm",
                     lambda d, _: [*_script("build-helm.sh"), versions.HELM, str(d)]),
            Artifact("kafka", versions.KAFKA, kafka, kafka / "lib" / f"kafka_2.13-{versions.KAFKA}.jar",
                     lambda d, _: _maven("kafka.pom.xml", d / "lib", [f"-Dkafka.version={versions.KAFKA}"])),
            Artifact("apicurio", versions.APICURIO, apicurio, apicurio / "quarkus-run.jar",
                     lambda d, _: ["mvn", "-q", "-B", "dependency:unpack",
                                   f"-Dartifact=io.apicurio:apicurio-registry-app:{versions.APICURIO}:tar.gz:all",
                                   f"-DoutputDirectory={d}"]),
            Artifact("spark-connectors", versions.SPARK, spark,
                     spark / "jars" / f"spark-sql-kafka-0-10_2.13-{versions.SPARK}.jar",
                     lambda d, _: _maven("spark-connectors.pom.xml", d / "jars",
                                         [f"-Dspark.version={versions.SPARK}",
                                          "-DincludeArtifactIds=" + ",".join(versions.SPARK_CONNECTOR_ARTIFACTS)])),
            Artifact("spark-s3a", versions.HADOOP, s3a, s3a / "jars" / f"hadoop-aws-{versions.HADOOP}.jar",
                     lambda d, _: _maven("spark-s3a.pom.xml", d / "jars",
                                         [f"-Dhadoop.version={versions.HADOOP}",
                                          "-DincludeArtifactIds=" + ",".join(versions.SPARK_S3A_ARTIFACTS)])),
            Artifact("actionlint", versions.ACTIONLINT, actionlint, actionlint / "actionlint",
                     lambda d, _: [*_script("build-actionlint.sh"), versions.ACTIONLINT, str(d)]),
            Artifact("promtool", versions.PROMTOOL, promtool, promtool / "promtool",
                     lambda d, _: [*_script("build-promtool.sh"), versions.PROMTOOL, str(d)]),
            Artifact("prometheus-crds", versions.PROMETHEUS_OPERATOR, prometheus_crds,
                     prometheus_crds / "monitoring.coreos.com_prometheusrules.yaml",
                     lambda d, _: [*_script("build-prometheus-crds.sh"), versions.PROMETHEUS_OPERATOR,
                                   versions.CONTROLLER_TOOLS, str(d)]),
            Artifact("containerd", versions.CONTAINERD, containerd, containerd / "containerd-shim-runc-v2",
                     lambda d, _: [*_script("build-containerd.sh"), versions.CONTAINERD, str(d)]),
            Artifact("cni-plugins", versions.CNI_PLUGINS, cni, cni / "portmap",
                     lambda d, _: [*_script("build-cni.sh"), versions.CNI_PLUGINS, str(d)]),
            Artifact("pause", versions.K8S, pause, pause / "image-name",
                     lambda d, _: [*_script("build-pause.sh"), versions.K8S, versions.PAUSE_IMAGE_REPOSITORY,
                                   str(d)]),
            Artifact("debian-base", versions.DEBIAN_SUITE, debian, debian / "suite",
                     lambda d, _: [*_script("build-debian-base.sh"), versions.DEBIAN_SUITE,
                                   *debian_mirrors(versions.DEBIAN_SUITE), str(d)]),
            Artifact("seaweedfs", versions.SEAWEEDFS, seaweedfs, seaweedfs / "weed",
                     lambda d, _: [*_script("build-seaweedfs.sh"), versions.SEAWEEDFS, str(d)]),
        )
    }


TEST_TOOLS = ("actionlint", "promtool", "prometheus-crds")
"""Built for the test suite only (``make test`` provisions them with everything else); the stack and the demo
never need them, so ``streamguard dev up`` (and with it ``make demo``) does not build them."""


def stack_artifacts() -> list[str]:
    """What ``streamguard dev up`` builds: every artifact but :data:`TEST_TOOLS`."""
    return [name for name in artifacts() if name not in TEST_TOOLS]


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _build(artifact: Artifact) -> None:
    """Build one artifact under an exclusive file lock (another process may be building it too)."""
    logs = cache_root() / "logs"
    logs.mkdir(parents=True, exist_ok=True)
    with (cache_root() / f".{artifact.name}-{artifact.version}.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not artifact.present():
            _build_locked(artifact, logs)


def _build_locked(artifact: Artifact, logs: Path) -> None:
    log = logs / f"{artifact.name}-{artifact.version}.log"
    staging = artifact.directory.with_name(artifact.directory.name + ".partial")
    shutil.rmtree(staging, ignore_errors=True)
    command = artifact.build(staging, log)
    _say(f"[provision] {artifact.name} {artifact.version}: building (log: {log})")
    started = time.monotonic()
    with log.open("w") as out, tempfile.TemporaryDirectory(prefix="streamguard-build-") as scratch:
        # A scratch working directory: Maven goals run without a project write markers under ./target.
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   cwd=scratch)
        while process.poll() is None:
            time.sleep(1)
            elapsed = int(time.monotonic() - started)
            if elapsed and elapsed % 30 == 0:
                _say(f"[provision] {artifact.name}: still working ({elapsed}s)")
    if process.returncode != 0:
        raise ProvisionError(f"{artifact.name} {artifact.version} failed (exit {process.returncode}):\n"
                             f"{log_tail(log)}")
    shutil.rmtree(artifact.directory, ignore_errors=True)
    staging.rename(artifact.directory)
    if not artifact.present():
        raise ProvisionError(f"{artifact.name}: build finished but {artifact.ready} is missing:\n{log_tail(log)}")
    _say(f"[provision] {artifact.name} {artifact.version}: ready in {time.monotonic() - started:.0f}s")


def parse_debian_sources(texts: Sequence[str], suite: str) -> tuple[str, str]:
    """``(mirror, security mirror)`` serving ``suite`` main in apt sources (one-line or deb822 format);
    the security mirror is ``""`` when none is configured."""
    found: dict[str, str] = {}

    def note(uris: Sequence[str], suites: Sequence[str]) -> None:
        for name in suites:
            for uri in uris:
                found.setdefault(name, uri.rstrip("/"))

    for text in texts:
        for stanza in text.split("\n\n"):
            fields = {}
            for line in stanza.splitlines():
                words = line.split("#", 1)[0].split()
                if words[:1] == ["deb"]:
                    rest = [w for w in words[1:] if "=" not in w and not w.startswith("[") and not w.endswith("]")]
                    if len(rest) >= 2:
                        note(rest[:1], rest[1:2])
                elif words and words[0].endswith(":"):
                    fields[words[0][:-1].lower()] = words[1:]
            if "deb" in fields.get("types", []):
                note(fields.get("uris", []), fields.get("suites", []))
    if suite not in found:
        raise ProvisionError(f"no apt source serves Debian {suite} (looked in /etc/apt/sources.list*): "
                             "debootstrap needs a Debian mirror")
    return found[suite], found.get(f"{suite}-security", "")


def debian_mirrors(suite: str) -> tuple[str, str]:
    """The Debian mirrors apt on this machine already uses (the image base is bootstrapped from them)."""
    files = [Path("/etc/apt/sources.list"), *sorted(Path("/etc/apt/sources.list.d").glob("*"))]
    return parse_debian_sources([f.read_text() for f in files if f.is_file()], suite)


_APT = threading.Lock()
"""One apt-get at a time in this process (the demo provisions the stack and builds the images at once)."""


def ensure_debian_package(command: str, package: str) -> str:
    """``command`` from Debian's ``package``, installed with apt-get when missing (root only)."""
    with _APT:
        return shutil.which(command) or _install_debian_package(command, package)


def _install_debian_package(command: str, package: str) -> str:
    _say(f"[provision] {command}: installing Debian package {package}")
    for argv in (["apt-get", "update", "-q"], ["apt-get", "install", "-y", "-q", package]):
        result = subprocess.run(argv, capture_output=True, text=True, check=False,
                                env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"})
        if result.returncode != 0:
            raise ProvisionError(f"{' '.join(argv)} failed:\n{result.stdout[-2000:]}{result.stderr[-2000:]}")
    found = shutil.which(command)
    if not found:
        raise ProvisionError(f"{command} still missing after apt-get install {package}")
    return found


def ensure_redis() -> str:
    """``redis-server`` from Debian's package."""
    return ensure_debian_package("redis-server", "redis-server")


NODE_PACKAGES = {"runc": "runc", "buildah": "buildah", "debootstrap": "debootstrap"}
"""Commands the node and the image build take from Debian (the OCI runtime; the daemonless image builder)."""


def ensure_node_packages() -> None:
    for command, package in NODE_PACKAGES.items():
        ensure_debian_package(command, package)


def _require_tools() -> None:
    missing = [tool for tool in ("go", "java", "mvn", "gcc") if shutil.which(tool) is None]
    if missing:
        raise ProvisionError(f"missing build tools on PATH: {', '.join(missing)} "
                             "(need Go 1.26, Java 17, Maven, gcc)")


def ensure(names: Sequence[str] | None = None) -> dict[str, Artifact]:
    """Build every missing artifact (all by default); make sure Redis and the node's packages are installed."""
    wanted = artifacts()
    selected = [wanted[n] for n in (names or list(wanted))]
    missing = [a for a in selected if not a.present()]
    ensure_redis()
    ensure_node_packages()
    if missing:
        _require_tools()
        _say(f"[provision] cold cache: building {', '.join(a.name for a in missing)} into {cache_root()}")
        with ThreadPoolExecutor(max_workers=len(missing)) as pool:
            failures = []
            for future in [pool.submit(_build, a) for a in missing]:
                try:
                    future.result()
                except ProvisionError as error:
                    failures.append(str(error))
        if failures:
            raise ProvisionError("\n\n".join(failures))
    return wanted
