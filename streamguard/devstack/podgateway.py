"""How pods on the stack's node reach the stack's services, which listen on 127.0.0.1 only.

In a cloud cluster, pods reach the API server through the ``kubernetes`` Service (kube-proxy rewrites its
ClusterIP to an apiserver address) and reach Kafka, the registry and Redis at routable addresses. Here
every service stays on loopback; the stack forwards to it, from its own pod bridge only:

- the ``kubernetes`` Service (``KUBERNETES_SERVICE_HOST``:443, which the kubelet puts in every pod's
  environment) to the apiserver. kube-proxy routes every other Service (streamguard.devstack.node) but
  not this one: the apiserver listens on loopback only, and an EndpointSlice cannot name a loopback
  address (the stack runs the apiserver with ``--endpoint-reconciler-type=none``). Pods route the service
  range through the host's bridge address (a route the CNI configuration adds).
- ``<bridge address>:<port>`` to ``127.0.0.1:<port>`` for Kafka's pod listener, the registry and Redis.

The kernel delivers a packet rewritten to 127.0.0.1 only with ``route_localnet`` on the interface it came
in on: it is set on the stack's bridge alone, and a filter rule drops whatever arrives from the bridge for
127.0.0.0/8 without having been rewritten by these rules (kube-proxy's guard against CVE-2020-8558).
Packets arriving on the bridge may be forwarded (``net.ipv4.conf.<bridge>.forwarding``, that interface
only): kube-proxy rewrites a Service address to a pod on the same bridge, so the host routes it back out
there. A filter rule drops whatever would leave the host from the bridge through any other interface:
nothing is forwarded off the host (pods reach the host, each other and their Services).
"""

import subprocess
from dataclasses import dataclass
from pathlib import Path

from streamguard.devstack.node import NodeLayout, NodeUnavailableError


@dataclass(frozen=True)
class Forward:
    """Pods dialing ``address:port`` reach ``127.0.0.1:target_port``."""

    name: str
    address: str
    port: int
    target_port: int


def chains(layout: NodeLayout) -> tuple[str, str]:
    """This stack's own nat and filter chains (iptables names are at most 28 characters)."""
    return f"SG-{layout.ident}-PODS", f"SG-{layout.ident}-GUARD"


def install_commands(layout: NodeLayout, forwards: list[Forward]) -> list[list[str]]:
    """The iptables commands filling this stack's chains (created and hooked separately, idempotently)."""
    nat, guard = chains(layout)
    commands = [["iptables", "-t", "nat", "-F", nat], ["iptables", "-t", "filter", "-F", guard]]
    for forward in forwards:
        commands.append(["iptables", "-t", "nat", "-A", nat, "-d", f"{forward.address}/32", "-p", "tcp", "--dport",
                         str(forward.port), "-m", "comment", "--comment", f"streamguard {forward.name}",
                         "-j", "DNAT", "--to-destination", f"127.0.0.1:{forward.target_port}"])
    commands.append(["iptables", "-t", "filter", "-A", guard, "-d", "127.0.0.0/8", "-m", "conntrack", "!",
                     "--ctstate", "DNAT", "-m", "comment", "--comment", "streamguard: only forwarded ports",
                     "-j", "DROP"])
    return commands


def hooks(layout: NodeLayout) -> list[tuple[str, str, list[str]]]:
    """``(table, built-in chain, rule)`` for the bridge only: jumps from the built-in chains into ours, and the
    rule keeping forwarded packets on the bridge."""
    nat, guard = chains(layout)
    return [("nat", "PREROUTING", ["-i", layout.bridge, "-j", nat]),
            ("filter", "INPUT", ["-i", layout.bridge, "-j", guard]),
            ("filter", "FORWARD", ["-i", layout.bridge, "!", "-o", layout.bridge, "-j", "DROP"])]


def _iptables(argv: list[str], check: bool = True) -> subprocess.CompletedProcess[str]:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if check and result.returncode != 0:
        raise NodeUnavailableError(f"{' '.join(argv)} failed ({result.returncode}): {result.stderr.strip()}")
    return result


def apply(layout: NodeLayout, forwards: list[Forward]) -> None:
    """Install (or refresh) this stack's forwards; safe to repeat."""
    conf = Path("/proc/sys/net/ipv4/conf") / layout.bridge
    (conf / "route_localnet").write_text("1\n")
    (conf / "forwarding").write_text("1\n")
    for table, chain in zip(("nat", "filter"), chains(layout), strict=True):
        _iptables(["iptables", "-t", table, "-N", chain], check=False)
    for command in install_commands(layout, forwards):
        _iptables(command)
    for table, builtin, rule in hooks(layout):
        if _iptables(["iptables", "-t", table, "-C", builtin, *rule], check=False).returncode != 0:
            _iptables(["iptables", "-t", table, "-I", builtin, "1", *rule])


def remove(layout: NodeLayout) -> None:
    """Remove this stack's hooks and chains (nothing else is touched); safe when they are absent."""
    for table, builtin, rule in hooks(layout):
        while _iptables(["iptables", "-t", table, "-D", builtin, *rule], check=False).returncode == 0:
            pass
    for table, chain in zip(("nat", "filter"), chains(layout), strict=True):
        _iptables(["iptables", "-t", table, "-F", chain], check=False)
        _iptables(["iptables", "-t", table, "-X", chain], check=False)
