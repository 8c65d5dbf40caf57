"""Serving's own CPU per FinServe lookup, in process. Configurations: ``windows``, the window features read as this
checkout's server reads them (from the streaming job's panes since issue 21: a pane in every slide, 21 per account,
the busy worst case); ``feast-layout``, the same server reading every feature from Feast's layout (the control: the
same code for the other 13 features); with ``--cluster``, ``windows-cluster``, ``windows`` from a Redis Cluster of 3
masters on loopback instead of one redis-server.

``run.py`` measures whole servers under an open-loop load: its CPU per request includes the HTTP stack and moves
by ±15 % from run to run on a shared 2-core machine, more than the few µs a read path differs by. Here the service
answers the same request bodies (``FeatureService.features``: body parse, lookup, statuses, the JSON answer) in a
loop in this process, against a private redis-server on loopback; ``time.process_time()`` counts this process
only (its system calls included, Redis' work not). Rounds alternate the configurations, and each round is the best
of ``--repeats`` passes of ``--lookups`` lookups, so drift of the machine's speed hits every configuration alike.

    .venv/bin/python benchmarks/serving/lookup_cpu.py [--rounds 5] [--cluster]

To measure an older commit with the same harness, copy this file into that checkout's ``benchmarks/serving`` and
run it there (it reads the data from that checkout's ``run.py``). Prints a table and writes
``benchmarks/results/serving-lookup-cpu.json``.
"""

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.serving.run import Data, machine  # noqa: E402  (this checkout's benchmark data)
from streamguard.devstack.private_redis import private_redis, private_redis_cluster  # noqa: E402
from streamguard.serving.app import source_for  # noqa: E402
from streamguard.serving.service import FeatureService, connect  # noqa: E402
from streamguard.serving.settings import Settings  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "serving-lookup-cpu.json"


async def cpu_us_per_lookup(settings: Settings, bodies: list[bytes], lookups: int, repeats: int) -> float:
    """The best of ``repeats`` passes: CPU µs of this process per answered lookup."""
    source = source_for(settings)
    pool = connect(settings)
    service = FeatureService(settings, source, pool)
    source.start()
    try:
        deadline = time.monotonic() + 30
        while service.catalog() is None:
            if time.monotonic() > deadline:
                raise RuntimeError("the catalog did not load")
            await asyncio.sleep(0.05)
        for body in bodies[:200]:  # warm up: connections, selections, caches of parsed markers
            status, answer = await service.features(body, "bench")
            if status != 200:
                raise RuntimeError(f"lookup answered {status}: {answer[:300]!r}")
        best = float("inf")
        for _ in range(repeats):
            started = time.process_time()
            for i in range(lookups):
                status, _ = await service.features(bodies[i % len(bodies)], "bench")
                if status != 200:
                    raise RuntimeError(f"lookup answered {status}")
            best = min(best, (time.process_time() - started) / lookups * 1e6)
        return best
    finally:
        source.stop()
        await pool.close()


def commit() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True,
                              check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--lookups", type=int, default=3000, help="Lookups per pass.")
    parser.add_argument("--repeats", type=int, default=3, help="Passes per round and configuration (best kept).")
    parser.add_argument("--entities", type=int, default=2000)
    parser.add_argument("--cluster", action="store_true", help="Also read the pane layout from a 3-master cluster.")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    measured_at = datetime.now(UTC).isoformat()
    facts = {**machine(), "load_average_at_start": os.getloadavg()}
    with ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sg-lookup-cpu-")))
        client = stack.enter_context(private_redis(workdir / "redis"))
        redis_url = f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0"
        data = Data(client, args.entities, 3600)
        data.write()
        urls = {"windows": redis_url, "feast-layout": redis_url}
        if args.cluster:
            cluster = stack.enter_context(private_redis_cluster(workdir / "cluster", masters=3, replicas=0))
            data.write(cluster.client())
            urls["windows-cluster"] = cluster.url
        bodies = [body.encode() for body in data.bodies(2000)[0]]
        configs = {}
        for name in urls:
            config = workdir / f"{name}.yaml"
            config.write_text(yaml.safe_dump_all(data.manifests(name != "feast-layout")))
            configs[name] = Settings(redis_url=urls[name], config_file=str(config), cache_staleness=0,
                                     client_values_per_second=0, insecure_no_auth=True)
        runs: dict[str, list[float]] = {name: [] for name in configs}
        for round_ in range(args.rounds):
            order = list(configs) if round_ % 2 == 0 else list(reversed(configs))
            for name in order:
                runs[name].append(round(asyncio.run(
                    cpu_us_per_lookup(configs[name], bodies, args.lookups, args.repeats)), 2))
            print(f"round {round_ + 1}: " + "  ".join(f"{n} {runs[n][-1]:.1f} µs" for n in configs), flush=True)
    control = runs["feast-layout"]
    summary: dict[str, Any] = {}
    for name, values in runs.items():
        ratios = [v / c for v, c in zip(values, control, strict=True)]
        summary[name] = {"cpu_us_median": round(statistics.median(values), 1),
                         "ratio_to_control_median": round(statistics.median(ratios), 3),
                         "ratio_to_control_range": [round(min(ratios), 3), round(max(ratios), 3)]}
    if "windows-cluster" in runs:
        ratios = [c / s for c, s in zip(runs["windows-cluster"], runs["windows"], strict=True)]
        summary["cluster_over_single"] = {"median": round(statistics.median(ratios), 3),
                                          "range": [round(min(ratios), 3), round(max(ratios), 3)]}
    report = {
        "benchmark": "serving-lookup-cpu",
        "commit": commit(),
        "measured_at": measured_at,
        "finished_at": datetime.now(UTC).isoformat(),
        "arguments": sys.argv[1:],
        "request": "one FinServe vector: 22 features, 3 entities, 4 views; window features from panes with a pane in "
                   "every slide (21 panes: the busy worst case)",
        "measure": "time.process_time() of the serving process per FeatureService.features call, cache off; best "
                   "of the passes of each round; rounds alternate the configurations",
        "machine": {**facts, "note": "in process: this Python process and the redis-servers share the cores",
                    "load_average_at_end": os.getloadavg()},
        "runs_cpu_us": runs,
        "summary": summary,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(summary, indent=2))
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
