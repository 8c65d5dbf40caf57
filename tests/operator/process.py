"""The operator as a process of its own (``streamguard operator run``), for the tests and the operator benchmark."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx

from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.supervisor import free_port


class OperatorProcess:
    """``streamguard operator run -n <namespace>`` with a metrics port to count its API calls."""

    def __init__(
        self,
        namespace: str,
        env: dict[str, str],
        log: Path,
        kubeconfig: str | None = None,
        peering: tuple[str, int] | None = None,
        verbose: bool = True,
    ) -> None:
        self.namespace = namespace
        self.verbose = verbose
        self.peering = peering
        self.env = env
        self.log = log
        self.kubeconfig = kubeconfig
        self.process: subprocess.Popen[bytes] | None = None
        self.port = 0

    def start(self) -> "OperatorProcess":
        self.port = free_port()
        command = [
            str(Path(sys.executable).parent / "streamguard"),
            "operator",
            "run",
            "-n",
            self.namespace,
            "--metrics-port",
            str(self.port),
        ]
        if self.verbose:
            command.append("--verbose")
        if self.peering:
            command += ["--peering", self.peering[0], "--priority", str(self.peering[1])]
        else:
            command.append("--standalone")
        if self.kubeconfig:
            command += ["--kubeconfig", self.kubeconfig]
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(command, env=self.env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert self.process.poll() is None, f"operator exited:\n{self.log.read_text()[-3000:]}"
            try:
                if self.metrics():
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError(f"operator did not start:\n{self.log.read_text()[-3000:]}")

    def metrics(self) -> dict[str, float]:
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        values: dict[str, float] = {}
        for line in text.splitlines():
            if line.startswith("streamguard_operator_"):
                name, _, value = line.rpartition(" ")
                values[name] = float(value)
        return values

    def calls(self) -> dict[str, int]:
        """The operator's API requests so far, per verb."""
        totals: dict[str, int] = {}
        for name, value in self.metrics().items():
            if name.startswith("streamguard_operator_api_requests_total"):
                verb = name.split('verb="')[1].split('"')[0]
                totals[verb] = totals.get(verb, 0) + int(value)
        return totals

    def writes(self) -> int:
        return sum(count for verb, count in self.calls().items() if verb in ("apply", "patch", "create", "delete"))

    def peak_rss_mib(self) -> float:
        """The process's peak resident set so far (Linux ``VmHWM``)."""
        assert self.process is not None
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
        raise RuntimeError("no VmHWM in /proc/<pid>/status")

    def wait_idle(self, settle: float = 1.5, timeout: float = 60) -> None:
        """Until nothing is queued or running and no API call happened for ``settle`` seconds."""
        deadline = time.monotonic() + timeout
        last: dict[str, float] | None = None
        quiet_since = time.monotonic()
        while time.monotonic() < deadline:
            current = self.metrics()
            if current != last:
                last, quiet_since = current, time.monotonic()
            elif current.get("streamguard_operator_idle") == 1.0 and time.monotonic() - quiet_since >= settle:
                return
            time.sleep(0.25)
        raise AssertionError("operator did not become idle")

    def stop(self, kill: bool = False) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGKILL if kill else signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def operator_env(stack: Endpoints, **settings: str) -> dict[str, str]:
    env = {**os.environ, **stack.env()}
    env.update({f"STREAMGUARD_OPERATOR_{key.upper()}": value for key, value in settings.items()})
    return env
