"""The demo's report of what blocks it (pure)."""

from typing import Any

from streamguard.demo.live import blockers, pod_blockers, rollout_state


def _item(name: str, *conditions: tuple[str, str, str]) -> dict[str, Any]:
    return {"metadata": {"name": name},
            "status": {"conditions": [{"type": t, "status": s, "reason": r, "message": f"{t} says {r}"}
                                      for t, s, r in conditions]}}


def test_names_the_resource_and_each_blocking_condition_ready_last() -> None:
    found = {
        "streamingwindows": [_item("account-activity", ("Ready", "False", "DeadLettering"),
                                   ("StreamRunning", "False", "DeadLettering"), ("Stalled", "False", "Ok"))],
        "featureviews": [_item("account-profile", ("Ready", "True", "Fresh"), ("Drifted", "True", "Drift"),
                               ("Deprecated", "False", "NoneDeprecated"))],
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


def _deployment(generation: int, observed: int, updated: int, available: int, condition: str) -> dict[str, Any]:
    return {"metadata": {"name": "sg-operator", "generation": generation},
            "spec": {"replicas": 1, "template": {"spec": {"containers": [{"image": "localhost/streamguard:abc"}]}}},
            "status": {"observedGeneration": observed, "replicas": 1, "updatedReplicas": updated,
                       "availableReplicas": available, "conditions": [{"type": "Available", "status": condition}]}}


def test_a_rolled_out_available_deployment_is_named_with_its_image() -> None:
    assert rollout_state(_deployment(2, 2, 1, 1, "True"), []) == (
        True, "deployment/sg-operator: available 1/1 (localhost/streamguard:abc)")


def test_a_deployment_not_available_names_its_pods_phase_and_what_keeps_them() -> None:
    pod = {"metadata": {"name": "sg-operator-x"}, "status": {"phase": "Pending", "containerStatuses": [
        {"name": "operator", "ready": False,
         "state": {"waiting": {"reason": "ErrImageNeverPull", "message": "image not on the node"}}}]}}
    available, line = rollout_state(_deployment(1, 1, 1, 0, "False"), [pod])
    assert not available
    assert line == ("deployment/sg-operator: available 0/1, updated 1/1; pods: sg-operator-x Pending; "
                    "pod/sg-operator-x: operator ErrImageNeverPull: image not on the node")


def test_an_available_deployment_still_rolling_to_a_new_generation_is_not_done() -> None:
    # The old pod is still Available, the controller has not yet seen the new template.
    available, line = rollout_state(_deployment(3, 2, 1, 1, "True"), [])
    assert not available and "pods: none" in line
