"""Recovery benchmark: for each dependency (the schema registry, the Kafka broker, Redis, the object store holding
the job's checkpoint), the time from its return after an outage to exact values, when the job started during the
outage and when the outage hit mid-stream.

Runs the outage scenario of the tests (``tests/workloads/streaming/outages.py``, so the benchmark measures exactly
what the tests assert) on a Kafka broker, an Apicurio registry, a Redis and (for the checkpoint) a SeaweedFS of
its own (a private run directory of the devstack, so stopping or killing them disturbs nothing else; no
kube-apiserver: the job's progress record stands in for its condition). Needs the provisioned stack artifacts
(``streamguard dev provision``: Kafka, Apicurio, SeaweedFS, the Spark connector and s3a jars) and
``redis-server``. Per outage it records:

* ``restart_s``: from the dependency's restart until it is ready again (the registry answers its API, the
  broker a metadata request listing itself, Redis a PING after loading its append-only file, SeaweedFS its S3
  and filer ports); not counted in the figures below;
* ``load_average_at_return``: the machine's 1-minute load average when the dependency returned (the figures
  are CPU-bound: they follow it);
* ``exact_s``: from the dependency's return (the registry or broker ready again) until every
  (entity, window) in Redis equals the reference computation over every event sent;
* ``serving_present_s``: until the real serving app answers ``present`` with those values.

The load is small and fixed (300 live events per phase over 4 accounts, two undecodable records per phase,
the FinServe windows 1m/15s, 5m/1m, 1h/5m): the figures are the job's reaction time (retry backoff, query
restart, one batch), not throughput. Tests assert correctness; this records the figures.

    .venv/bin/python benchmarks/recovery/run.py [--outage 60] [--dependency checkpoint ...]

Prints a table and writes ``benchmarks/results/recovery.json`` (measuring some dependencies replaces their rows
and keeps the others'; each row says when it was measured).
"""

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import redis

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.private_stack import private_stack  # noqa: E402
from streamguard.devstack.machine import machine_facts  # noqa: E402
from streamguard.devstack.objectstore import BUCKET  # noqa: E402
from tests.workloads.streaming.outages import (  # noqa: E402
    EVENTS,
    Outcome,
    Scenario,
    broker_outages,
    checkpoint_outages,
    registry_outages,
    start_object_store,
    store_outages,
)
from tests.workloads.streaming.support import V1  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "recovery.json"
DEPENDENCIES = ("registry", "kafka", "redis", "checkpoint")


def _row(dependency: str, moment: str, outcome: Outcome, outage_s: float) -> dict[str, Any]:
    seen = outcome.at_start if moment == "at-start" else outcome.mid_stream
    return {"dependency": dependency, "outage": moment, "outage_s": outage_s,
            "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "job_during": f"{seen.state}: {seen.reason}" if seen.state else "unreadable: the record is in Redis",
            "serving_during": sorted(set(seen.serving_statuses)) or [f"HTTP {seen.lookup_status}"],
            "readyz_during": seen.readyz_status,
            "load_average_at_return": round(seen.load_at_return, 1), "restart_s": round(seen.restart_s, 1),
            "exact_s": round(seen.heal_s, 1), "serving_present_s": round(seen.serving_present_s, 1),
            "dead_letters_exact": not outcome.dead_letter_problems,
            "dead_letter_problems": outcome.dead_letter_problems[:5], "events": outcome.events}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outage", type=float, default=60.0, help="Seconds each dependency stays away.")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument("--dependency", action="append", choices=DEPENDENCIES,
                        help="Measure only these (repeatable; default: all).")
    args = parser.parse_args()
    chosen = args.dependency or list(DEPENDENCIES)
    machine = machine_facts()
    rows: list[dict[str, Any]] = []
    began = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="sg-recovery-") as tmp, private_stack(Path(tmp)) as (stack, ends):
        store = redis.Redis.from_url(ends.redis_url)
        runs: list[tuple[str, Callable[[Path], Outcome]]] = [
            ("registry", lambda d: registry_outages(
                Scenario(ends, None, store, d, ends.kafka_bootstrap, ends.registry_url, V1, outage_s=args.outage),
                stack)),
            ("kafka", lambda d: broker_outages(
                Scenario(ends, None, store, d, ends.kafka_bootstrap, ends.registry_url, V1, outage_s=args.outage),
                stack)),
            ("redis", lambda d: store_outages(
                Scenario(ends, None, store, d, ends.kafka_bootstrap, ends.registry_url, V1, outage_s=args.outage),
                stack)),
            ("checkpoint", lambda d: checkpoint_outages(
                Scenario(ends, None, store, d, ends.kafka_bootstrap, ends.registry_url, V1, outage_s=args.outage,
                         checkpoint=f"s3a://{BUCKET}/recovery/{d.name}"), stack, start_object_store(stack))),
        ]
        for dependency, run in runs:
            if dependency not in chosen:
                continue
            scratch = Path(tmp) / dependency
            scratch.mkdir()
            outcome = run(scratch)
            rows += [_row(dependency, moment, outcome, args.outage) for moment in ("at-start", "mid-stream")]
            print(f"{dependency}: done", flush=True)
        versions_used = ends.versions
    print(f"{'dependency':<10} {'outage':<11} {'serving during':<16} {'restart':>8} {'exact after':>12} "
          f"{'serving present':>16}")
    for row in rows:
        print(f"{row['dependency']:<10} {row['outage']:<11} {'/'.join(row['serving_during']):<16} "
              f"{row['restart_s']:>7.1f}s {row['exact_s']:>11.1f}s {row['serving_present_s']:>15.1f}s   "
              f"load {row['load_average_at_return']:.1f}   job: {row['job_during'][:90]}")
    report = {
        "benchmark": "recovery",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": machine,
        "versions": versions_used,
        "load": {"events_per_phase": EVENTS, "accounts": 4, "undecodable_per_phase": 2,
                 "windows": ["1m/15s", "5m/1m", "1h/5m"], "trigger": "1s", "spark_master": "local[2]",
                 "note": "the job, serving, the producer and the stack share the machine's cores"},
        "wall_seconds": round(time.monotonic() - began, 1),
        "load_average_at_end": os.getloadavg(),
        "results": rows,
    }
    if set(chosen) != set(DEPENDENCIES) and args.out.exists():
        earlier = json.loads(args.out.read_text())
        kept = [{"measured_at": earlier["measured_at"], **r} for r in earlier["results"]
                if r["dependency"] not in chosen]
        report["results"] = sorted(kept + rows, key=lambda r: DEPENDENCIES.index(r["dependency"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
