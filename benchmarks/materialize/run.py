"""Materialization throughput: StreamGuard's writer vs plain ``feast materialize``, same data, same run.

For each scale factor: generate the FinServe data (cached), compute the three batch profile tables with
the Spark batch job (cached), then materialize the full range of every profile view into Redis twice
from a cold start: once with ``FeatureStore.materialize`` (Redis DB 2) and once with our materializer
(DB 0), both under the same fresh Feast project. Reports entity rows/s and feature values/s, the ratio,
and whether every Redis hash is byte-identical. Timings exclude interpreter start and ``import feast``.

    .venv/bin/python benchmarks/materialize/run.py --scales 1 10
"""

import argparse
import json
import os
import sys
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from streamguard.demo.finserve_data import FinServeConfig, generate, write  # noqa: E402
from streamguard.devstack.endpoints import Endpoints  # noqa: E402
from streamguard.devstack.machine import machine_facts  # noqa: E402
from streamguard.finserve.resources import EXAMPLES_DIR, load_manifests  # noqa: E402
from streamguard.workloads.materialize.run import materialize_incremental  # noqa: E402
from streamguard.workloads.materialize.watermark import FileWatermark  # noqa: E402

VIEWS = ("customer-profile", "account-profile", "merchant-profile")
FEAST_DB = 2


def prepare(scale: float, root: Path) -> Path:
    """Raw data + profile tables for ``scale`` under ``root`` (reused when already there)."""
    data = root / f"scale-{scale:g}"
    marker = data / "offline" / ".complete"
    if marker.exists():
        return data
    started = time.perf_counter()
    write(generate(FinServeConfig(scale=scale)), data)
    manifests = data / "manifests"
    manifests.mkdir(parents=True, exist_ok=True)
    for name in VIEWS:
        text = (EXAMPLES_DIR / f"{name}.yaml").read_text().replace(".run/data/finserve", str(data))
        (manifests / f"{name}.yaml").write_text(text)
    from streamguard.workloads.batch.job import run
    from streamguard.workloads.batch.session import local_session

    spark = local_session("streamguard-bench-materialize")
    try:
        run(spark, data / "raw" / "transactions.parquet", load_manifests(manifests))
    finally:
        spark.stop()
    marker.write_text(datetime.now(UTC).isoformat())
    print(f"  prepared scale {scale:g} in {time.perf_counter() - started:.0f}s", flush=True)
    return data


def dump(client: redis.Redis, project: str) -> dict[bytes, dict[bytes, bytes]]:
    keys = [k for k in client.scan_iter(match=b"*" + project.encode(), count=10000) if not k.startswith(b"sg-")]
    pipe = client.pipeline(transaction=False)
    for key in keys:
        pipe.hgetall(key)
    return dict(zip(keys, pipe.execute(), strict=True))


def delete(client: redis.Redis, project: str) -> None:
    keys = list(client.scan_iter(match=b"*" + project.encode(), count=10000))
    keys += list(client.scan_iter(match=f"sg-fresh:{project}:*".encode()))
    keys += list(client.scan_iter(match=f"sg-cov:{project}:*".encode()))
    for start in range(0, len(keys), 5000):
        client.delete(*keys[start : start + 5000])


def bench_scale(scale: float, root: Path, redis_url: str, work: Path) -> dict[str, Any]:
    data = prepare(scale, root)
    manifests = load_manifests(data / "manifests")
    project = f"bench{uuid.uuid4().hex[:8]}"
    views = {n: manifests.feature_views[n].spec.model_copy(update={"project": project}) for n in VIEWS}
    start = datetime(2000, 1, 1, tzinfo=UTC)
    end = datetime(2026, 11, 2, tzinfo=UTC)
    base, _, _ = redis_url.rpartition("/")
    ours_client = redis.Redis.from_url(redis_url)
    feast_client = redis.Redis.from_url(f"{base}/{FEAST_DB}")

    from feast import FeatureStore

    from streamguard.feastrepo.repo import apply_repo, write_repo

    repo = work / project
    write_repo(repo, project, views, f"{base}/{FEAST_DB}")
    apply_repo(repo)
    store = FeatureStore(repo_path=str(repo))
    try:
        began = time.perf_counter()
        store.materialize(start_date=start, end_date=end, feature_views=list(VIEWS))
        feast_seconds = time.perf_counter() - began

        rows = values = 0
        began = time.perf_counter()
        for name, spec in views.items():
            result = materialize_incremental(
                ours_client, name, spec, FileWatermark(work / f"{project}-{name}.json"), start=start, end=end
            )
            rows += result.stats.written
            values += result.feature_values
        ours_seconds = time.perf_counter() - began
        identical = dump(ours_client, project) == dump(feast_client, project)
    finally:
        delete(ours_client, project)
        delete(feast_client, project)
    return {
        "scale": scale,
        "entity_rows": rows,
        "feature_values": values,
        "feast": {
            "seconds": round(feast_seconds, 3),
            "rows_per_s": round(rows / feast_seconds),
            "values_per_s": round(values / feast_seconds),
        },
        "streamguard": {
            "seconds": round(ours_seconds, 3),
            "rows_per_s": round(rows / ours_seconds),
            "values_per_s": round(values / ours_seconds),
        },
        "speedup": round(feast_seconds / ours_seconds, 2),
        "byte_identical": identical,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--data", type=Path, default=REPO / ".run" / "bench" / "finserve")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "materialize.json")
    args = parser.parse_args()
    redis_url = os.environ.get("STREAMGUARD_REDIS_URL") or Endpoints.load().redis_url
    work = args.data / "repos"
    work.mkdir(parents=True, exist_ok=True)
    results = []
    for scale in args.scales:
        print(f"scale {scale:g}:", flush=True)
        result = bench_scale(scale, args.data, redis_url, work)
        results.append(result)
        print(
            f"  {result['entity_rows']:,} entity rows, {result['feature_values']:,} feature values\n"
            f"  feast materialize : {result['feast']['seconds']:8.2f}s {result['feast']['rows_per_s']:>10,} rows/s "
            f"{result['feast']['values_per_s']:>12,} values/s\n"
            f"  streamguard       : {result['streamguard']['seconds']:8.2f}s "
            f"{result['streamguard']['rows_per_s']:>10,} rows/s {result['streamguard']['values_per_s']:>12,} values/s\n"
            f"  speedup {result['speedup']}x, byte-identical: {result['byte_identical']}",
            flush=True,
        )
    report = {
        "benchmark": "materialize",
        "measured_at": datetime.now(UTC).isoformat(),
        "machine": machine_facts(),
        "redis_url": redis_url.rpartition("@")[2],
        "note": "full-range materialization of the three FinServe profile views from a cold Redis; "
        "both in-process, import and store construction excluded",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
