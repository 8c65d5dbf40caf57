"""Incremental materialization from offline data: memory follows the interval, not the history.

A synthetic feature table hive-partitioned by day (``date=YYYY-MM-DD``, ``--rows-per-day`` rows of
``--entities`` customers per day) is written with ``--days`` of history at scale 1 and ten times that at
scale 10, locally and to the stack's object store (SeaweedFS, ``s3://``). The same one-day interval (the
last day) is then materialized into Redis from each, every run in a fresh process, and the run's peak RSS
is read from the kernel (``ru_maxrss``). Throughput is the rows scanned per second over ``--throughput-days``
from s3 and from local disk. For contrast, the peak RSS of loading the whole history (the read before reads
were bounded) is measured too. Needs a running stack (``streamguard dev up``).

    .venv/bin/python benchmarks/offline/run.py --output benchmarks/results/offline.json
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time
import uuid
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from streamguard.api.featureview import FeatureViewSpec  # noqa: E402
from streamguard.devstack.endpoints import Endpoints  # noqa: E402
from streamguard.devstack.machine import machine_facts  # noqa: E402
from streamguard.objectstore import Credentials, s3_filesystem  # noqa: E402

LAST_DAY = date(2026, 11, 1)


def spec(project: str, path: str) -> FeatureViewSpec:
    return FeatureViewSpec.model_validate(
        {
            "project": project,
            "entities": [{"name": "customer", "joinKey": "customer_id"}],
            "features": [{"name": "txn_count", "dtype": "INT64"}, {"name": "amount_sum", "dtype": "FLOAT64"}],
            "source": {"path": path},
            "ttl": "30d",
        }
    )


def day_table(day: date, rows: int, entities: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    start = int(datetime(day.year, day.month, day.day, tzinfo=UTC).timestamp() * 1_000_000)
    micros = np.sort(rng.integers(start, start + 86_400_000_000, rows))
    return pa.table(
        {
            "customer_id": pa.array([f"C{i:07d}" for i in rng.integers(0, entities, rows)]),
            "event_timestamp": pa.array(micros, pa.timestamp("us", tz="UTC")),
            "txn_count": pa.array(rng.integers(0, 50, rows), pa.int64()),
            "amount_sum": pa.array(rng.gamma(2.0, 40.0, rows)),
        }
    )


def write_history(root: Path, days: int, rows: int, entities: int) -> Path:
    """``days`` day partitions ending at :data:`LAST_DAY` (reused when complete)."""
    target = root / f"days-{days}"
    if (target / ".complete").exists():
        return target
    for offset in range(days):
        day = LAST_DAY - timedelta(days=offset)
        folder = target / f"date={day.isoformat()}"
        folder.mkdir(parents=True, exist_ok=True)
        pq.write_table(day_table(day, rows, entities, offset), folder / "part-0.parquet")
    (target / ".complete").write_text("")
    return target


def upload(local: Path, credentials: Credentials, bucket: str, prefix: str) -> str:
    """Copy the partitions under ``s3://bucket/prefix`` (skipped when already there)."""
    import pyarrow.fs as pafs

    filesystem = s3_filesystem(credentials)
    destination = f"{bucket}/{prefix}"
    if filesystem.get_file_info(f"{destination}/.complete").type == pafs.FileType.File:
        return f"s3://{destination}"
    for folder in sorted(local.glob("date=*")):
        pafs.copy_files(
            str(folder),
            f"{destination}/{folder.name}",
            source_filesystem=pafs.LocalFileSystem(),
            destination_filesystem=filesystem,
        )
    with filesystem.open_output_stream(f"{destination}/.complete") as marker:
        marker.write(b"")
    return f"s3://{destination}"


def child(path: str, redis_url: str, start: datetime, end: datetime) -> dict[str, Any]:
    """One run in this (fresh) process: its peak RSS and how long it took."""
    import redis

    from streamguard.workloads.materialize.run import materialize_incremental
    from streamguard.workloads.materialize.watermark import FileWatermark

    project = f"bo{uuid.uuid4().hex[:8]}"
    client = redis.Redis.from_url(redis_url)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    state = Path(f"/tmp/{project}.json")
    began = time.perf_counter()
    result = materialize_incremental(client, "bench", spec(project, path), FileWatermark(state), start=start, end=end)
    seconds = time.perf_counter() - began
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    state.unlink(missing_ok=True)
    keys = list(client.scan_iter(match=f"*{project}*".encode(), count=10000))
    for first in range(0, len(keys), 5000):
        client.delete(*keys[first : first + 5000])
    return {
        "rows_scanned": result.rows_scanned,
        "entities_written": result.stats.written,
        "seconds": round(seconds, 3),
        "rows_per_second": round(result.rows_scanned / seconds),
        "peak_rss_mib": round(peak / 1024, 1),
        "rss_before_run_mib": round(before / 1024, 1),
    }


def whole_history_read(path: str) -> dict[str, Any]:
    """For comparison, the read the materializer did before reads were bounded: the whole source loaded, then
    filtered in memory (peak RSS of that read alone, in this fresh process)."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    table = pq.read_table(path, columns=["customer_id", "event_timestamp", "txn_count", "amount_sum"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return {
        "rows_loaded": table.num_rows,
        "peak_rss_mib": round(peak / 1024, 1),
        "rss_before_read_mib": round(before / 1024, 1),
    }


def measure(path: str, redis_url: str, store_env: dict[str, str], days: int) -> dict[str, Any]:
    end = datetime(LAST_DAY.year, LAST_DAY.month, LAST_DAY.day, tzinfo=UTC) + timedelta(days=1)
    start = end - timedelta(days=days)
    output = subprocess.run(
        [sys.executable, __file__, "--child", path, start.isoformat(), end.isoformat()],
        env={**os.environ, **store_env, "STREAMGUARD_REDIS_URL": redis_url},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    result: dict[str, Any] = json.loads(output.splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--days", type=int, default=20, help="History at scale 1 (scale 10 has ten times it).")
    parser.add_argument("--rows-per-day", type=int, default=40_000)
    parser.add_argument("--entities", type=int, default=20_000)
    parser.add_argument("--throughput-days", type=int, default=7)
    parser.add_argument("--data", type=Path, default=REPO / ".run" / "bench-offline")
    parser.add_argument("--output", type=Path, default=None)
    parser.add_argument("--local-only", action="store_true", help="Skip the object store (local disk only).")
    parser.add_argument("--redis-url", default="", help="Redis to write to (default: the stack's).")
    parser.add_argument("--child", nargs=3, metavar=("PATH", "START", "END"), help=argparse.SUPPRESS)
    parser.add_argument("--child-whole", metavar="PATH", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child_whole:
        print(json.dumps(whole_history_read(args.child_whole)))
        return
    if args.child:
        path, start, end = args.child
        redis_url = os.environ["STREAMGUARD_REDIS_URL"]
        print(json.dumps(child(path, redis_url, datetime.fromisoformat(start), datetime.fromisoformat(end))))
        return

    places = ("local", "s3") if not args.local_only else ("local",)
    stack = None
    if not (args.local_only and args.redis_url):
        stack = Endpoints.load(Path(os.environ["STREAMGUARD_RUN_DIR"]) if "STREAMGUARD_RUN_DIR" in os.environ else None)
    redis_url = args.redis_url or (stack.redis_url if stack else "")
    store_env = stack.object_store_env() if stack and "s3" in places else {}
    credentials = Credentials.from_env(store_env) if store_env else None
    bucket = stack.s3_bucket if stack else ""
    facts = machine_facts()
    measured_at = datetime.now(UTC).isoformat(timespec="seconds")
    runs: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for scale in (1, 10):
        days = args.days * scale
        sources["local"] = str(write_history(args.data, days, args.rows_per_day, args.entities))
        if credentials is not None:
            sources["s3"] = upload(Path(sources["local"]), credentials, bucket, f"bench-offline/days-{days}")
        runs[f"scale_{scale}"] = {
            "history_days": days,
            "history_rows": days * args.rows_per_day,
            **{f"one_day_{where}": measure(sources[where], redis_url, store_env, 1) for where in places},
            "whole_history_read_local": json.loads(
                subprocess.run(
                    [sys.executable, __file__, "--child-whole", sources["local"]],
                    capture_output=True,
                    text=True,
                    check=True,
                ).stdout.splitlines()[-1]
            ),
        }
        print(f"scale {scale}: {json.dumps(runs[f'scale_{scale}'])}", flush=True)
    throughput = {where: measure(sources[where], redis_url, store_env, args.throughput_days) for where in places}
    ratio = {
        where: round(
            runs["scale_10"][f"one_day_{where}"]["peak_rss_mib"] / runs["scale_1"][f"one_day_{where}"]["peak_rss_mib"],
            3,
        )
        for where in places
    }
    report = {
        "benchmark": "offline incremental materialization",
        "interval": "one day (the last), hive partitions by date, pyarrow dataset filter",
        "rows_per_day": args.rows_per_day,
        "entities": args.entities,
        "runs": runs,
        "peak_rss_ratio_scale10_over_scale1": ratio,
        "throughput_days": args.throughput_days,
        "throughput": throughput,
        **(
            {
                "s3_over_local_throughput": round(
                    throughput["s3"]["rows_per_second"] / throughput["local"]["rows_per_second"], 3
                )
            }
            if "s3" in places
            else {}
        ),
        "versions": stack.versions if stack else {},
        "arguments": sys.argv[1:],
        "machine": {**facts, "load_average_at_end": os.getloadavg()},
        "measured_at": measured_at,
    }
    text = json.dumps(report, indent=2)
    print(text)
    if args.output:
        args.output.write_text(text + "\n")


if __name__ == "__main__":
    main()
