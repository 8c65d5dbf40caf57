"""Pure parts of the node's set-up: what preflight reports, the subnet choice, apt sources, configurations."""

import gzip
import hashlib
import io
import ipaddress
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from streamguard.devstack import components, node, podgateway
from streamguard.devstack.certs import Pki
from streamguard.devstack.image import excluded, ignore_patterns, image_files, layers_size
from streamguard.devstack.provision import ProvisionError, parse_debian_sources
from streamguard.devstack.stack import pod_forwards
from streamguard.devstack.supervisor import ServiceStartError, StartError
from tests.polling import wait_for

V1 = [("/sys/fs/cgroup", "tmpfs", "rw")] + [(f"/sys/fs/cgroup/{c}", "cgroup", f"rw,relatime,{c}")
                                            for c in node.CGROUP_V1_REQUIRED]


def test_preflight_names_each_missing_cgroup_controller() -> None:
    mounts = [m for m in V1 if not m[0].endswith(("/memory", "/pids"))]
    problems = [p for p in node.preflight(mounts) if "cgroup" in p]
    assert problems == ["cgroup v1 controllers not mounted: memory, pids (the kubelet and runc need them under "
                        "/sys/fs/cgroup; or boot with cgroup v2)"]
    read_only = [(p, t, "ro,relatime,cpu") if p.endswith("/cpu") else (p, t, o) for p, t, o in V1]
    assert [p for p in node.preflight(read_only) if "cgroup" in p] == ["cgroup v1 controllers mounted read-only: cpu"]
    assert not [p for p in node.preflight([("/sys/fs/cgroup", "cgroup2", "rw")]) if "cgroup" in p]


def test_the_pod_subnet_skips_networks_in_use() -> None:
    ident = "000000c3"  # 0xc3 % 256 = 195
    assert node.choose_subnet(ident, []) == ipaddress.IPv4Network("10.244.195.0/24")
    taken = [ipaddress.IPv4Network("10.244.195.0/24"), ipaddress.IPv4Network("10.244.196.128/25")]
    assert node.choose_subnet(ident, taken) == ipaddress.IPv4Network("10.244.197.0/24")
    with pytest.raises(node.NodeUnavailableError):
        node.choose_subnet(ident, [ipaddress.IPv4Network("10.0.0.0/8")])


def test_debian_mirrors_come_from_apt_sources_in_either_format() -> None:
    deb822 = ("Types: deb\nURIs: http://deb.example/debian\nSuites: bookworm bookworm-updates\nComponents: main\n\n"
              "Types: deb\nURIs: http://deb.example/debian-security/\nSuites: bookworm-security\n")
    assert parse_debian_sources([deb822], "bookworm") == ("http://deb.example/debian",
                                                          "http://deb.example/debian-security")
    one_line = "deb [arch=amd64 signed-by=/k.gpg] http://m.example/debian bookworm main\n"
    assert parse_debian_sources([one_line], "bookworm") == ("http://m.example/debian", "")
    with pytest.raises(ProvisionError, match="no apt source serves Debian trixie"):
        parse_debian_sources([one_line], "trixie")


def test_dockerignore_rules_follow_docker() -> None:
    rules = ignore_patterns("*\n!streamguard\nstreamguard/devstack\n!streamguard/devstack/maven/x.xml\n"
                            "**/__pycache__/\n")
    assert excluded("tests/test_x.py", rules)
    assert not excluded("streamguard/cli.py", rules)
    assert excluded("streamguard/devstack/node.py", rules)
    assert not excluded("streamguard/devstack/maven/x.xml", rules)
    assert excluded("streamguard/api/__pycache__/models.pyc", rules)


def test_the_node_configuration_is_scoped_to_its_run_directory(tmp_path: Path) -> None:
    layout = node.NodeLayout(tmp_path)
    kubelet = node.kubelet_config(layout, Pki(tmp_path / "pki"), "10.244.1.1", 10250, 10248)
    assert kubelet["failCgroupV1"] is False and kubelet["cgroupDriver"] == "cgroupfs"
    assert kubelet["failSwapOn"] is False
    assert kubelet["cgroupRoot"] == f"/streamguard-{layout.ident}"
    assert kubelet["address"] == "10.244.1.1" and kubelet["readOnlyPort"] == 0
    assert kubelet["authentication"]["anonymous"]["enabled"] is False
    for key in ("podLogsDir", "volumePluginDir", "containerRuntimeEndpoint"):
        assert str(tmp_path) in kubelet[key]
    cni = node.cni_config(layout, ipaddress.IPv4Network("10.244.1.0/24"))
    bridge = cni["plugins"][0]
    assert bridge["bridge"] == layout.bridge and len(layout.bridge) <= 15
    assert bridge["isGateway"] is False and bridge["ipMasq"] is False
    assert bridge["ipam"]["dataDir"].startswith(str(tmp_path))
    toml = node.containerd_config(layout, tmp_path / "cni", "localhost/p:1", restrict_oom=True)
    assert "restrict_oom_score_adj = true" in toml and "SystemdCgroup = false" in toml
    paths = [line.split("'")[1] for line in toml.splitlines() if "= '/" in line and "BinaryName" not in line]
    assert paths and all(p.startswith(str(tmp_path)) for p in paths), paths


def _oci_archive(path: Path, layers: list[dict[str, bytes]]) -> None:
    """A minimal OCI archive: ``layers`` (path -> content, lowest first) as gzip tarballs behind a manifest."""
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> str:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return digest

    descriptors = []
    for files in layers:
        raw = io.BytesIO()
        with tarfile.open(fileobj=raw, mode="w") as layer:
            for name, content in files.items():
                info = tarfile.TarInfo(name)
                info.size = len(content)
                layer.addfile(info, io.BytesIO(content))
        descriptors.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                            "digest": blob(gzip.compress(raw.getvalue()))})
    manifest = blob(json.dumps({"layers": descriptors}).encode())
    with tarfile.open(path, "w") as archive:
        for name, data in [("index.json", json.dumps({"manifests": [{"digest": manifest}]}).encode()),
                           *(("blobs/" + d.replace(":", "/"), b) for d, b in blobs.items())]:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_an_images_file_list_applies_each_layers_whiteouts(tmp_path: Path) -> None:
    archive = tmp_path / "image.oci.tar"
    _oci_archive(archive, [
        {"src/setup.py": b"x", "tmp/smoke.py": b"yy", "opt/keep": b"zzz", "opt/cache/a": b"a", "opt/cache/b": b"b"},
        {"tmp/.wh.smoke.py": b"", ".wh.src": b"", "opt/cache/.wh..wh..opq": b"", "opt/cache/c": b"cc"},
    ])
    assert image_files(archive) == {"opt/keep": 3, "opt/cache/c": 2}
    assert layers_size(archive) > 0


def test_pods_reach_the_stack_only_through_its_own_forwards(tmp_path: Path) -> None:
    layout = node.NodeLayout(tmp_path)
    ports = {"apiserver": 6443, "kafka-pods": 9093, "registry": 8081, "redis": 6379, "s3": 8333}
    forwards = pod_forwards(ports, "10.244.1.1")
    assert [(f.address, f.port, f.target_port) for f in forwards] == [
        (node.KUBERNETES_SERVICE_IP, 443, 6443), ("10.244.1.1", 9093, 9093), ("10.244.1.1", 8081, 8081),
        ("10.244.1.1", 6379, 6379), ("10.244.1.1", 8333, 8333)]
    nat, guard = podgateway.chains(layout)
    assert len(nat) <= 28 and len(guard) <= 28
    commands = podgateway.install_commands(layout, forwards)
    dnat = [c for c in commands if "--to-destination" in c]
    # Every rewrite goes to loopback and is in this stack's chain; only hooks from its bridge lead there.
    assert all(c[4] == nat and c[-1].startswith("127.0.0.1:") for c in dnat) and len(dnat) == 5
    assert [rule for _, _, rule in podgateway.hooks(layout)] == [
        ["-i", layout.bridge, "-j", nat], ["-i", layout.bridge, "-j", guard],
        # Forwarded packets (a Service rewritten to a pod) stay on the bridge: nothing leaves the host.
        ["-i", layout.bridge, "!", "-o", layout.bridge, "-j", "DROP"]]
    drop = commands[-1]
    assert drop[4] == guard and drop[-1] == "DROP" and "127.0.0.0/8" in drop and "DNAT" in drop
    # Pods route the service range (only) to the host's end of the bridge.
    ipam = node.cni_config(layout, ipaddress.IPv4Network("10.244.1.0/24"))["plugins"][0]["ipam"]
    assert ipam["routes"] == [{"dst": node.SERVICE_CIDR, "gw": "10.244.1.1"}]
    assert ipaddress.ip_address(node.KUBERNETES_SERVICE_IP) == next(ipaddress.IPv4Network(node.SERVICE_CIDR).hosts())


def test_kafka_advertises_its_pod_listener_at_the_bridge_address(tmp_path: Path) -> None:
    properties = dict(line.split("=", 1) for line in
                      components._kafka_properties(tmp_path, 9092, 9094, ("10.244.1.1", 9093)).splitlines())
    assert properties["listeners"].split(",") == ["PLAINTEXT://127.0.0.1:9092", "PODS://127.0.0.1:9093",
                                                  "CONTROLLER://127.0.0.1:9094"]
    assert "PODS://10.244.1.1:9093" in properties["advertised.listeners"].split(",")
    assert "PODS:PLAINTEXT" in properties["listener.security.protocol.map"]


def test_the_secured_option_adds_a_sasl_ssl_listener_and_keeps_the_others(tmp_path: Path) -> None:
    def properties(sasl: tuple[int, Path] | None) -> dict[str, str]:
        text = components._kafka_properties(tmp_path, 9092, 9094, ("10.244.1.1", 9093), sasl)
        return dict(line.split("=", 1) for line in text.splitlines())

    plain, secured = properties(None), properties((9095, tmp_path / "keystore.pem"))
    assert secured["listeners"] == plain["listeners"] + ",SASL_SSL://127.0.0.1:9095"
    assert secured["advertised.listeners"] == plain["advertised.listeners"] + ",SASL_SSL://127.0.0.1:9095"
    assert secured["listener.security.protocol.map"].endswith(",SASL_SSL:SASL_SSL")
    assert secured["inter.broker.listener.name"] == "PLAINTEXT"
    assert secured["listener.name.sasl_ssl.ssl.keystore.location"] == str(tmp_path / "keystore.pem")
    assert secured["sasl.enabled.mechanisms"] == "SCRAM-SHA-512"
    assert not {key for key in plain if "sasl" in key}


def test_kube_proxy_leaves_the_machine_alone_but_for_its_service_rules(tmp_path: Path) -> None:
    layout = node.NodeLayout(tmp_path)
    subnet = ipaddress.IPv4Network("10.244.1.0/24")
    config = node.kube_proxy_config(layout, subnet, tmp_path / "admin.kubeconfig", 10256, 10249)
    assert config["kind"] == "KubeProxyConfiguration" and config["mode"] == "iptables"
    assert config["hostnameOverride"] == node.NODE_NAME
    # Loopback only for its own endpoints; NodePorts only on the stack's bridge.
    assert config["healthzBindAddress"] == "127.0.0.1:10256" and config["metricsBindAddress"] == "127.0.0.1:10249"
    assert config["nodePortAddresses"] == ["10.244.1.0/24"]
    # No host-wide sysctl: route_localnet stays off, the conntrack table and timeouts untouched.
    assert config["iptables"]["localhostNodePorts"] is False
    assert config["conntrack"] == {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s",
                                   "tcpCloseWaitTimeout": "0s"}
    # Replies of pod -> Service -> pod on one bridge come back through the host, br_netfilter or not.
    assert config["iptables"]["masqueradeAll"] is True
    assert config["oomScoreAdj"] == 0



def test_a_kube_proxy_of_another_stack_is_named_and_ours_is_not(tmp_path: Path) -> None:
    binary = tmp_path / "kube-proxy"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", binary)
    ours = node.NodeLayout(tmp_path / "ours")
    stranger = subprocess.Popen([str(binary), "30"])
    try:
        wait_for("the stand-in kube-proxy", lambda: Path(f"/proc/{stranger.pid}/cmdline").read_bytes(), timeout=10)
        assert f"{binary} 30" in node.other_kube_proxies(ours)
    finally:
        stranger.kill()
        stranger.wait()
    assert f"{binary} 30" not in node.other_kube_proxies(ours)


def test_a_node_that_does_not_start_names_the_component_why_and_its_logs_last_lines(tmp_path: Path) -> None:
    log = tmp_path / "kubelet.log"
    log.write_text("".join(f"line {i}\n" for i in range(1, 31)) + 'E1201 "Failed to start ContainerManager" '
                   "err=\"failed to initialize top level QOS containers: mkdir /sys/fs/cgroup/cpu: read-only\"\n")
    with pytest.raises(node.NodeUnavailableError) as raised, node.starting("kubelet"):
        raise ServiceStartError("kubelet", "exited with code 1", log)
    lines = str(raised.value).splitlines()
    assert lines[0] == f"the Kubernetes node {node.NODE_NAME} did not start: kubelet exited with code 1"
    assert lines[1] == f"last lines of {log}:"
    assert lines[2:2 + node.TAIL_LINES] == [f"  line {i}" for i in range(17, 31)] + [
        '  E1201 "Failed to start ContainerManager" err="failed to initialize top level QOS containers: mkdir '
        '/sys/fs/cgroup/cpu: read-only"']
    assert lines[-1].startswith("Every pod of the stack runs on this node and nothing runs them in its place")
    assert len(lines) == 3 + node.TAIL_LINES


def test_a_failed_set_up_step_is_named_and_preflight_findings_pass_unchanged(tmp_path: Path) -> None:
    with pytest.raises(node.NodeUnavailableError) as raised, node.starting("the StorageClass streamguard-local"):
        raise StartError("kubectl apply --server-side -f - failed (1): the server is currently unable to handle "
                         "the request")
    assert str(raised.value).splitlines()[0] == (
        f"the Kubernetes node {node.NODE_NAME} did not start: the StorageClass streamguard-local failed: kubectl "
        "apply --server-side -f - failed (1): the server is currently unable to handle the request")
    with pytest.raises(node.NodeUnavailableError) as raised, node.starting("pod network (bridge sg1)"):
        raise PermissionError(13, "Permission denied", "/proc/sys/net/ipv4/conf/sg1/route_localnet")
    assert "pod network (bridge sg1) failed: [Errno 13] Permission denied" in str(raised.value)
    preflight = node.NodeUnavailableError("the Kubernetes node cannot run on this machine:\n- runc is not installed")
    with pytest.raises(node.NodeUnavailableError) as raised, node.starting("pod network (bridge sg1)"):
        raise preflight
    assert raised.value is preflight
    empty = tmp_path / "containerd.log"
    empty.write_text("")
    assert node.start_failure("containerd", "not ready after 60s", empty, "").splitlines()[1] == f"{empty} is empty"
