"""Containers as local processes: start, poll, restart with backoff, stop; and the pod status they imply."""

import contextlib
import os
import signal
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from streamguard.devkubelet.node import now
from streamguard.devkubelet.probes import ProbeState
from streamguard.devkubelet.spec import Launch, Obj

BACKOFF_BASE = 5.0
BACKOFF_CAP = 120.0
BACKOFF_RESET_AFTER = 60.0
"""A container that ran this long before exiting restarts without accumulated backoff."""


@dataclass
class ContainerRun:
    spec: Obj
    launch: Launch | None = None
    process: "subprocess.Popen[bytes] | None" = None
    restart_count: int = 0
    started_at: str | None = None
    started_mono: float = 0.0
    waiting: tuple[str, str] = ("ContainerCreating", "")
    terminated: Obj | None = None
    last_terminated: Obj | None = None
    backoff_until: float = 0.0
    crash_streak: int = 0
    stop_deadline: float | None = None
    stop_reason: str = ""
    probes: dict[str, ProbeState] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return str(self.spec["name"])

    @property
    def running(self) -> bool:
        return self.process is not None

    @property
    def ready(self) -> bool:
        if not self.running or self.stop_deadline is not None:
            return False
        if "startupProbe" in self.probes and self.probes["startupProbe"].result is not True:
            return False
        readiness = self.probes.get("readinessProbe")
        return readiness is None or readiness.result is True

    def start(self, launch: Launch, log: IO[bytes]) -> None:
        header = f"--- devkubelet {now()} container {self.name} start #{self.restart_count}: {launch.argv}\n"
        log.write(header.encode())
        log.flush()
        self.launch = launch
        self.process = subprocess.Popen(launch.argv, env=launch.env, cwd=launch.cwd, stdout=log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.started_at, self.started_mono = now(), time.monotonic()
        self.terminated, self.stop_deadline, self.stop_reason = None, None, ""
        mono = time.monotonic()
        self.probes = {kind: ProbeState(self.spec[kind], mono)
                       for kind in ("startupProbe", "readinessProbe", "livenessProbe") if self.spec.get(kind)}

    def poll(self) -> int | None:
        """The exit code once the process has ended (recorded as ``terminated``), else ``None``."""
        if self.process is None:
            return None
        code = self.process.poll()
        if code is None:
            if self.stop_deadline is not None and time.monotonic() > self.stop_deadline:
                self._signal(signal.SIGKILL)
            return None
        self._signal(signal.SIGKILL)
        reason = self.stop_reason or ("Completed" if code == 0 else "Error")
        exit_code = 128 - code if code < 0 else code
        self.terminated = {"exitCode": exit_code, "reason": reason, "startedAt": self.started_at, "finishedAt": now(),
                           "containerID": f"devkubelet://{self.process.pid}"}
        self.process, self.probes = None, {}
        return exit_code

    def stop(self, grace: float, reason: str = "Killed") -> None:
        """Ask the process to stop (SIGTERM to its group); SIGKILL once ``grace`` seconds have passed."""
        if self.process is None or self.stop_deadline is not None:
            return
        self.stop_reason = reason
        self.stop_deadline = time.monotonic() + grace
        self._signal(signal.SIGTERM)

    def _signal(self, number: int) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(self.process.pid, number)

    def schedule_restart(self) -> None:
        """After an exit: the next start waits for the crash-loop backoff."""
        ran = time.monotonic() - self.started_mono
        self.crash_streak = 1 if ran >= BACKOFF_RESET_AFTER else self.crash_streak + 1
        delay = 0.0 if self.crash_streak == 1 else min(BACKOFF_BASE * 2 ** (self.crash_streak - 2), BACKOFF_CAP)
        self.backoff_until = time.monotonic() + delay
        self.last_terminated, self.terminated = self.terminated, None
        self.restart_count += 1
        message = f"back-off {delay:.0f}s restarting failed container={self.name}"
        self.waiting = ("CrashLoopBackOff", message) if delay else ("ContainerCreating", "")

    def status(self) -> Obj:
        state: Obj
        if self.process is not None and self.launch is not None:
            state = {"running": {"startedAt": self.started_at}}
        elif self.terminated is not None:
            state = {"terminated": self.terminated}
        else:
            reason, message = self.waiting
            state = {"waiting": {"reason": reason, **({"message": message} if message else {})}}
        result: Obj = {
            "name": self.name,
            "image": self.spec.get("image", ""),
            "imageID": "",
            "ready": self.ready,
            "started": self.running,
            "restartCount": self.restart_count,
            "state": state,
            "lastState": {"terminated": self.last_terminated} if self.last_terminated else {},
        }
        if self.process is not None:
            result["containerID"] = f"devkubelet://{self.process.pid}"
        return result


def restart_wanted(policy: str, exit_code: int) -> bool:
    return policy == "Always" or (policy == "OnFailure" and exit_code != 0)


@dataclass
class PodRun:
    """What devkubelet knows about one pod bound to its node."""

    namespace: str
    name: str
    uid: str
    pod: Obj
    directory: Path
    log_path: Path
    containers: list[ContainerRun]
    start_time: str = field(default_factory=now)
    prepared: bool = False
    retry_at: float = 0.0
    transitions: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Condition type -> (status, lastTransitionTime), so times move only on change."""
    last_status: Obj | None = None
    log: IO[bytes] | None = None

    @property
    def policy(self) -> str:
        return str(self.pod["spec"].get("restartPolicy", "Always"))

    def phase(self) -> str:
        containers = self.containers
        if all(c.terminated is not None and not c.running for c in containers):
            if all(c.terminated and c.terminated["exitCode"] == 0 for c in containers):
                return "Succeeded"
            return "Failed"
        if any(c.running or c.restart_count > 0 for c in containers):
            return "Running"
        return "Pending"

    def _condition(self, kind: str, ok: bool, reason: str = "", message: str = "") -> Obj:
        status = "True" if ok else "False"
        previous = self.transitions.get(kind)
        if previous is None or previous[0] != status:
            self.transitions[kind] = (status, now())
        condition: Obj = {"type": kind, "status": status, "lastProbeTime": None,
                          "lastTransitionTime": self.transitions[kind][1]}
        if reason:
            condition.update(reason=reason, message=message)
        return condition

    def status(self) -> Obj:
        """The pod's ``status`` as a kubelet would report it."""
        phase = self.phase()
        unready = [c.name for c in self.containers if not c.ready]
        terminal = phase in ("Succeeded", "Failed")
        ready = not unready and not terminal
        why = "PodCompleted" if terminal else "ContainersNotReady"
        message = "" if ready or terminal else f"containers with unready status: [{' '.join(unready)}]"
        conditions = [
            self._condition("PodReadyToStartContainers", self.prepared),
            self._condition("Initialized", True),
            self._condition("Ready", ready, "" if ready else why, message),
            self._condition("ContainersReady", ready, "" if ready else why, message),
            self._condition("PodScheduled", True),
        ]
        return {
            "phase": phase,
            "conditions": conditions,
            "hostIP": "127.0.0.1",
            "hostIPs": [{"ip": "127.0.0.1"}],
            "startTime": self.start_time,
            "qosClass": self.pod.get("status", {}).get("qosClass", "BestEffort"),
            "containerStatuses": [c.status() for c in self.containers],
        }


def without_times(status: Any) -> Any:
    """A status with volatile fields removed, to decide whether a patch is needed."""
    if isinstance(status, dict):
        return {k: without_times(v) for k, v in status.items() if k not in ("lastHeartbeatTime", "lastProbeTime")}
    if isinstance(status, list):
        return [without_times(item) for item in status]
    return status
