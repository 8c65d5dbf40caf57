"""Container probes (httpGet, tcpSocket, exec) against the local process, with kubelet's thresholds."""

import http.client
import socket
import subprocess
import time
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass

from streamguard.devkubelet.spec import Launch, Obj


@dataclass
class ProbeState:
    """Thresholds and running counts of one probe of one container instance."""

    spec: Obj
    started_at: float
    successes: int = 0
    failures: int = 0
    result: bool | None = None
    """Last verdict after thresholds: None until the first decision."""
    next_due: float = 0.0
    future: "Future[tuple[bool, str]] | None" = None
    last_message: str = ""

    def __post_init__(self) -> None:
        self.next_due = self.started_at + float(self.spec.get("initialDelaySeconds", 0))

    @property
    def period(self) -> float:
        return float(self.spec.get("periodSeconds", 10))

    @property
    def timeout(self) -> float:
        return float(self.spec.get("timeoutSeconds", 1))

    def record(self, ok: bool, message: str) -> None:
        self.future = None
        self.next_due = time.monotonic() + self.period
        self.last_message = message
        if ok:
            self.successes, self.failures = self.successes + 1, 0
            if self.successes >= int(self.spec.get("successThreshold", 1)):
                self.result = True
        else:
            self.failures, self.successes = self.failures + 1, 0
            if self.failures >= int(self.spec.get("failureThreshold", 3)):
                self.result = False


def _port(value: object, ports: Mapping[str, int], declared: list[Obj]) -> int:
    """A probe's port (a number or a port name) -> the local port assigned to it."""
    if isinstance(value, str) and not value.isdigit():
        if value not in ports:
            raise ValueError(f"probe port {value!r} is not a declared container port")
        return ports[value]
    number = int(str(value))
    for port in declared:
        if int(port["containerPort"]) == number:
            return ports.get(str(port.get("name") or number), number)
    return number


def run_probe(spec: Obj, launch: Launch, declared_ports: list[Obj], timeout: float) -> tuple[bool, str]:
    """Run one probe once; returns (success, message)."""
    try:
        if "httpGet" in spec:
            action = spec["httpGet"]
            port = _port(action.get("port"), launch.ports, declared_ports)
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
            try:
                connection.request("GET", action.get("path", "/"))
                status = connection.getresponse().status
            finally:
                connection.close()
            return 200 <= status < 400, f"HTTP probe on :{port}{action.get('path', '/')} returned {status}"
        if "tcpSocket" in spec:
            port = _port(spec["tcpSocket"].get("port"), launch.ports, declared_ports)
            with socket.create_connection(("127.0.0.1", port), timeout=timeout):
                return True, f"TCP :{port} open"
        if "exec" in spec:
            command = [str(part) for part in spec["exec"].get("command", [])]
            result = subprocess.run(command, env=launch.env, cwd=launch.cwd, capture_output=True, text=True,
                                    timeout=timeout, check=False)
            return result.returncode == 0, f"exec {command[:1]} exited {result.returncode}: {result.stdout[-200:]}"
        return False, f"unsupported probe {sorted(spec)}"
    except (OSError, ValueError, subprocess.TimeoutExpired, http.client.HTTPException) as error:
        return False, f"probe failed: {error}"


def due(state: ProbeState, now: float | None = None) -> bool:
    return state.future is None and (now or time.monotonic()) >= state.next_due
