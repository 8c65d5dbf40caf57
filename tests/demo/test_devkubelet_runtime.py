"""Unit tests of devkubelet's pod phase, restart policy and status rendering (pure state, no processes)."""

import time
from pathlib import Path

from streamguard.devkubelet.runtime import BACKOFF_BASE, ContainerRun, PodRun, restart_wanted


def pod_run(policy: str, *containers: ContainerRun) -> PodRun:
    pod = {"metadata": {"name": "p", "namespace": "n", "uid": "u"},
           "spec": {"restartPolicy": policy, "containers": [c.spec for c in containers]}}
    return PodRun(namespace="n", name="p", uid="u", pod=pod, directory=Path("/nonexistent"),
                  log_path=Path("/nonexistent.log"), containers=list(containers))


def exited(code: int) -> ContainerRun:
    run = ContainerRun(spec={"name": f"c{code}", "image": "x"})
    run.terminated = {"exitCode": code, "reason": "Completed" if code == 0 else "Error"}
    return run


def test_restart_policies() -> None:
    assert restart_wanted("Always", 0) and restart_wanted("Always", 1)
    assert restart_wanted("OnFailure", 2) and not restart_wanted("OnFailure", 0)
    assert not restart_wanted("Never", 1)


def test_terminal_phases_follow_exit_codes() -> None:
    assert pod_run("Never", exited(0), exited(0)).phase() == "Succeeded"
    assert pod_run("Never", exited(0), exited(3)).phase() == "Failed"
    waiting = ContainerRun(spec={"name": "w", "image": "x"})
    assert pod_run("Never", waiting).phase() == "Pending"


def test_status_of_a_finished_job_pod() -> None:
    run = pod_run("Never", exited(3))
    run.prepared = True
    status = run.status()
    assert status["phase"] == "Failed"
    conditions = {c["type"]: c for c in status["conditions"]}
    assert conditions["Ready"]["status"] == "False"
    assert conditions["Ready"]["reason"] == "PodCompleted"
    assert status["containerStatuses"][0]["state"]["terminated"]["exitCode"] == 3


def test_crash_loop_backoff_grows_and_is_reported() -> None:
    run = exited(1)
    run.started_mono = time.monotonic()
    run.schedule_restart()
    assert run.restart_count == 1 and run.waiting[0] == "ContainerCreating"
    run.terminated = {"exitCode": 1, "reason": "Error"}
    run.started_mono = time.monotonic()
    run.schedule_restart()
    assert run.restart_count == 2
    assert run.waiting == ("CrashLoopBackOff", f"back-off {BACKOFF_BASE:.0f}s restarting failed container=c1")
    status = run.status()
    assert status["state"] == {"waiting": {"reason": "CrashLoopBackOff", "message": run.waiting[1]}}
    assert status["lastState"]["terminated"]["exitCode"] == 1
    assert pod_run("Always", run).phase() == "Running"


def test_condition_times_move_only_on_change() -> None:
    run = pod_run("Always", ContainerRun(spec={"name": "c", "image": "x"}))
    first = {c["type"]: c["lastTransitionTime"] for c in run.status()["conditions"]}
    run.transitions["Ready"] = ("False", "2000-01-01T00:00:00Z")
    again = {c["type"]: c["lastTransitionTime"] for c in run.status()["conditions"]}
    assert again["Ready"] == "2000-01-01T00:00:00Z"
    assert again["PodScheduled"] == first["PodScheduled"]
