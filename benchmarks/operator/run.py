"""Reconcile latency, API writes per no-op resync and the operator's peak memory, for 1 and 200 FeatureViews.

Runs the real operator (``streamguard operator run``) against the local stack's apiserver:

* latency: from applying N FeatureViews to every one of them Ready (observedGeneration current) with
  its CronJob present, per object (p50/p95/max) and for the whole batch;
* no-op resync: the operator is restarted, relists everything and reconciles every object again; the
  API writes it makes (from its own metrics) and the objects' resourceVersions before/after are reported;
* memory: the operator process's peak resident set (``VmHWM``) once every object is Ready, to set against
  the chart's limit (512Mi). ``--feast-registry`` has the operator keep a Feast registry on the stack's object
  store (Feast loaded, every view registered): what the limit must hold then.

Each run uses a namespace of its own (deleted afterwards) and an operator watching only it. This tree's
``crds/`` are applied when the stack has no FeatureView CRD; CRDs already there are left as they are (on a
shared stack others use them), unless ``--install-crds`` asks to apply ``crds/`` anyway.

Usage: ``.venv/bin/python benchmarks/operator/run.py [--counts 1 200] [--install-crds] [--feast-registry]``;
writes ``benchmarks/results/operator-reconcile.json`` (``operator-reconcile-feast-registry.json`` with the
registry).
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.machine import machine_facts
from streamguard.kubeclient import load_configuration
from streamguard.operator.kube import Kube

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from tests.operator.process import OperatorProcess, operator_env  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "operator-reconcile.json"
FEAST_RESULTS = REPO / "benchmarks" / "results" / "operator-reconcile-feast-registry.json"


def kubectl(stack: Endpoints, *args: str) -> None:
    subprocess.run(
        [str(Path(stack.bin_dir) / "kubectl"), f"--kubeconfig={stack.kubeconfig}", *args],
        check=True,
        capture_output=True,
    )


def feature_view(name: str, namespace: str) -> dict[str, Any]:
    return {
        "apiVersion": "streamguard.dev/v1alpha1",
        "kind": "FeatureView",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "entities": [{"name": "customer", "joinKey": "customer_id"}],
            "features": [{"name": f"f{i}", "dtype": "FLOAT64"} for i in range(8)],
            "source": {"path": f"/data/{name}.parquet"},
            "materialization": {"schedule": "*/15 * * * *"},
        },
    }


def ready(item: dict[str, Any]) -> bool:
    status = item.get("status") or {}
    if status.get("observedGeneration") != item["metadata"]["generation"]:
        return False
    return any(c["type"] == "Ready" and c["status"] == "True" for c in status.get("conditions") or [])


async def versions(kube: Kube, namespace: str) -> dict[str, str]:
    out = {}
    for kind in ("FeatureView", "ConfigMap", "CronJob"):
        for item in await kube.select(kind, namespace):
            out[f"{kind}/{item['metadata']['name']}"] = item["metadata"]["resourceVersion"]
    return out


async def measure(count: int, stack: Endpoints, kube: Kube, log_dir: Path, feast_registry: bool) -> dict[str, Any]:
    namespace = f"bench-op-{uuid.uuid4().hex[:8]}"
    await asyncio.to_thread(kubectl, stack, "create", "namespace", namespace)
    settings = {"feast_registry": f"s3://{stack.s3_bucket}/{namespace}/registry.db"} if feast_registry else {}
    env = operator_env(stack, **settings)
    operator = OperatorProcess(namespace, env, log_dir / f"operator-{count}.log", verbose=False).start()
    try:
        names = [f"view-{i:03d}" for i in range(count)]
        started = time.perf_counter()
        applied_at: dict[str, float] = {}
        for name in names:
            await kube.apply(feature_view(name, namespace))
            applied_at[name] = time.perf_counter()
        done_at: dict[str, float] = {}
        while len(done_at) < count:
            if time.perf_counter() - started > 600:
                raise RuntimeError(f"only {len(done_at)}/{count} Ready after 600s")
            crons = {c["metadata"]["name"] for c in await kube.select("CronJob", namespace)}
            now = time.perf_counter()
            for item in await kube.select("FeatureView", namespace):
                name = item["metadata"]["name"]
                if name not in done_at and ready(item) and f"{name}-materialize" in crons:
                    done_at[name] = now
            await asyncio.sleep(0.1)
        batch = max(done_at.values()) - started
        latencies = sorted(done_at[n] - applied_at[n] for n in names)
        operator.wait_idle(settle=2.0, timeout=600)
        converge_calls = operator.calls()
        peak_rss_mib = operator.peak_rss_mib()
        operator.stop()

        before = await versions(kube, namespace)
        resync_started = time.perf_counter()
        operator = OperatorProcess(namespace, env, log_dir / f"operator-{count}-resync.log", verbose=False).start()
        operator.wait_idle(settle=2.0, timeout=600)
        resync_seconds = time.perf_counter() - resync_started
        resync_calls = operator.calls()
        after = await versions(kube, namespace)
        writes = sum(resync_calls.get(v, 0) for v in ("apply", "patch", "create", "delete"))
        return {
            "feature_views": count,
            "apply_to_all_ready_seconds": round(batch, 3),
            "per_object_latency_seconds": {
                "p50": round(statistics.median(latencies), 3),
                "p95": round(latencies[min(len(latencies) - 1, int(0.95 * len(latencies)))], 3),
                "max": round(latencies[-1], 3),
            },
            "converge_api_calls": converge_calls,
            "operator_peak_rss_mib": peak_rss_mib,
            "noop_resync": {
                "api_writes": writes,
                "api_writes_per_object": round(writes / count, 3),
                "api_calls": resync_calls,
                "resource_versions_changed": sum(1 for k in before if after.get(k) != before[k]),
                "objects_checked": len(before),
                "seconds_until_idle_incl_startup": round(resync_seconds, 3),
            },
        }
    finally:
        operator.stop()
        await asyncio.to_thread(kubectl, stack, "delete", "namespace", namespace, "--wait=false")


async def main(counts: list[int], install_crds: bool, feast_registry: bool) -> None:
    facts = machine_facts()
    measured_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    stack = Endpoints.load()
    try:
        await asyncio.to_thread(kubectl, stack, "get", "crd", "featureviews.streamguard.dev")
    except subprocess.CalledProcessError:
        install_crds = True
    if install_crds:
        await asyncio.to_thread(kubectl, stack, "apply", "--server-side", "--force-conflicts", "-f", str(REPO / "crds"))
    kube = Kube(load_configuration(stack.kubeconfig))
    log_dir = REPO / ".run" / "bench" / "operator-logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    runs = []
    try:
        for count in counts:
            result = await measure(count, stack, kube, log_dir, feast_registry)
            runs.append(result)
            latency = result["per_object_latency_seconds"]
            print(
                f"{count:>4} FeatureViews: all Ready in {result['apply_to_all_ready_seconds']:.2f}s "
                f"(per object p50 {latency['p50']:.2f}s p95 {latency['p95']:.2f}s max {latency['max']:.2f}s); "
                f"no-op resync: {result['noop_resync']['api_writes']} writes, "
                f"{result['noop_resync']['resource_versions_changed']} resourceVersions changed of "
                f"{result['noop_resync']['objects_checked']}; operator peak RSS {result['operator_peak_rss_mib']} MiB"
            )
    finally:
        await kube.close()
    report = {
        "benchmark": "operator-reconcile",
        "measured_at": measured_at,
        "arguments": sys.argv[1:],
        "machine": {**facts, "load_average_at_end": os.getloadavg()},
        "kubernetes": stack.versions.get("kubernetes"),
        "feast_registry": feast_registry,
        "runs": runs,
    }
    out = FEAST_RESULTS if feast_registry else RESULTS
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--counts", type=int, nargs="+", default=[1, 200])
    parser.add_argument("--install-crds", action="store_true", help="Apply crds/ even if CRDs are installed.")
    parser.add_argument("--feast-registry", action="store_true",
                        help="The operator keeps a Feast registry on the stack's object store.")
    arguments = parser.parse_args()
    asyncio.run(main(arguments.counts, arguments.install_crds, arguments.feast_registry))
