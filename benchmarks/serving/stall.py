"""How long one large lookup holds a worker's event loop, by slice size (measured, never asserted).

In one process, against the stack's Redis: a ticker task notes every turn it gets on the event loop while
lookups run through :meth:`FeatureService.features` (the fast path's work after the body is read). Two bodies:
the hostile one of ``hostile.py`` (rows of long, unknown ids: every read a miss, nothing to decode) and 1000
known rows (every value present and decoded), each with every FinServe feature, the read cache off.
Reported per ``slice_rows``: the longest and the 99th-percentile gap between two turns of the ticker (what
another client's request would wait behind), in the loop thread's CPU time (the work done in between, whatever
the machine's load) and in wall time (plus the time the process was not scheduled), and each lookup's
duration.

    .venv/bin/python benchmarks/serving/stall.py [--slices 1000,100,50] [--repeat 20]

Writes ``benchmarks/results/serving-stall.json``.
"""

import argparse
import asyncio
import gc
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import redis
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.serving.hostile import hostile_body  # noqa: E402
from benchmarks.serving.run import Data, machine  # noqa: E402
from streamguard.devstack.endpoints import Endpoints  # noqa: E402
from streamguard.serving.service import FeatureService, connect  # noqa: E402
from streamguard.serving.settings import Settings  # noqa: E402
from streamguard.serving.sources import FileSource  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "serving-stall.json"


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


async def measure(service: FeatureService, body: bytes, repeat: int) -> dict[str, float]:
    status, answer = await service.features(body, "bench")  # warm: the selection resolved, the pool open
    if status != 200:
        raise RuntimeError(f"lookup answered {status}: {answer[:300]!r}")
    gaps: list[float] = []
    cpu_gaps: list[float] = []
    done = False

    async def ticker() -> None:
        last, last_cpu = time.perf_counter(), time.thread_time()
        while not done:
            await asyncio.sleep(0)
            now, now_cpu = time.perf_counter(), time.thread_time()
            gaps.append(now - last)
            cpu_gaps.append(now_cpu - last_cpu)
            last, last_cpu = now, now_cpu

    task = asyncio.create_task(ticker())
    durations = []
    for _ in range(repeat):
        started = time.perf_counter()
        await service.features(body, "bench")
        durations.append(time.perf_counter() - started)
    done = True
    await task
    return {
        "longest_stall_cpu_ms": round(max(cpu_gaps) * 1000, 2),
        "p99_stall_cpu_ms": round(percentile(cpu_gaps, 0.99) * 1000, 2),
        "longest_stall_wall_ms": round(max(gaps) * 1000, 2),
        "p99_stall_wall_ms": round(percentile(gaps, 0.99) * 1000, 2),
        "lookup_p50_ms": round(percentile(durations, 0.5) * 1000, 1),
        "lookup_max_ms": round(max(durations) * 1000, 1),
    }


async def run(args: argparse.Namespace) -> dict[str, Any]:
    endpoints = Endpoints.load()
    data = Data(redis.Redis.from_url(endpoints.redis_url), 1000, 600)
    workdir = Path(tempfile.mkdtemp(prefix="sg-bench-stall-"))
    config = workdir / "features.yaml"
    config.write_text(yaml.safe_dump_all(data.manifests(True)))
    data.write()
    try:
        ours, _ = data.bodies(1000)
        known = orjson.dumps({"features": data.refs, "entities": [orjson.loads(b)["entities"][0] for b in ours]})
        bodies = {"hostile": hostile_body(data.refs, args.max_body_bytes, 1), "known_1000_rows": known}
        results: dict[str, Any] = {}
        for slice_rows in args.slices:
            settings = Settings(
                redis_url=endpoints.redis_url,
                config_file=str(config),
                insecure_no_auth=True,
                slice_rows=slice_rows,
                cache_staleness=0,  # every read from Redis: a lookup answered from the cache never yields at all
            )
            source = FileSource(str(config))
            source.start()
            service = FeatureService(settings, source, connect(settings))
            gc.collect()  # as the app's lifespan does
            gc.freeze()
            try:
                results[str(slice_rows)] = {
                    name: await measure(service, body, args.repeat) for name, body in bodies.items()
                }
            finally:
                source.stop()
                await service.pool.close()
            print(f"slice_rows={slice_rows}: {results[str(slice_rows)]}")
        return results
    finally:
        data.delete()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slices", type=lambda text: [int(n) for n in text.split(",")], default=[1000, 100, 50])
    parser.add_argument("--repeat", type=int, default=20)
    parser.add_argument("--max-body-bytes", type=int, default=1024 * 1024)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    info = machine()
    measured_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    results = asyncio.run(run(args))
    args.output.write_text(
        json.dumps(
            {
                "benchmark": "serving-stall",
                "measured_at": measured_at,
                "arguments": sys.argv[1:],
                "machine": {**info, "load_average_at_end": os.getloadavg()},
                "by_slice_rows": results,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
