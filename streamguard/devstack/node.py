"""A real Kubernetes node in the local stack: kube-scheduler, containerd (runc, CNI bridge), kubelet and kube-proxy.

Everything the node writes lives under ``<run>/node``: containerd's root, state and socket, the kubelet's
root, certificates, pod logs and local volumes, the CNI configuration and IP allocations. The host-wide
names it needs are derived from the run directory, so two stacks on one machine never share them: the
pod bridge ``sg<id>`` with its own /24, and the cgroup parent ``/streamguard-<id>``. The host's address on
that bridge is the node's InternalIP (the kubelet refuses a loopback node IP). Pods reach nothing but
each other, the host and their Services over that bridge (no gateway route, nothing forwarded off the
bridge); tests and tools reach pods through 127.0.0.1 (``kubectl port-forward``) or the apiserver
(logs, exec).

What this machine kind needs, and why (docs/architecture.md, "The node"):

- cgroup v1. The kernel mounts cgroup v1 hierarchies (plus an empty v2 ``unified`` mount). Kubernetes
  1.35+ refuses v1 unless ``failCgroupV1: false``; with v1 only the ``cgroupfs`` driver applies (there is
  no systemd to delegate to).
- Swap: the kubelet refuses to start when swap is on unless ``failSwapOn: false``. None is on here, but
  a developer's laptop often has some; the node then runs pods without swap limits (``NoSwap``).
- ``/dev/kmsg``: the kubelet's OOM watcher reads kernel messages from it and the kubelet exits when it
  cannot; containers without it (kind's nodes) link it to ``/dev/console``. It exists here; preflight
  says so when it does not.
- CAP_SYS_RESOURCE may be denied (it is here): no process may lower an ``oom_score_adj``, so runc's write
  of the -998 the kubelet asks for the sandbox fails, surfacing as ``can't get final child's PID from
  pipe: EOF``. containerd's ``restrict_oom_score_adj`` clamps every container's score to containerd's own
  (0) before runc sees the spec; it is set only when the machine denies the lowering, since it costs the
  kubelet's QoS-based OOM ordering.
- Services: kube-proxy (iptables mode) runs on the host beside the kubelet. It leaves the conntrack
  sysctls alone (``conntrack.maxPerCore: 0``, zero timeouts: a shared machine's table is not ours to
  resize, and writing them may be denied), never sets ``route_localnet`` host-wide
  (``localhostNodePorts: false``), serves NodePorts only on the bridge, and masquerades all Service
  traffic (``masqueradeAll``): a pod reaching a Service on its own bridge gets the reply back through the
  host whether or not ``br_netfilter`` passes bridged frames to iptables. Its chains (``KUBE-*``) are
  host-wide, so one stack per machine runs it; a second stack says so instead of fighting over them.

Every pod of the stack runs on this node; there is no other runtime. When the node cannot start, ``streamguard
dev up`` fails naming the component, why, and its log's last lines (:func:`start_failure`).
"""

import contextlib
import hashlib
import ipaddress
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from streamguard.devstack.certs import Pki, ensure_node_certs, kubeconfig
from streamguard.devstack.image import ProjectImages
from streamguard.devstack.provision import Artifact, ensure, log_tail
from streamguard.devstack.supervisor import Service, ServiceStartError, StartError, Supervisor

NODE_NAME = "streamguard-node"
LEGACY_TAINT = "streamguard.dev/real-node:NoSchedule"
"""The taint stacks started before every pod ran on this node registered it with. Their Node object outlives a
restart in etcd and the kubelet never drops a taint from an existing Node, so ``start`` removes it."""
STORAGE_CLASS = "streamguard-local"
NODE_SERVICES = ("kube-scheduler", "containerd", "kubelet", "kube-proxy", "local-volume-provisioner")
CGROUP_V1_REQUIRED = ("cpu", "cpuacct", "cpuset", "memory", "pids", "devices", "freezer")
SERVICE_CIDR = "10.0.0.0/24"
"""The apiserver's ``--service-cluster-ip-range``; pods route it through the host, where kube-proxy's rules
(and podgateway's for the ``kubernetes`` Service) rewrite it."""
KUBERNETES_SERVICE_IP = "10.0.0.1"
"""The ``kubernetes`` Service's ClusterIP: the range's first address."""


class NodeUnavailableError(StartError):
    """The node cannot run on this machine, or did not start; the message says exactly why."""


TAIL_LINES = 15
"""How much of a failed component's log ``streamguard dev up`` shows."""


def start_failure(component: str, reason: str, log: Path | None = None, tail: str = "") -> str:
    """What ``streamguard dev up`` says when the node does not start: which component, why, and the last lines
    of its log; and that nothing stands in for the node."""
    lines = [f"the Kubernetes node {NODE_NAME} did not start: {component} {reason}"]
    if log is not None:
        lines.append(f"last lines of {log}:" if tail.strip() else f"{log} is empty")
        lines += [f"  {line}" for line in tail.splitlines()]
    lines.append("Every pod of the stack runs on this node and nothing runs them in its place: fix the cause above, "
                 "then run `streamguard dev up` again.")
    return "\n".join(lines)


@contextlib.contextmanager
def starting(component: str) -> Iterator[None]:
    """Turn any failure while starting ``component`` (a supervised process named in the error, or a step of
    the node's set-up) into a :class:`NodeUnavailableError` rendered by :func:`start_failure`."""
    try:
        yield
    except NodeUnavailableError:
        raise
    except ServiceStartError as error:
        raise NodeUnavailableError(start_failure(error.service, error.reason, error.log,
                                                 log_tail(error.log, TAIL_LINES))) from error
    except (StartError, OSError, subprocess.SubprocessError) as error:
        raise NodeUnavailableError(start_failure(component, f"failed: {error}")) from error


@dataclass(frozen=True)
class NodeLayout:
    """Where one stack's node keeps its state, and the host-wide names derived from the run directory."""

    run_dir: Path

    @property
    def root(self) -> Path:
        return self.run_dir / "node"

    @property
    def ident(self) -> str:
        return hashlib.sha256(str(self.run_dir).encode()).hexdigest()[:8]

    @property
    def bridge(self) -> str:
        return f"sg{self.ident}"

    @property
    def cgroup_parent(self) -> str:
        return f"/streamguard-{self.ident}"

    @property
    def containerd(self) -> Path:
        return self.root / "containerd"

    @property
    def socket(self) -> Path:
        return self.containerd / "containerd.sock"

    @property
    def kubelet(self) -> Path:
        return self.root / "kubelet"

    @property
    def cni_conf_dir(self) -> Path:
        return self.root / "cni" / "net.d"

    @property
    def cni_ipam_dir(self) -> Path:
        return self.root / "cni" / "ipam"

    @property
    def pod_logs(self) -> Path:
        return self.root / "pod-logs"

    @property
    def volumes(self) -> Path:
        return self.root / "volumes"

    @property
    def kubeconfig(self) -> Path:
        return self.root / "kubelet.kubeconfig"


# ---- preflight --------------------------------------------------------------------------------------


def _mounts() -> list[tuple[str, str, str]]:
    """``(mount point, fstype, options)`` of every mount of this process."""
    rows = []
    for line in Path("/proc/self/mounts").read_text().splitlines():
        parts = line.split()
        rows.append((parts[1].replace("\\040", " "), parts[2], parts[3]))
    return rows


def cgroup_v1_hierarchies(mounts: list[tuple[str, str, str]]) -> dict[str, Path]:
    """Each mounted cgroup v1 controller (and ``name=`` hierarchy) and where it is mounted."""
    found = {}
    for point, fstype, options in mounts:
        if fstype != "cgroup":
            continue
        for option in options.split(","):
            if option in CGROUP_V1_REQUIRED or option.startswith("name=") or option in ("blkio", "hugetlb",
                                                                                          "net_cls", "net_prio",
                                                                                          "perf_event", "rdma"):
                found[option] = Path(point)
    return found


def oom_lowering_denied() -> bool:
    """True when this machine refuses lowering an ``oom_score_adj`` (CAP_SYS_RESOURCE denied)."""
    probe = subprocess.run(["sh", "-c", "echo -1 > /proc/self/oom_score_adj"], capture_output=True, check=False)
    return probe.returncode != 0


def preflight(mounts: list[tuple[str, str, str]] | None = None) -> list[str]:
    """Why a node cannot run here (empty when it can). Each line names the cause and the fix."""
    problems = []
    if os.geteuid() != 0:
        problems.append("not root: containerd and runc create namespaces, cgroups and mounts "
                        "(run `streamguard dev up` as root, or in a VM or container with root)")
    mounts = _mounts() if mounts is None else mounts
    unified = any(point == "/sys/fs/cgroup" and fstype == "cgroup2" for point, fstype, _ in mounts)
    if not unified:
        hierarchies = cgroup_v1_hierarchies(mounts)
        missing = [c for c in CGROUP_V1_REQUIRED if c not in hierarchies]
        if missing:
            problems.append(f"cgroup v1 controllers not mounted: {', '.join(missing)} (the kubelet and runc need "
                            "them under /sys/fs/cgroup; or boot with cgroup v2)")
        read_only = [c for c, p in hierarchies.items() if c in CGROUP_V1_REQUIRED and
                     any(point == str(p) and "ro" in opts.split(",") for point, _, opts in mounts)]
        if read_only:
            problems.append(f"cgroup v1 controllers mounted read-only: {', '.join(read_only)}")
    if "overlay" not in Path("/proc/filesystems").read_text():
        problems.append("the kernel has no overlay filesystem: containerd's overlayfs snapshotter needs it "
                        "(modprobe overlay)")
    if not Path("/dev/kmsg").exists():
        problems.append("/dev/kmsg is missing: the kubelet's OOM watcher reads it and the kubelet exits "
                        "without it (in a container: ln -s /dev/console /dev/kmsg)")
    if shutil.which("runc") is None:
        problems.append("runc is not installed (apt-get install runc)")
    if shutil.which("ip") is None:
        problems.append("the `ip` command (iproute2) is missing: the stack creates the pod bridge with it")
    if shutil.which("iptables") is None:
        problems.append("iptables is missing: pods reach the stack's services through its forwards "
                        "(apt-get install iptables)")
    return problems


# ---- pure renderers ---------------------------------------------------------------------------------


def containerd_config(layout: NodeLayout, cni_bin: Path, sandbox_image: str, restrict_oom: bool) -> str:
    """containerd's configuration (version 3): every path under the run directory, CRI on overlayfs with
    runc (cgroupfs), the CNI plugins we built and the locally built sandbox image pinned."""
    c = layout.containerd
    return f"""version = 3
root = '{c / "root"}'
state = '{c / "state"}'

[grpc]
  address = '{layout.socket}'

[ttrpc]
  address = '{layout.socket}.ttrpc'

[plugins.'io.containerd.internal.v1.opt']
  path = '{c / "opt"}'

[plugins.'io.containerd.nri.v1.nri']
  disable = true

[plugins.'io.containerd.cri.v1.images']
  snapshotter = 'overlayfs'

  [plugins.'io.containerd.cri.v1.images'.pinned_images]
    sandbox = '{sandbox_image}'

[plugins.'io.containerd.cri.v1.runtime']
  # No negative oom_score_adj where CAP_SYS_RESOURCE is denied (see streamguard/devstack/node.py).
  restrict_oom_score_adj = {str(restrict_oom).lower()}
  netns_mounts_under_state_dir = true

  [plugins.'io.containerd.cri.v1.runtime'.containerd]
    default_runtime_name = 'runc'

    [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc]
      runtime_type = 'io.containerd.runc.v2'

      [plugins.'io.containerd.cri.v1.runtime'.containerd.runtimes.runc.options]
        BinaryName = '{shutil.which("runc") or "runc"}'
        SystemdCgroup = false

  [plugins.'io.containerd.cri.v1.runtime'.cni]
    bin_dirs = ['{cni_bin}']
    conf_dir = '{layout.cni_conf_dir}'

[plugins.'io.containerd.grpc.v1.cri']
  stream_server_address = '127.0.0.1'
  stream_server_port = '0'
"""


def cni_config(layout: NodeLayout, subnet: ipaddress.IPv4Network) -> dict[str, Any]:
    """The pod network: a bridge the stack owns (its address is the host's end), no default route; only
    the service range is routed to the host (kube-proxy's rules, and streamguard.devstack.podgateway's for
    the ``kubernetes`` Service); host-local IPAM keeps its allocations under the run directory."""
    return {
        "cniVersion": "1.0.0",
        "name": f"streamguard-{layout.ident}",
        "plugins": [{
            "type": "bridge",
            "bridge": layout.bridge,
            "isGateway": False,
            "ipMasq": False,
            "hairpinMode": True,
            "ipam": {
                "type": "host-local",
                "ranges": [[{"subnet": str(subnet), "gateway": node_ip(subnet)}]],
                "routes": [{"dst": SERVICE_CIDR, "gw": node_ip(subnet)}],
                "dataDir": str(layout.cni_ipam_dir),
            },
        }],
    }


def kubelet_config(layout: NodeLayout, pki: Pki, node_ip: str, port: int, healthz_port: int) -> dict[str, Any]:
    """The kubelet's KubeletConfiguration; each setting that departs from the defaults says why."""
    return {
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        # Serve only on the node's InternalIP (the host's address on the stack's bridge); the apiserver dials
        # it for logs, exec and port-forward.
        "address": node_ip,
        "port": port,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": healthz_port,
        "tlsCertFile": str(pki.kubelet_serving_cert(NODE_NAME)),
        "tlsPrivateKeyFile": str(pki.kubelet_serving_key(NODE_NAME)),
        # Only clients with a certificate from the stack's CA, authorized by the apiserver (as on a real node).
        "authentication": {"anonymous": {"enabled": False}, "webhook": {"enabled": True},
                           "x509": {"clientCAFile": str(pki.ca_cert)}},
        "authorization": {"mode": "Webhook"},
        # The kernel mounts cgroup v1 and there is no systemd: v1 must be allowed and cgroupfs driven directly.
        "failCgroupV1": False,
        "cgroupDriver": "cgroupfs",
        # A cgroup parent of our own, so two stacks' kubelets never clean up each other's pod cgroups.
        "cgroupRoot": layout.cgroup_parent,
        # Developer machines often have swap on; the node then runs pods without swap (NoSwap).
        "failSwapOn": False,
        "memorySwap": {"swapBehavior": "NoSwap"},
        "containerRuntimeEndpoint": f"unix://{layout.socket}",
        "podLogsDir": str(layout.pod_logs),
        "volumePluginDir": str(layout.root / "volume-plugins"),
        "resolvConf": "/etc/resolv.conf",
        "serializeImagePulls": False,
        # A shared development disk: evict only when it is really full, never collect the images we import.
        "evictionHard": {"memory.available": "100Mi", "nodefs.available": "2%", "imagefs.available": "2%",
                         "nodefs.inodesFree": "2%"},
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "shutdownGracePeriod": "0s",
    }


def kube_proxy_config(layout: NodeLayout, subnet: ipaddress.IPv4Network, admin: Path, healthz_port: int,
                      metrics_port: int) -> dict[str, Any]:
    """kube-proxy's KubeProxyConfiguration (iptables mode); each setting that departs from the defaults
    says why (see also the module docstring)."""
    return {
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "clientConnection": {"kubeconfig": str(admin)},
        "hostnameOverride": NODE_NAME,
        "mode": "iptables",
        "clusterCIDR": str(subnet),
        # Health and metrics on loopback only.
        "healthzBindAddress": f"127.0.0.1:{healthz_port}",
        "metricsBindAddress": f"127.0.0.1:{metrics_port}",
        "bindAddressHardFail": True,
        # NodePorts answer on the pod bridge only, never on the machine's other interfaces.
        "nodePortAddresses": [str(subnet)],
        "iptables": {
            # Replies of a pod-to-Service-to-pod connection on one bridge return through the host (where
            # conntrack undoes the DNAT) even when bridged frames bypass iptables (no br_netfilter).
            "masqueradeAll": True,
            # Otherwise kube-proxy sets net.ipv4.conf.all.route_localnet=1 for the whole machine.
            "localhostNodePorts": False,
            "syncPeriod": "30s",
            "minSyncPeriod": "1s",
        },
        # Leave the machine's conntrack table and timeouts as they are (0 = do not touch the sysctl).
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        # Raising its own priority needs CAP_SYS_RESOURCE, which this machine kind may deny.
        "oomScoreAdj": 0,
    }


def local_volume_objects() -> list[dict[str, Any]]:
    """The default StorageClass, provisioned by the stack's local-volume provisioner (a folder per claim)."""
    return [{
        "apiVersion": "storage.k8s.io/v1",
        "kind": "StorageClass",
        "metadata": {"name": STORAGE_CLASS,
                     "annotations": {"storageclass.kubernetes.io/is-default-class": "true"}},
        "provisioner": "streamguard.dev/local-volume",
        "reclaimPolicy": "Delete",
        "volumeBindingMode": "WaitForFirstConsumer",
    }]


def choose_subnet(ident: str, taken: list[ipaddress.IPv4Network]) -> ipaddress.IPv4Network:
    """A /24 in 10.244.0.0/16 picked from ``ident``, skipping any that overlaps a network already in use."""
    start = int(ident, 16) % 256
    for step in range(256):
        candidate = ipaddress.IPv4Network(f"10.244.{(start + step) % 256}.0/24")
        if not any(candidate.overlaps(net) for net in taken):
            return candidate
    raise NodeUnavailableError("no free /24 in 10.244.0.0/16 for the pod bridge")


# ---- side effects -----------------------------------------------------------------------------------


def _run(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise NodeUnavailableError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def _networks_in_use(skip_link: str) -> list[ipaddress.IPv4Network]:
    out = _run(["ip", "-4", "-o", "addr", "show"]).stdout
    nets = []
    for line in out.splitlines():
        words = line.split()
        if len(words) > 3 and words[1] != skip_link:
            nets.append(ipaddress.IPv4Interface(words[3]).network)
    return nets


def ensure_bridge(layout: NodeLayout) -> ipaddress.IPv4Network:
    """Create (once) the stack's pod bridge with the host's address on it; the subnet is kept in the run dir."""
    record = layout.root / "network.json"
    if record.exists():
        subnet = ipaddress.IPv4Network(json.loads(record.read_text())["subnet"])
    else:
        subnet = choose_subnet(layout.ident, _networks_in_use(layout.bridge))
        record.write_text(json.dumps({"bridge": layout.bridge, "subnet": str(subnet)}))
    host = f"{node_ip(subnet)}/{subnet.prefixlen}"
    if _run(["ip", "link", "show", layout.bridge], check=False).returncode != 0:
        _run(["ip", "link", "add", layout.bridge, "type", "bridge"])
    if host not in _run(["ip", "-4", "-o", "addr", "show", "dev", layout.bridge]).stdout:
        _run(["ip", "addr", "add", host, "dev", layout.bridge])
    _run(["ip", "link", "set", layout.bridge, "up"])
    return subnet


def ensure_cgroup_parent(layout: NodeLayout) -> None:
    """Create the kubelet's cgroup root in every v1 hierarchy (the kubelet checks it exists); a cpuset
    child starts empty, so it inherits the root's CPUs and memory nodes."""
    mounts = _mounts()
    if any(point == "/sys/fs/cgroup" and fstype == "cgroup2" for point, fstype, _ in mounts):
        (Path("/sys/fs/cgroup") / layout.cgroup_parent.lstrip("/")).mkdir(exist_ok=True)
        return
    for controller, mount in cgroup_v1_hierarchies(mounts).items():
        path = mount / layout.cgroup_parent.lstrip("/")
        path.mkdir(exist_ok=True)
        if controller == "cpuset":
            for name in ("cpuset.cpus", "cpuset.mems"):
                if not (path / name).read_text().strip():
                    (path / name).write_text((mount / name).read_text())


def node_ip(subnet: ipaddress.IPv4Network) -> str:
    """The node's InternalIP: the host's address on the stack's bridge. (The kubelet refuses a loopback
    node IP, and an address on the bridge reaches nothing beyond the stack.)"""
    return str(next(subnet.hosts()))


def prepare_network(layout: NodeLayout) -> str:
    """Check the machine and create the pod bridge (before the services that pods reach start); return
    the host's address on it."""
    problems = preflight()
    if problems:
        raise NodeUnavailableError("the Kubernetes node cannot run on this machine:\n- " + "\n- ".join(problems))
    layout.root.mkdir(parents=True, exist_ok=True)
    return node_ip(ensure_bridge(layout))


def _prepare(layout: NodeLayout, built: dict[str, Artifact], pki: Pki, apiserver: str,
             ports: dict[str, int], admin: Path) -> str:
    """Check the machine, create the bridge, cgroup parent and configuration; return the node IP."""
    prepare_network(layout)
    for path in (layout.containerd, layout.kubelet, layout.cni_conf_dir, layout.cni_ipam_dir, layout.pod_logs,
                 layout.volumes):
        path.mkdir(parents=True, exist_ok=True)
    subnet = ensure_bridge(layout)
    address = node_ip(subnet)
    ensure_node_certs(pki, NODE_NAME, address)
    ensure_cgroup_parent(layout)
    (layout.cni_conf_dir / "10-streamguard.conflist").write_text(json.dumps(cni_config(layout, subnet), indent=2))
    sandbox = (built["pause"].directory / "image-name").read_text().strip()
    (layout.containerd / "config.toml").write_text(
        containerd_config(layout, built["cni-plugins"].directory, sandbox, oom_lowering_denied()))
    (layout.root / "kubelet.json").write_text(
        json.dumps(kubelet_config(layout, pki, address, ports["kubelet"], ports["kubelet-healthz"]), indent=2))
    layout.kubeconfig.write_text(kubeconfig(pki, apiserver, pki.node_cert(NODE_NAME), pki.node_key(NODE_NAME)))
    (layout.root / "kube-proxy.json").write_text(json.dumps(
        kube_proxy_config(layout, subnet, admin, ports["kube-proxy-healthz"], ports["kube-proxy-metrics"]), indent=2))
    return address


def ctr(built: dict[str, Artifact], layout: NodeLayout, *args: str, check: bool = True,
        timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """``ctr`` against this stack's containerd, in the Kubernetes namespace."""
    argv = [str(built["containerd"].directory / "ctr"), "--address", str(layout.socket), "-n", "k8s.io", *args]
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=timeout)
    if check and result.returncode != 0:
        raise StartError(f"ctr {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def put_images(images: ProjectImages, run_dir: Path) -> list[str]:
    """Import the project's images into the stack's containerd; the names of those that were not there yet."""
    layout = NodeLayout(run_dir.resolve())
    built = ensure(["containerd"])
    return [image.name for repository, image in images.each()
            if import_image(built, layout, Path(image.archive), image.name, replaces=repository)]


def import_image(built: dict[str, Artifact], layout: NodeLayout, archive: Path, name: str,
                 replaces: str | None = None) -> bool:
    """Import an OCI archive into the node's containerd unless ``name`` is there; pin it (never collected).
    Other images of repository ``replaces`` are removed (with the digest references the import made), so
    each rebuild does not leave gigabytes behind. True if it was imported."""
    refs = _image_refs(built, layout)
    imported = name not in refs
    if imported:
        ctr(built, layout, "images", "import", "--local", str(archive))
        ctr(built, layout, "images", "label", name, "io.cri-containerd.pinned=pinned")
        refs = _image_refs(built, layout)
    if replaces:
        stale = {digest for ref, digest in refs.items() if ref.startswith(replaces + ":") and ref != name}
        doomed = [ref for ref, digest in refs.items() if digest in stale and digest != refs[name]]
        if doomed:
            ctr(built, layout, "images", "rm", *doomed)
    return imported


def _image_refs(built: dict[str, Artifact], layout: NodeLayout) -> dict[str, str]:
    """Every image reference in the node's containerd and the digest of the manifest it names."""
    rows = ctr(built, layout, "images", "ls").stdout.splitlines()[1:]
    return {row.split()[0]: row.split()[2] for row in rows if len(row.split()) > 2}


def containerd_service(built: dict[str, Artifact], layout: NodeLayout) -> Service:
    binaries = built["containerd"].directory

    def ready() -> bool:
        if not layout.socket.exists():
            return False
        probe = subprocess.run([str(binaries / "ctr"), "--address", str(layout.socket), "version"],
                               capture_output=True, check=False, timeout=5)
        return probe.returncode == 0

    return Service(
        "containerd",
        [str(binaries / "containerd"), "--config", str(layout.containerd / "config.toml"), "--log-level", "warn"],
        ready=ready,
        # containerd starts its shims (containerd-shim-runc-v2) from its own directory.
        env={"PATH": f"{binaries}{os.pathsep}{os.environ.get('PATH', '')}"},
        timeout=60,
    )


def node_ready(kubectl: Path, kubeconfig_path: Path, since: float = 0.0) -> bool:
    """The node's Ready condition is True, from a heartbeat at or after ``since`` (epoch seconds): a node
    object left Ready by an earlier kubelet does not count."""
    probe = subprocess.run(
        [str(kubectl), f"--kubeconfig={kubeconfig_path}", "get", "node", NODE_NAME, "-o",
         'jsonpath={.status.conditions[?(@.type=="Ready")]}'],
        capture_output=True, text=True, check=False, timeout=10)
    if not probe.stdout.strip():
        return False
    ready = json.loads(probe.stdout)
    beat = datetime.strptime(ready["lastHeartbeatTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp()
    return bool(ready["status"] == "True" and beat >= int(since))


def kubelet_service(built: dict[str, Artifact], layout: NodeLayout, address: str, kubectl: Path,
                    admin: Path) -> Service:
    pid_file = layout.run_dir / "pids" / "kubelet.pid"
    return Service(
        "kubelet",
        [str(built["kubernetes"].directory / "kubelet"), f"--config={layout.root / 'kubelet.json'}",
         f"--kubeconfig={layout.kubeconfig}", f"--hostname-override={NODE_NAME}", f"--node-ip={address}",
         f"--root-dir={layout.kubelet}", f"--cert-dir={layout.root / 'kubelet-pki'}", "--v=1"],
        # Ready from this kubelet: a heartbeat since its start (the supervisor writes its pid file then).
        ready=lambda: node_ready(kubectl, admin, pid_file.stat().st_mtime),
        timeout=120,
    )


def scheduler_service(built: dict[str, Artifact], admin: Path, port: int) -> Service:
    import ssl
    import urllib.request

    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE

    def ready() -> bool:
        with urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", timeout=2, context=context) as response:
            return bool(response.status == 200)

    return Service(
        "kube-scheduler",
        [str(built["kubernetes"].directory / "kube-scheduler"), f"--kubeconfig={admin}",
         f"--authentication-kubeconfig={admin}", f"--authorization-kubeconfig={admin}",
         "--leader-elect=false", "--bind-address=127.0.0.1", f"--secure-port={port}", "--v=1"],
        ready=ready,
    )


def kube_proxy_service(built: dict[str, Artifact], layout: NodeLayout, healthz_port: int) -> Service:
    def ready() -> bool:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{healthz_port}/healthz", timeout=2) as response:
                return bool(response.status == 200)
        except OSError:
            return False

    return Service(
        "kube-proxy",
        [str(built["kubernetes"].directory / "kube-proxy"), f"--config={layout.root / 'kube-proxy.json'}", "--v=1"],
        ready=ready,
        timeout=60,
    )


def other_kube_proxies(layout: NodeLayout) -> list[str]:
    """Command lines of kube-proxy processes on this machine that are not this stack's (their iptables chains
    are host-wide: two would overwrite each other's rules)."""
    ours = f"--config={layout.root / 'kube-proxy.json'}"
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = [a.decode(errors="replace") for a in (proc / "cmdline").read_bytes().split(b"\0") if a]
        except OSError:
            continue
        if argv and Path(argv[0]).name == "kube-proxy" and ours not in argv and "--cleanup" not in argv:
            found.append(" ".join(argv))
    return found


def clean_service_rules(built: dict[str, Artifact]) -> None:
    """Remove kube-proxy's iptables chains and rules (``kube-proxy --cleanup``) once ours has stopped."""
    binary = built["kubernetes"].directory / "kube-proxy"
    if binary.exists():
        subprocess.run([str(binary), "--cleanup", "--v=0"], capture_output=True, text=True, check=False, timeout=60)


def provisioner_service(layout: NodeLayout, admin: Path, python: Path) -> Service:
    heartbeat = layout.root / "local-volume-provisioner.alive"

    def ready() -> bool:
        return heartbeat.exists() and time.time() - heartbeat.stat().st_mtime < 10

    return Service(
        "local-volume-provisioner",
        [str(python), "-m", "streamguard.devstack.localvolumes", "--kubeconfig", str(admin),
         "--root", str(layout.volumes), "--node", NODE_NAME, "--heartbeat", str(heartbeat)],
        ready=ready,
    )


def check_apiserver_reaches_kubelets(supervisor: Supervisor) -> None:
    """An apiserver started by an older streamguard has no kubelet client credentials: logs and exec would
    fail with 403/x509 errors much later, so say so now."""
    pid_file = supervisor.pids / "kube-apiserver.pid"
    argv = json.loads(pid_file.read_text()).get("argv", []) if pid_file.exists() else []
    if not any(str(arg).startswith("--kubelet-client-certificate=") for arg in argv):
        raise NodeUnavailableError("the running kube-apiserver was started without kubelet client credentials (by an "
                              "older streamguard): restart the stack (`streamguard dev down && streamguard dev up`)")


def start(stack_start: Any, supervisor: Supervisor, layout: NodeLayout, built: dict[str, Artifact], pki: Pki,
          apiserver: str, ports: dict[str, int], kubectl: Path, admin: Path, python: Path) -> None:
    """Start kube-scheduler, containerd (with the sandbox image), kubelet, kube-proxy and the volume
    provisioner."""
    check_apiserver_reaches_kubelets(supervisor)
    if supervisor.running_pid("kube-proxy") is None and (others := other_kube_proxies(layout)):
        raise NodeUnavailableError("another kube-proxy runs on this machine (its KUBE-* iptables chains are "
                                   "host-wide; a second one would overwrite its Service rules): stop that stack "
                                   "first (`streamguard dev down` with its STREAMGUARD_RUN_DIR): " + "; ".join(others))
    with starting("node set-up (bridge, cgroup parent, certificates, configuration)"):
        address = _prepare(layout, built, pki, apiserver, ports, admin)
    with starting("kube-scheduler"):
        stack_start(scheduler_service(built, admin, ports["scheduler"]))
    with starting("containerd"):
        stack_start(containerd_service(built, layout))
    with starting("the sandbox (pause) image import into containerd"):
        sandbox = (built["pause"].directory / "image-name").read_text().strip()
        import_image(built, layout, built["pause"].directory / "pause.tar", sandbox)
    with starting("kubelet"):
        stack_start(kubelet_service(built, layout, address, kubectl, admin))
    with starting(f"removing the taint {LEGACY_TAINT} an earlier stack registered"):
        _kubectl(kubectl, admin, "taint", "node", NODE_NAME, f"{LEGACY_TAINT}-", allow="not found")
    with starting("kube-proxy"):
        stack_start(kube_proxy_service(built, layout, ports["kube-proxy-healthz"]))
    with starting(f"the StorageClass {STORAGE_CLASS}"):
        _kubectl(kubectl, admin, "apply", "--server-side", "-f", "-",
                 stdin="".join(json.dumps(o) + "\n" for o in local_volume_objects()))
    with starting("local-volume-provisioner"):
        stack_start(provisioner_service(layout, admin, python))


def _kubectl(kubectl: Path, admin: Path, *args: str, stdin: str | None = None, allow: str = "") -> None:
    """Run kubectl with the admin kubeconfig; a failure whose message contains ``allow`` (when given) is fine."""
    result = subprocess.run([str(kubectl), f"--kubeconfig={admin}", *args], input=stdin, text=True,
                            capture_output=True, check=False, timeout=60)
    if result.returncode != 0 and not (allow and allow in result.stderr):
        raise StartError(f"kubectl {' '.join(args)} failed ({result.returncode}): {result.stderr.strip()}")


# ---- stopping ---------------------------------------------------------------------------------------


def _mounts_under(root: Path) -> list[str]:
    prefix = str(root.resolve()) + "/"
    return [point for point, _, _ in _mounts() if point.startswith(prefix)]


def _our_shims(layout: NodeLayout) -> list[int]:
    """PIDs of containerd shims started for this stack's containerd (their command line names its socket)."""
    pids = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if argv and argv[0].endswith(b"containerd-shim-runc-v2") and str(layout.socket).encode() in argv:
            pids.append(int(proc.name))
    return pids


def stop(supervisor: Supervisor, layout: NodeLayout, built: dict[str, Artifact]) -> list[str]:
    """Stop the node: the provisioner and kubelet, then every pod container (containerd keeps them running
    in their shims otherwise), containerd, the shims; unmount everything under the node's folder and
    remove the bridge. Returns the services stopped."""
    stopped = [name for name in ("local-volume-provisioner", "kube-proxy", "kubelet") if supervisor.stop(name)]
    if "kube-proxy" in stopped:
        clean_service_rules(built)
    if supervisor.running_pid("containerd") is not None:
        tasks = ctr(built, layout, "tasks", "ls", "-q", check=False, timeout=30).stdout.split()
        for task in tasks:
            ctr(built, layout, "tasks", "kill", "-s", "SIGKILL", task, check=False, timeout=30)
        deadline = time.monotonic() + 20
        for task in tasks:
            while ctr(built, layout, "tasks", "delete", task, check=False, timeout=30).returncode != 0:
                if time.monotonic() > deadline:
                    break
                time.sleep(0.5)
        for container in ctr(built, layout, "containers", "ls", "-q", check=False, timeout=30).stdout.split():
            ctr(built, layout, "containers", "delete", container, check=False, timeout=30)
    if supervisor.stop("containerd"):
        stopped.append("containerd")
    for pid in _our_shims(layout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)
    if supervisor.stop("kube-scheduler"):
        stopped.append("kube-scheduler")
    unmount_all(layout.root)
    shutil.rmtree(layout.cni_ipam_dir, ignore_errors=True)
    if layout.root.exists() and shutil.which("ip"):
        _run(["ip", "link", "delete", layout.bridge], check=False)
    return stopped


def unmount_all(root: Path) -> None:
    """Unmount every mount under ``root``, deepest first (the kubelet leaves its volume mounts behind)."""
    for _ in range(3):
        points = sorted(_mounts_under(root), key=lambda p: p.count("/"), reverse=True)
        if not points:
            return
        for point in points:
            _run(["umount", "-l", point], check=False)
    remaining = _mounts_under(root)
    if remaining:
        raise StartError(f"could not unmount under {root}: {', '.join(remaining)}")


def node_info(kubectl: Path, admin: Path) -> dict[str, str]:
    """The node's runtime and kubelet versions as the apiserver reports them."""
    out = subprocess.run([str(kubectl), f"--kubeconfig={admin}", "get", "node", NODE_NAME, "-o",
                          "jsonpath={.status.nodeInfo}"], capture_output=True, text=True, check=False).stdout
    info: dict[str, str] = json.loads(out) if out.strip() else {}
    return {k: v for k, v in info.items() if re.search("Version$", k)}
