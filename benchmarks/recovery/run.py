"""Recovery benchmark: for each dependency (the schema registry, the Kafka broker), the time from its return
after an outage to exact values, when the job started during the outage and when the outage hit mid-stream.

Runs the outage scenario of the tests (``tests/streaming/outages.py``, so the benchmark measures exactly
what the tests assert) against the local stack (``streamguard dev up``: kube-apiserver, Redis, registry,
Kafka, Spark jars) with a private registry and a private broker of its own, so stopping or killing them
disturbs nothing else. Per outage it records:

* ``exact_s``: from the dependency's return (the registry or broker ready again) until every
  (entity, window) in Redis equals the reference computation over every event sent;
* ``serving_present_s``: until the real serving app answers ``present`` with those values.

The load is small and fixed (300 live events per phase over 4 accounts, two undecodable records per phase,
the FinServe windows 1m/15s, 5m/1m, 1h/5m): the figures are the job's reaction time (retry backoff, query
restart, one batch), not throughput. Tests assert correctness and the 30 s bound; this records the figures.

    .venv/bin/python benchmarks/recovery/run.py [--outage 60]

Prints a table and writes ``benchmarks/results/recovery.json``.
"""

import argparse
import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import redis
from kubernetes import client, config

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from streamguard.devstack.endpoints import Endpoints  # noqa: E402
from streamguard.devstack.machine import machine_facts  # noqa: E402
from streamguard.devstack.stack import Stack  # noqa: E402
from tests.streaming.outages import (  # noqa: E402
    EVENTS,
    KAFKA,
    REGISTRY,
    Outcome,
    Scenario,
    broker_outages,
    registry_outages,
)
from tests.streaming.support import V1  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "recovery.json"


@contextmanager
def private_service(work: Path, name: str) -> Iterator[tuple[Stack, int]]:
    """One data service of a stack of its own: ``(its stack, its port)``."""
    (work / f"{name}-stack").mkdir(parents=True)
    stack = Stack(work / f"{name}-stack")
    stack.restart(name)
    ports = json.loads((stack.run_dir / "ports.json").read_text())
    try:
        yield stack, int(ports["registry" if name == REGISTRY else name])
    finally:
        stack.down()


def _row(dependency: str, moment: str, outcome: Outcome, outage_s: float) -> dict[str, Any]:
    seen = outcome.at_start if moment == "at-start" else outcome.mid_stream
    return {"dependency": dependency, "outage": moment, "outage_s": outage_s,
            "condition_during": f"StreamRunning={seen.condition['status']} {seen.condition['reason']}",
            "serving_during": sorted(set(seen.serving_statuses)),
            "exact_s": round(seen.heal_s, 1), "serving_present_s": round(seen.serving_present_s, 1),
            "dead_letters_exact": not outcome.dead_letter_problems, "events": outcome.events}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outage", type=float, default=60.0, help="Seconds each dependency stays away.")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    stack = Endpoints.load()
    machine = machine_facts()
    subprocess.run([str(Path(stack.bin_dir) / "kubectl"), f"--kubeconfig={stack.kubeconfig}", "apply",
                    "--server-side", "--force-conflicts", "-f", str(REPO / "crds")], check=True, capture_output=True)
    kube: client.ApiClient = config.new_client_from_config(config_file=stack.kubeconfig)  # type: ignore[no-untyped-call]
    store = redis.Redis.from_url(stack.redis_url)
    rows: list[dict[str, Any]] = []
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sg-recovery-") as tmp:
        work = Path(tmp)
        runs: list[tuple[str, str, Callable[[Path, Stack, int], Outcome]]] = [
            ("registry", REGISTRY, lambda d, s, port: registry_outages(
                Scenario(stack, kube, store, d, stack.kafka_bootstrap,
                         f"http://127.0.0.1:{port}/apis/ccompat/v7", V1, outage_s=args.outage), s)),
            ("kafka", KAFKA, lambda d, s, port: broker_outages(
                Scenario(stack, kube, store, d, f"127.0.0.1:{port}", stack.registry_url, V1,
                         outage_s=args.outage), s)),
        ]
        for dependency, service, run in runs:
            scratch = work / dependency
            scratch.mkdir()
            with private_service(work, service) as (private, port):
                outcome = run(scratch, private, port)
            rows += [_row(dependency, moment, outcome, args.outage) for moment in ("at-start", "mid-stream")]
    print(f"{'dependency':<10} {'outage':<11} {'during':<42} {'exact after':>12} {'serving present':>16}")
    for row in rows:
        during = f"{row['condition_during']}, serving {'/'.join(row['serving_during'])}"
        print(f"{row['dependency']:<10} {row['outage']:<11} {during:<42} {row['exact_s']:>11.1f}s "
              f"{row['serving_present_s']:>15.1f}s")
    report = {
        "benchmark": "recovery",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine,
        "versions": stack.versions,
        "load": {"events_per_phase": EVENTS, "accounts": 4, "undecodable_per_phase": 2,
                 "windows": ["1m/15s", "5m/1m", "1h/5m"], "trigger": "1s", "spark_master": "local[2]",
                 "note": "the job, serving, the producer and the stack share the machine's cores"},
        "wall_seconds": round(time.monotonic() - began, 1),
        "results": rows,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
