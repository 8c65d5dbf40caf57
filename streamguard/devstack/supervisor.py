"""Start, track and stop the stack's processes.

Each service runs in its own session (so a stop reaches its children), logs to ``<run>/logs/<name>.log``
and is recorded in ``<run>/pids/<name>.pid`` together with its start time, so ``stop`` signals only a
process this stack started — never a stranger that reused the PID.
"""

import contextlib
import json
import os
import random
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from streamguard.devstack.provision import log_tail


class StartError(RuntimeError):
    """A service did not become ready; the message carries its log tail."""


class ServiceStartError(StartError):
    """A supervised process exited or never became ready: which one, why, and its log."""

    def __init__(self, service: str, reason: str, log: Path) -> None:
        super().__init__(f"{service} {reason}; log {log}:\n{log_tail(log)}")
        self.service = service
        self.reason = reason
        self.log = log


PICKED_PORTS = range(20000, 30000)
"""Where :func:`free_port` picks: below the kernel's ephemeral range (32768 and up by default), where no outgoing
connection takes a local port, and below the Kubernetes NodePort range (30000-32767)."""


def free_port(taken: Collection[int] = ()) -> int:
    """A loopback port free now, for a process started next to listen on, and not one of ``taken`` (ports picked
    for processes not listening yet: a CI run saw the stack give kube-proxy's metrics and SeaweedFS's filer one
    port). Picked outside the ephemeral range: a port from there can be taken by any outgoing connection between
    this pick and the listener's bind (a CI run saw a streaming job's metrics port taken so)."""
    tries = random.sample(PICKED_PORTS, min(200, len(PICKED_PORTS)))
    for port in tries:
        if port in taken:
            continue
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port among {len(tries)} tried in {PICKED_PORTS}")


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex((host, port)) == 0


def _start_time(pid: int) -> str | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return stat.rsplit(")", 1)[1].split()[19]


@dataclass(frozen=True)
class Service:
    name: str
    argv: Sequence[str]
    ready: Callable[[], bool]
    env: Mapping[str, str] | None = None
    cwd: Path | None = None
    timeout: float = 120.0


class Supervisor:
    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir
        self.logs = run_dir / "logs"
        self.pids = run_dir / "pids"

    def log_path(self, name: str) -> Path:
        return self.logs / f"{name}.log"

    def _pid_file(self, name: str) -> Path:
        return self.pids / f"{name}.pid"

    def running_pid(self, name: str) -> int | None:
        """The PID of our still-running service ``name``, or ``None``."""
        path = self._pid_file(name)
        if not path.exists():
            return None
        record = json.loads(path.read_text())
        pid = int(record["pid"])
        if _start_time(pid) != record["start"]:
            return None
        return pid

    def start(self, service: Service) -> bool:
        """Start ``service`` unless ours is already running; wait until ready. True if it was started."""
        if self.running_pid(service.name) is not None and _probe(service):
            return False
        self.stop(service.name)
        self.logs.mkdir(parents=True, exist_ok=True)
        self.pids.mkdir(parents=True, exist_ok=True)
        log = self.log_path(service.name)
        env = {**os.environ, **(service.env or {})}
        with log.open("ab") as out:
            process = subprocess.Popen(list(service.argv), stdout=out, stderr=subprocess.STDOUT,
                                       stdin=subprocess.DEVNULL, cwd=service.cwd, env=env,
                                       start_new_session=True)
        self._pid_file(service.name).write_text(
            json.dumps({"pid": process.pid, "start": _start_time(process.pid), "argv": list(service.argv)}))
        deadline = time.monotonic() + service.timeout
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise ServiceStartError(service.name, f"exited with code {process.returncode}", log)
            if _probe(service):
                return True
            time.sleep(0.5)
        raise ServiceStartError(service.name, f"not ready after {service.timeout:.0f}s", log)

    def stop(self, name: str, grace: float = 20.0) -> bool:
        """Stop our service ``name`` (its whole process group). True if something was stopped."""
        pid = self.running_pid(name)
        self._pid_file(name).unlink(missing_ok=True)
        if pid is None:
            return False
        try:
            os.killpg(pid, signal.SIGTERM)
        except ProcessLookupError:
            return False
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            if _start_time(pid) is None or _is_zombie(pid):
                return True
            time.sleep(0.2)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pid, signal.SIGKILL)
        return True


def _probe(service: Service) -> bool:
    """Run the readiness probe; any failure of the probe itself means "not ready yet"."""
    try:
        return service.ready()
    except Exception:
        return False


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True
