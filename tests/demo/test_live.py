"""The demo's report of what blocks it (pure)."""

from typing import Any

from streamguard.demo.live import blockers, pod_blockers


def _item(name: str, *conditions: tuple[str, str, str]) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "status": {"conditions": [{"type": t, "status": s, "reason": r, "message": f"{t} says {r}"}
                                      for t, s, r in conditions]}}


def test_names_the_resource_and_each_blocking_condition_ready_last() -> None:
    found = {
        "streamingwindows": [_item("account-activity", ("Ready", "False", "DeadLettering"),
                                   ("StreamRunning", "False", "DeadLettering"), ("Stalled", "False", "Ok"))],
        "featureviews": [_item("account-profile", ("Ready", "True", "Fresh"), ("Drifted", "True", "Drift"))],
    }
    assert blockers(found) == [
        "streamingwindow/account-activity: StreamRunning=False DeadLettering: StreamRunning says DeadLettering",
        "streamingwindow/account-activity: Ready=False DeadLettering: Ready says DeadLettering",
    ]


def test_stalled_true_and_a_missing_status_block() -> None:
    found: dict[str, list[dict[str, Any]]] = {
        "driftmonitors": [_item("drift", ("Stalled", "True", "BadReference")), {"metadata": {"name": "new"}}],
    }
    assert blockers(found) == [
        "driftmonitor/drift: Stalled=True BadReference: Stalled says BadReference",
        "driftmonitor/new: no status yet (is the operator running?)",
    ]


def test_pods_name_what_keeps_them_from_ready() -> None:
    pods: list[dict[str, Any]] = [
        {"metadata": {"name": "stream-1"}, "status": {"phase": "Pending", "conditions": [
            {"type": "PodScheduled", "status": "False", "reason": "Unschedulable", "message": "taint"}]}},
        {"metadata": {"name": "serving-1"}, "status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "False"}], "containerStatuses": [
            {"name": "serving", "ready": False, "state": {"waiting": {"reason": "CrashLoopBackOff",
                                                                      "message": "back-off 20s"}},
             "lastState": {"terminated": {"exitCode": 1, "reason": "Error"}}}]}},
        {"metadata": {"name": "ok-1"}, "status": {"phase": "Running", "conditions": [
            {"type": "Ready", "status": "True"}]}},
        {"metadata": {"name": "job-1"}, "status": {"phase": "Succeeded"}},
    ]
    assert pod_blockers(pods) == [
        "pod/stream-1: PodScheduled=False Unschedulable: taint",
        "pod/serving-1: serving CrashLoopBackOff: back-off 20s; last exit 1 Error",
    ]
