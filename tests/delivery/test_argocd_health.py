"""The Argo CD health checks (Lua) shipped with the chart, run in a real Lua interpreter (lupa)."""

import json
import re
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import yaml
from lupa import LuaRuntime

from streamguard.devstack.endpoints import Endpoints
from tests.delivery.conftest import CHART, REPO

SCRIPT = CHART / "files" / "argocd-health" / "streamguard.lua"
SCRIPTS = {kind: SCRIPT for kind in ("FeatureView", "StreamingWindow", "DriftMonitor")}
"""One script for every kind (Argo CD registers it once per kind); the tests run it as each."""


def health(script: Path, obj: dict[str, Any]) -> tuple[str, str]:
    """Run one health script the way Argo CD does: ``obj`` global in, ``{status, message}`` out."""
    lua = LuaRuntime(unpack_returned_tuples=True)

    def to_lua(value: Any) -> Any:
        if isinstance(value, dict):
            return lua.table_from({k: to_lua(v) for k, v in value.items()})
        if isinstance(value, list):
            return lua.table_from([to_lua(v) for v in value])
        return value

    lua.globals().obj = to_lua(obj)
    result = lua.execute(script.read_text())
    return str(result["status"]), str(result["message"])


def condition(kind: str, status: str, reason: str, message: str = "", generation: int = 2) -> dict[str, Any]:
    return {"type": kind, "status": status, "reason": reason, "message": message,
            "observedGeneration": generation, "lastTransitionTime": "2026-01-01T00:00:00Z"}


def resource(kind: str, conditions: list[dict[str, Any]] | None, generation: int = 2,
             observed: int | None = 2) -> dict[str, Any]:
    obj: dict[str, Any] = {"apiVersion": "streamguard.dev/v1alpha1", "kind": kind,
                           "metadata": {"name": "x", "namespace": "ns", "generation": generation}}
    if conditions is not None:
        obj["status"] = {"conditions": conditions, **({"observedGeneration": observed} if observed else {})}
    return obj


@pytest.mark.parametrize("kind", SCRIPTS)
def test_no_status_is_progressing(kind: str) -> None:
    assert health(SCRIPTS[kind], resource(kind, None)) == (
        "Progressing", "Waiting for the operator to report status")


@pytest.mark.parametrize("kind", SCRIPTS)
def test_old_generation_is_progressing(kind: str) -> None:
    obj = resource(kind, [condition("Ready", "True", "Reconciled", generation=1)], generation=2, observed=1)
    assert health(SCRIPTS[kind], obj) == ("Progressing", "Waiting for the operator to observe generation 2")


@pytest.mark.parametrize("kind", SCRIPTS)
def test_ready_is_healthy(kind: str) -> None:
    obj = resource(kind, [condition("Ready", "True", "Reconciled", "all children applied"),
                          condition("Reconciling", "False", "Done"), condition("Stalled", "False", "Done")])
    assert health(SCRIPTS[kind], obj) == ("Healthy", "Reconciled: all children applied")


@pytest.mark.parametrize("kind", SCRIPTS)
def test_reconciling_is_progressing(kind: str) -> None:
    obj = resource(kind, [condition("Ready", "False", "Reconciling"),
                          condition("Reconciling", "True", "Applying", "waiting for the Deployment")])
    assert health(SCRIPTS[kind], obj) == ("Progressing", "Applying: waiting for the Deployment")


@pytest.mark.parametrize("kind", SCRIPTS)
def test_stalled_is_degraded(kind: str) -> None:
    obj = resource(kind, [condition("Ready", "False", "InvalidSchema"),
                          condition("Reconciling", "False", "Stalled"),
                          condition("Stalled", "True", "InvalidSchema", "spec.keyField: 'x' is not in the schema")])
    assert health(SCRIPTS[kind], obj) == ("Degraded", "InvalidSchema: spec.keyField: 'x' is not in the schema")


@pytest.mark.parametrize("kind", SCRIPTS)
def test_not_ready_and_not_reconciling_is_degraded(kind: str) -> None:
    obj = resource(kind, [condition("Ready", "False", "Stale", "newest data is 2h old")])
    assert health(SCRIPTS[kind], obj) == ("Degraded", "Stale: newest data is 2h old")


@pytest.mark.parametrize("kind", SCRIPTS)
def test_conditions_of_an_older_generation_are_ignored(kind: str) -> None:
    obj = resource(kind, [condition("Ready", "True", "Reconciled", generation=1)], generation=2, observed=2)
    assert health(SCRIPTS[kind], obj) == ("Progressing", "Waiting for the Ready condition")


def test_stale_feature_view_says_why() -> None:
    obj = resource("FeatureView", [condition("Ready", "False", "NotFresh", "stale"),
                                   condition("Fresh", "False", "SlaExceeded", "newest row is 3h old, SLA 1h")])
    assert health(SCRIPTS["FeatureView"], obj) == (
        "Degraded", "NotFresh: stale (Fresh: SlaExceeded: newest row is 3h old, SLA 1h)")


def test_stopped_stream_says_why() -> None:
    obj = resource("StreamingWindow", [condition("Ready", "False", "StreamDown", "job not running"),
                                       condition("StreamRunning", "False", "CrashLoop", "3 restarts")])
    assert health(SCRIPTS["StreamingWindow"], obj) == (
        "Degraded", "StreamDown: job not running (StreamRunning: CrashLoop: 3 restarts)")


def test_drift_stays_healthy_and_shows_in_the_message() -> None:
    obj = resource("DriftMonitor", [condition("Ready", "True", "Reconciled", "exporter running"),
                                    condition("Drifted", "True", "DriftDetected", "3 of 8 features drifted")])
    assert health(SCRIPTS["DriftMonitor"], obj) == (
        "Healthy", "Reconciled: exporter running (Drifted: DriftDetected: 3 of 8 features drifted)")
    no_drift = resource("DriftMonitor", [condition("Ready", "True", "Reconciled", "exporter running"),
                                         condition("Drifted", "False", "NoDrift", "")])
    assert health(SCRIPTS["DriftMonitor"], no_drift) == ("Healthy", "Reconciled: exporter running")


PHASE_HEALTH = {"Ready": "Healthy", "Reconciling": "Progressing", "Stalled": "Degraded", "Degraded": "Degraded"}


@pytest.mark.parametrize("kind", SCRIPTS)
@pytest.mark.parametrize("phase", PHASE_HEALTH)
def test_operator_statuses_map_to_argo_health(kind: str, phase: str) -> None:
    """The statuses the operator writes (streamguard.operator.status) read as the matching health."""
    from streamguard.operator.status import Verdict, desired_status

    verdict = Verdict(phase=phase, reason=f"Why{phase}", message=f"{phase} because")  # type: ignore[arg-type]
    status = desired_status(kind, "ns", "x", 3, verdict, None, timestamp="2026-01-01T00:00:00Z")
    assert status is not None
    obj = {"apiVersion": "streamguard.dev/v1alpha1", "kind": kind,
           "metadata": {"name": "x", "namespace": "ns", "generation": 3}, "status": status["status"]}
    assert health(SCRIPTS[kind], obj) == (PHASE_HEALTH[phase], f"Why{phase}: {phase} because")


def operator_status(kind: str, verdict: Any, generation: int = 3) -> dict[str, Any]:
    from streamguard.operator.status import desired_status

    status = desired_status(kind, "ns", "x", generation, verdict, None, timestamp="2026-01-01T00:00:00Z")
    assert status is not None
    return {"apiVersion": "streamguard.dev/v1alpha1", "kind": kind,
            "metadata": {"name": "x", "namespace": "ns", "generation": generation}, "status": status["status"]}


def test_stream_down_past_its_grace_is_degraded_with_the_jobs_reason() -> None:
    """The verdict the operator writes when StreamRunning stayed False too long, beside the job's own condition."""
    from streamguard.operator.status import Verdict

    down = "StreamRunning=False since 2026-01-01T00:00:00Z: 14% of records dead-lettered (schema id 1 unknown)"
    obj = operator_status("StreamingWindow", Verdict("Degraded", "DeadLettering", down))
    obj["status"]["conditions"].append(
        condition("StreamRunning", "False", "DeadLettering", "14% of records dead-lettered (schema id 1 unknown)", 3))
    assert health(SCRIPTS["StreamingWindow"], obj) == (
        "Degraded", f"DeadLettering: {down} (StreamRunning: DeadLettering: 14% of records dead-lettered "
        "(schema id 1 unknown))")
    missing = operator_status("StreamingWindow", Verdict("Degraded", "TopicMissing", "Kafka topic 'x' does not exist"))
    assert health(SCRIPTS["StreamingWindow"], missing) == ("Degraded", "TopicMissing: Kafka topic 'x' does not exist")


FLUX_STATUS = {"Ready": "Current", "Reconciling": "InProgress", "Stalled": "Failed", "Degraded": "Failed"}


def flux_health(exprs: dict[str, str], obj: dict[str, Any]) -> str:
    """Flux's order (RFC 0009): observedGeneration, then inProgress, failed, current; none true: InProgress."""
    import celpy
    from celpy.adapter import json_to_cel

    if obj.get("status", {}).get("observedGeneration", obj["metadata"]["generation"]) != obj["metadata"]["generation"]:
        return "InProgress"
    env = celpy.Environment()
    activation = {key: json_to_cel(value) for key, value in obj.items()}
    for field, result in (("inProgress", "InProgress"), ("failed", "Failed"), ("current", "Current")):
        if field in exprs and bool(env.program(env.compile(exprs[field])).evaluate(activation)):
            return result
    return "InProgress"


def documented_flux_checks() -> dict[str, dict[str, str]]:
    text = (REPO / "docs" / "gitops.md").read_text()
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", text, re.S) if "healthCheckExprs" in b)
    return {check["kind"]: check for check in yaml.safe_load(block)["spec"]["healthCheckExprs"]}


def test_documented_flux_health_checks_cover_every_kind() -> None:
    assert set(documented_flux_checks()) == set(SCRIPTS)


@pytest.mark.parametrize("kind", SCRIPTS)
@pytest.mark.parametrize("phase", FLUX_STATUS)
def test_documented_flux_health_checks_read_operator_statuses(kind: str, phase: str) -> None:
    from streamguard.operator.status import Verdict

    obj = operator_status(kind, Verdict(phase=phase, reason=f"Why{phase}", message="because"))  # type: ignore[arg-type]
    assert flux_health(documented_flux_checks()[kind], obj) == FLUX_STATUS[phase]
    behind = {**obj, "metadata": {**obj["metadata"], "generation": 4}}
    assert flux_health(documented_flux_checks()[kind], behind) == "InProgress"


@pytest.mark.stack
def test_documented_argocd_install_merges_into_argocd_cm(
    stack: Endpoints, kubectl: Callable[..., subprocess.CompletedProcess[str]], namespace: str
) -> None:
    """The command in docs/gitops.md, run as written (in a scratch namespace instead of argocd)."""
    text = (REPO / "docs" / "gitops.md").read_text()
    snippet = next(block for block in re.findall(r"```bash\n(.*?)```", text, re.S) if "argocd-cm" in block)
    kubectl("create", "configmap", "argocd-cm", "-n", namespace, "--from-literal=url=https://argo.example")
    env = {"PATH": f"{stack.bin_dir}:/usr/bin:/bin", "KUBECONFIG": stack.kubeconfig}
    result = subprocess.run(["bash", "-euo", "pipefail", "-c", snippet.replace("-n argocd", f"-n {namespace}")],
                            cwd=REPO, env=env, capture_output=True, text=True, check=False, timeout=60)
    assert result.returncode == 0, result.stderr
    data = json.loads(kubectl("get", "configmap", "argocd-cm", "-n", namespace, "-o", "json").stdout)["data"]
    assert data["url"] == "https://argo.example"
    for kind, script in SCRIPTS.items():
        assert data[f"resource.customizations.health.streamguard.dev_{kind}"] == script.read_text()
