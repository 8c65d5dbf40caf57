"""What "features are live" means, checked through the same interfaces a user has: the API and HTTP."""

import json
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from streamguard.api.common import GROUP, VERSION
from streamguard.api.kinds import FEATURE_VIEW, PLURALS
from streamguard.demo.manifests import OFFLINE_TABLES, feast_registry, offline_location
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.kube import Kube, KubeError

if TYPE_CHECKING:
    from streamguard.demo.run import DemoState

Obj = dict[str, Any]
REALTIME_VIEW = "account-realtime"
REALTIME_FEATURES = ("txn_count_1m", "amount_sum_1m", "amount_max_1m", "txn_count_5m", "txn_count_1h")


def resources(kube: Kube, namespace: str) -> dict[str, list[Obj]]:
    found: dict[str, list[Obj]] = {}
    for plural in PLURALS.values():
        try:
            found[plural] = kube.request("GET", f"/apis/{GROUP}/{VERSION}/namespaces/{namespace}/{plural}")["items"]
        except KubeError:
            found[plural] = []
    return found


def condition(obj: Obj, kind: str) -> Obj | None:
    for item in (obj.get("status") or {}).get("conditions") or []:
        if item.get("type") == kind:
            return dict(item)
    return None


def not_ready(kube: Kube, namespace: str) -> list[str]:
    """Every custom resource whose Ready condition is not True, with its reason."""
    pending = []
    for plural, items in resources(kube, namespace).items():
        for item in items:
            ready = condition(item, "Ready") or {}
            if ready.get("status") != "True":
                reason = f"{ready.get('reason', 'no status yet')}: {ready.get('message', '')}".strip(": ")
                pending.append(f"{plural[:-1]}/{item['metadata']['name']} ({reason[:160]})")
    return pending


TRUE_IS_BAD = frozenset({"Stalled", "Reconciling", "Drifted"})
"""Conditions whose ``True`` means trouble or work in progress (kstatus abnormal-true and drift)."""
FINDINGS = frozenset({"Drifted", "Deprecated"})
"""Conditions that report a finding about the data or the spec, never a blocker."""
BLOCKING_AFTER_S = 120.0
"""From then on the demo's waiting lines name the conditions that block, not only the awaited value."""


def blocking(kube: Kube, namespace: str) -> list[str]:
    """What blocks the resources (their conditions), then what blocks their pods on the node."""
    pods = kube.request("GET", f"/api/v1/namespaces/{namespace}/pods").get("items", [])
    return blockers(resources(kube, namespace)) + pod_blockers(pods)


def pod_blockers(pods: list[Obj]) -> list[str]:
    """Every pod that is neither Ready nor finished, with what keeps it: unschedulable, a container
    waiting (``ErrImageNeverPull``, ``CrashLoopBackOff``: its last exit), or not passing its probe."""
    found = []
    for pod in pods:
        status = pod.get("status") or {}
        if status.get("phase") in ("Succeeded", "Failed") and not pod["metadata"].get("deletionTimestamp"):
            if status.get("phase") == "Failed":
                found.append(f"pod/{pod['metadata']['name']}: Failed {status.get('reason', '')}".strip())
            continue
        conditions = {c.get("type"): c for c in status.get("conditions") or []}
        if (conditions.get("Ready") or {}).get("status") == "True":
            continue
        why = []
        scheduled = conditions.get("PodScheduled") or {}
        if scheduled.get("status") == "False":
            why.append(f"PodScheduled=False {scheduled.get('reason', '')}: {scheduled.get('message', '')}")
        for container in status.get("containerStatuses") or []:
            waiting = (container.get("state") or {}).get("waiting")
            last = (container.get("lastState") or {}).get("terminated")
            if waiting:
                why.append(f"{container['name']} {waiting.get('reason', 'Waiting')}: {waiting.get('message', '')}")
            elif not container.get("ready"):
                why.append(f"{container['name']} not ready (probe failing)")
            if last:
                why.append(f"last exit {last.get('exitCode')} {last.get('reason', '')}")
        text = "; ".join(line.strip(": ") for line in why) or f"phase {status.get('phase', 'unknown')}"
        found.append(f"pod/{pod['metadata']['name']}: {text[:240]}")
    return found


def operator_selector(release: str) -> str:
    return f"app.kubernetes.io/instance={release},app.kubernetes.io/component=operator"


def operator_state(kube: Kube, namespace: str, release: str) -> tuple[bool, str]:
    """:func:`rollout_state` of the operator's Deployment of Helm release ``release``."""
    query = {"labelSelector": operator_selector(release)}
    found = kube.request("GET", f"/apis/apps/v1/namespaces/{namespace}/deployments", query=query).get("items", [])
    if not found:
        return False, f"no operator Deployment of release {release} in {namespace}"
    pods = kube.request("GET", f"/api/v1/namespaces/{namespace}/pods", query=query).get("items", [])
    return rollout_state(found[0], pods)


def rollout_state(deployment: Obj, pods: list[Obj]) -> tuple[bool, str]:
    """Whether ``deployment`` has rolled out and is Available (its pods pass their readiness probe), and a
    line saying so, or naming its pods' phases and what keeps them (:func:`pod_blockers`)."""
    name, spec, status = deployment["metadata"]["name"], deployment["spec"], deployment.get("status") or {}
    wanted = int(spec.get("replicas", 1))
    available = (condition(deployment, "Available") or {}).get("status") == "True"
    rolled_out = (status.get("observedGeneration", 0) >= deployment["metadata"].get("generation", 0)
                  and status.get("updatedReplicas", 0) == wanted == status.get("availableReplicas", 0)
                  and status.get("replicas", 0) == wanted)
    if available and rolled_out:
        image = spec["template"]["spec"]["containers"][0]["image"]
        return True, f"deployment/{name}: available {wanted}/{wanted} ({image})"
    phases = ", ".join(f"{pod['metadata']['name']} {(pod.get('status') or {}).get('phase', 'unknown')}"
                       for pod in pods) or "none"
    return False, (f"deployment/{name}: available {status.get('availableReplicas', 0)}/{wanted}, "
                   f"updated {status.get('updatedReplicas', 0)}/{wanted}; pods: {phases}"
                   + "".join(f"; {line}" for line in pod_blockers(pods)))


def blockers(found_resources: dict[str, list[Obj]]) -> list[str]:
    """Every condition that keeps a resource from working, e.g.
    ``streamingwindow/account-activity: StreamRunning=False DeadLettering: schema id 1 unknown``
    (:data:`FINDINGS` such as ``Drifted`` are not blockers and are left out); Ready last for each resource."""
    found = []
    for plural, items in found_resources.items():
        for item in items:
            conditions = (item.get("status") or {}).get("conditions") or []
            bad = [c for c in conditions if c.get("type") not in FINDINGS
                   and (c.get("status") == "True") == (c.get("type") in TRUE_IS_BAD)]
            bad.sort(key=lambda c: c.get("type") == "Ready")
            for cond in bad:
                text = f"{cond.get('type')}={cond.get('status')} {cond.get('reason', '')}: {cond.get('message', '')}"
                found.append(f"{plural[:-1]}/{item['metadata']['name']}: {text.strip(': ')[:240]}")
            if not conditions:
                found.append(f"{plural[:-1]}/{item['metadata']['name']}: no status yet (is the operator running?)")
    return found


def materialized_views(kube: Kube, namespace: str) -> list[str]:
    """FeatureViews whose materialization is not suspended (each gets a CronJob)."""
    views = resources(kube, namespace)[FEATURE_VIEW.plural]
    return [v["metadata"]["name"] for v in views
            if not ((v.get("spec") or {}).get("materialization") or {}).get("suspend")]


def http_json(url: str, body: Obj | None = None, timeout: float = 5.0) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return int(response.status), json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        text = error.read()
        try:
            return int(error.code), json.loads(text or b"null")
        except ValueError:
            return int(error.code), text.decode(errors="replace")


def vector_request(account: str, view: str = REALTIME_VIEW) -> Obj:
    return {"features": [f"{view}:{name}" for name in REALTIME_FEATURES], "entities": [{"account_id": account}]}


def served_vector(base_url: str, account: str, view: str = REALTIME_VIEW) -> dict[str, Any] | None:
    """The account's window features as served over HTTP, or None when serving does not answer."""
    try:
        status, body = http_json(f"{base_url}/features", vector_request(account, view))
    except OSError:
        return None
    if status != 200 or not isinstance(body, dict) or not body.get("results"):
        return None
    names = [ref.split(":", 1)[1] for ref in body["features"]]
    return dict(zip(names, body["results"][0]["values"], strict=True))


def readyz(base_url: str) -> tuple[bool, Any]:
    try:
        status, body = http_json(f"{base_url}/readyz")
    except OSError as error:
        return False, str(error)
    return status == 200, body


def wait_until_live(kube: Kube, namespace: str, state: "DemoState", endpoints: Endpoints,
                    say: Callable[[str], None], timeout: float, require_ready: bool = True) -> bool:
    """Until every resource is Ready, serving's /readyz passes (unless not ``require_ready``) and a burst
    shows in served window features. Returns whether serving was ready."""
    from streamguard.demo.burst import send_burst

    started = time.monotonic()
    deadline = started + timeout
    last_report = 0.0
    burst_sent_at: float | None = None
    while time.monotonic() < deadline:
        pending = not_ready(kube, namespace)
        ready, why = readyz(state.serving_url)
        vector = served_vector(state.serving_url, _demo_account())
        # Window values are served (0 for empty windows) once the streaming job has written its first
        # batch; a burst sent from then on is read by it (the job starts at the topic's latest offsets).
        streaming = bool(vector and vector.get("txn_count_1m") is not None)
        if not pending and streaming and state.topic and burst_sent_at is None:
            send_burst(endpoints, state.topic, state.subject, _demo_account(), 5)
            burst_sent_at = time.monotonic()
        jumped = bool(vector and (vector.get("txn_count_1m") or 0) >= 5)
        if not pending and (ready or not require_ready) and (jumped or not state.topic):
            return ready
        if burst_sent_at is not None and time.monotonic() - burst_sent_at > 30 and not jumped:
            send_burst(endpoints, state.topic, state.subject, _demo_account(), 5)
            burst_sent_at = time.monotonic()
        if time.monotonic() - last_report > 15:
            last_report = time.monotonic()
            reasons = why.get("reasons") if isinstance(why, dict) else why
            waiting = pending[:4] + ([] if ready else [f"serving /readyz: {str(reasons)[:300]}"])
            if not jumped and state.topic:
                waiting.append(f"served {REALTIME_VIEW} for {_demo_account()}: {vector}")
            if time.monotonic() - started >= BLOCKING_AFTER_S:
                waiting += [f"blocked by {line}" for line in blocking(kube, namespace)[:6]]
            say("still waiting for: " + "; ".join(waiting))
        time.sleep(2)
    blockers = blocking(kube, namespace)
    _, why = readyz(state.serving_url)
    raise TimeoutError(
        f"features not live after {timeout:.0f}s.\n"
        + ("".join(f"  blocked by {line}\n" for line in blockers) or "  every resource reports Ready\n")
        + f"  serving /readyz: {str(why)[:400]}\n"
        f"See `streamguard demo status`, `kubectl logs -n {namespace} <pod>` and the logs in {state.demo_dir}/logs")


def _demo_account() -> str:
    from streamguard.demo.run import DEMO_ACCOUNT

    return DEMO_ACCOUNT


def cli_path() -> str:
    """How to call this ``streamguard`` from the current directory (e.g. ``.venv/bin/streamguard``)."""
    executable = Path(sys.executable).parent / "streamguard"
    try:
        return str(executable.relative_to(Path.cwd()))
    except ValueError:
        return str(executable)


def instructions(state: "DemoState", endpoints: Endpoints) -> str:
    url = state.serving_url
    body = json.dumps(vector_request(_demo_account()))
    ns = state.namespace
    sg = cli_path()
    return f"""
FinServe features are live. Try:

  eval "$({sg} dev env)"               # KUBECONFIG, PATH with kubectl
  kubectl get featureviews,streamingwindows,driftmonitors -n {ns}
  kubectl get pods -n {ns} -o wide                    # containers on node {state.node_name}
  kubectl logs -n {ns} deploy/streamguard-serving --tail=20
  kubectl logs -n {ns} deploy/streamguard-{ns}-operator --tail=20   # the operator, a pod too
  curl -s {url}/features -H 'content-type: application/json' \\
       -d '{body}'
  curl -s {url}/readyz                                # freshness readiness
  {sg} demo burst --account {_demo_account()}   # 20 fraud transactions now; watch txn_count_1m jump
  {sg} demo status                     # processes, pods, ports, conditions
  kubectl exec -n {ns} deploy/streamguard-serving -- id   # uid 10001 in a container

Offline tables: {offline_location(OFFLINE_TABLES, endpoints.s3_bucket)}/<view>/date=YYYY-MM-DD/ (the stack's SeaweedFS).
Feast registry (kept by the operator): {feast_registry(endpoints, ns)}; with `dev env`'s AWS_* variables,
  streamguard.feastrepo.registration.feature_store(that location, project, namespace="{ns}") gives training sets
  (docs/demo.md).
Metrics: serving {url}/metrics; the streaming job and drift exporter: kubectl port-forward -n {ns} deploy/<name> <port>.
Dashboard: charts/streamguard/files/grafana-dashboard.json (import into Grafana, Prometheus datasource).
Stop everything: make demo-down   (or: {sg} demo down)
"""
