"""The devstack's port picker (pure: sockets on loopback only)."""

import json
import socket
from pathlib import Path

import pytest

from streamguard.devstack import supervisor
from streamguard.devstack.stack import Stack
from streamguard.devstack.supervisor import PICKED_PORTS, free_port


def test_a_picked_port_is_outside_the_ephemeral_range_and_free() -> None:
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    ports = {free_port() for _ in range(20)}
    assert all(port in PICKED_PORTS and port < low for port in ports), ports
    assert len(ports) > 1, "picks are random, so two processes rarely get the same"
    for port in ports:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_a_port_in_use_is_never_picked(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        port = taken.getsockname()[1]
        monkeypatch.setattr(supervisor, "PICKED_PORTS", range(port, port + 1))
        with pytest.raises(RuntimeError, match="no free port"):
            free_port()
    assert free_port() == port


def test_a_port_already_picked_for_another_process_is_never_picked(monkeypatch: pytest.MonkeyPatch) -> None:
    port = free_port()
    monkeypatch.setattr(supervisor, "PICKED_PORTS", range(port, port + 1))
    with pytest.raises(RuntimeError, match="no free port"):
        free_port(taken=(port,))


def test_the_stack_gives_each_of_its_services_a_port_of_its_own(tmp_path: Path) -> None:
    """All are picked before any service listens, so a free port is free for every pick: each is excluded once
    chosen. A ``ports.json`` holding one port twice (written before that) keeps the first and picks anew."""
    first = Stack(tmp_path)._ports()
    assert len(set(first.values())) == len(first), first
    names = list(first)
    (tmp_path / "ports.json").write_text(json.dumps({**first, names[1]: first[names[0]]}))
    again = Stack(tmp_path)._ports()
    assert len(set(again.values())) == len(again), again
    assert again[names[0]] == first[names[0]] and again[names[1]] != first[names[0]]
    assert {name: again[name] for name in names[2:]} == {name: first[name] for name in names[2:]}
