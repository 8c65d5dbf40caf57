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
import signal
import statistics
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.machine import machine_facts
from streamguard.devstack.supervisor import free_port
from streamguard.kubeclient import load_configuration
from streamguard.operator.kube import Kube

REPO = Path(__file__).resolve().parents[2]
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


class Operator:
    def __init__(self, namespace: str, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        command = [
            str(Path(sys.executable).parent / "streamguard"),
            "operator",
            "run",
            "-n",
            namespace,
            "--standalone",
            "--metrics-port",
            str(self.port),
        ]
        with log.open("ab") as out:
            self.process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                self.metrics()
                return
            except httpx.HTTPError:
                time.sleep(0.2)
        raise RuntimeError(f"operator did not start, see {log}")

    def metrics(self) -> dict[str, float]:
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        return {
            name: float(value)
            for name, _, value in (line.rpartition(" ") for line in text.splitlines())
            if name.startswith("streamguard_operator_")
        }

    def calls(self) -> dict[str, int]:
        totals: dict[str, int] = {}
        for name, value in self.metrics().items():
            if name.startswith("streamguard_operator_api_requests_total"):
                verb = name.split('verb="')[1].split('"')[0]
                totals[verb] = totals.get(verb, 0) + int(value)
        return totals

    def wait_idle(self, settle: float = 2.0, timeout: float = 600) -> None:
        deadline, last, since = time.monotonic() + timeout, None, time.monotonic()
        while time.monotonic() < deadline:
            current = self.metrics()
            if current != last:
                last, since = current, time.monotonic()
            elif current.get("streamguard_operator_idle") == 1.0 and time.monotonic() - since >= settle:
                return
            time.sleep(0.25)
        raise RuntimeError("operator did not settle")

    def peak_rss_mib(self) -> float:
        """The process's peak resident set so far (Linux ``VmHWM``)."""
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
        raise RuntimeError("no VmHWM in /proc/<pid>/status")

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


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
    env = {**os.environ, **stack.env()}
    if feast_registry:
        env["STREAMGUARD_OPERATOR_FEAST_REGISTRY"] = f"s3://{stack.s3_bucket}/{namespace}/registry.db"
    operator = Operator(namespace, env, log_dir / f"operator-{count}.log")
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
        operator.wait_idle()
        converge_calls = operator.calls()
        peak_rss_mib = operator.peak_rss_mib()
        operator.stop()

        before = await versions(kube, namespace)
        resync_started = time.perf_counter()
        operator = Operator(namespace, env, log_dir / f"operator-{count}-resync.log")
        operator.wait_idle()
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
