"""Materialization throughput: StreamGuard's writer vs plain ``feast materialize``, same data, same run.

For each scale factor: generate the FinServe data (cached), compute the three batch profile tables with
the Spark batch job (cached), then materialize the full range of every profile view into an empty private
Redis (``private_redis``) with ``FeatureStore.materialize`` (DB 2) and with our materializer (DB 0), both
under the same fresh Feast project, ``--runs`` times with the order alternating (Feast first, ours first,
...) so neither always reads a page cache the other warmed. After every run the two databases must hold
byte-identical hashes: the benchmark fails if they differ. Reports entity rows/s and feature values/s per
run, their median and the ratio of medians. Timings exclude interpreter start and ``import feast``.

    .venv/bin/python benchmarks/materialize/run.py --scales 1 10 [--runs 3]
"""

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import redis

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from streamguard.demo.finserve_data import FinServeConfig, generate, write  # noqa: E402
from streamguard.devstack.machine import machine_facts  # noqa: E402
from streamguard.devstack.private_redis import private_redis  # noqa: E402
from streamguard.finserve.resources import EXAMPLES_DIR, load_manifests  # noqa: E402
from streamguard.onlinestore.tenancy import DEFAULT_NAMESPACE, store_project  # noqa: E402
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


class NotByteIdenticalError(RuntimeError):
    """Our materializer and Feast's left different Redis contents."""


def _run_feast(store: Any, start: datetime, end: datetime) -> float:
    began = time.perf_counter()
    store.materialize(start_date=start, end_date=end, feature_views=list(VIEWS))
    return time.perf_counter() - began


def _run_ours(
    client: redis.Redis, views: dict[str, Any], work: Path, start: datetime, end: datetime
) -> tuple[float, int, int]:
    """Seconds, entity rows and feature values of our materializer over every view (fresh watermarks)."""
    rows = values = 0
    began = time.perf_counter()
    for name, spec in views.items():
        watermark = FileWatermark(work / f"{spec.project}-{name}.json")
        result = materialize_incremental(client, name, spec, watermark, start=start, end=end)
        rows += result.stats.written
        values += result.feature_values
    return time.perf_counter() - began, rows, values


def bench_scale(scale: float, root: Path, redis_url: str, work: Path, runs: int) -> dict[str, Any]:
    data = prepare(scale, root)
    manifests = load_manifests(data / "manifests")
    start = datetime(2000, 1, 1, tzinfo=UTC)
    end = datetime(2026, 11, 2, tzinfo=UTC)
    base, _, _ = redis_url.rpartition("/")
    ours_client = redis.Redis.from_url(redis_url)
    feast_client = redis.Redis.from_url(f"{base}/{FEAST_DB}")

    from feast import FeatureStore

    from streamguard.feastrepo.repo import apply_repo, write_repo

    measured: list[dict[str, Any]] = []
    for index in range(runs):
        order = ("feast", "streamguard") if index % 2 == 0 else ("streamguard", "feast")
        project = f"bench{uuid.uuid4().hex[:8]}"
        views = {n: manifests.feature_views[n].spec.model_copy(update={"project": project}) for n in VIEWS}
        repo = work / project
        write_repo(repo, project, views, f"{base}/{FEAST_DB}")
        apply_repo(repo)
        store = FeatureStore(repo_path=str(repo))
        seconds: dict[str, float] = {}
        try:
            for who in order:
                if who == "feast":
                    seconds["feast"] = _run_feast(store, start, end)
                else:
                    seconds["streamguard"], rows, values = _run_ours(ours_client, views, work, start, end)
            keys = store_project(DEFAULT_NAMESPACE, project)
            ours, theirs = dump(ours_client, keys), dump(feast_client, keys)
            if not ours or ours != theirs:
                differing = sorted(k for k in set(ours) | set(theirs) if ours.get(k) != theirs.get(k))
                raise NotByteIdenticalError(
                    f"scale {scale:g} run {index + 1}: {len(differing)} of {len(set(ours) | set(theirs))} hashes "
                    f"differ between our materializer and Feast's (first: {differing[:3]!r})"
                )
        finally:
            ours_client.flushdb()
            feast_client.flushdb()
        measured.append({"order": list(order), "hashes": len(ours), "feast_seconds": round(seconds["feast"], 3),
                         "streamguard_seconds": round(seconds["streamguard"], 3), "byte_identical": True})
        print(f"  run {index + 1} ({' then '.join(order)}): feast {seconds['feast']:.2f}s, "
              f"streamguard {seconds['streamguard']:.2f}s, {len(ours):,} hashes byte-identical", flush=True)
    feast_median = statistics.median(r["feast_seconds"] for r in measured)
    ours_median = statistics.median(r["streamguard_seconds"] for r in measured)
    return {
        "scale": scale,
        "entity_rows": rows,
        "feature_values": values,
        "runs": measured,
        "feast": {
            "median_seconds": round(feast_median, 3),
            "rows_per_s": round(rows / feast_median),
            "values_per_s": round(values / feast_median),
        },
        "streamguard": {
            "median_seconds": round(ours_median, 3),
            "rows_per_s": round(rows / ours_median),
            "values_per_s": round(values / ours_median),
        },
        "speedup_of_medians": round(feast_median / ours_median, 2),
        "byte_identical": "enforced after every run (the benchmark fails otherwise)",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--runs", type=int, default=3, help="Runs per scale, the order alternating.")
    parser.add_argument("--data", type=Path, default=REPO / ".run" / "bench" / "finserve")
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "materialize.json")
    args = parser.parse_args()
    work = args.data / "repos"
    work.mkdir(parents=True, exist_ok=True)
    facts = machine_facts()
    measured_at = datetime.now(UTC).isoformat(timespec="seconds")
    results = []
    with tempfile.TemporaryDirectory(prefix="sg-bench-materialize-") as tmp, private_redis(Path(tmp)) as client:
        redis_url = f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0"
        for scale in args.scales:
            print(f"scale {scale:g}:", flush=True)
            result = bench_scale(scale, args.data, redis_url, work, args.runs)
            results.append(result)
            feast, ours = result["feast"], result["streamguard"]
            print(
                f"  {result['entity_rows']:,} entity rows, {result['feature_values']:,} feature values; medians:\n"
                f"  feast materialize : {feast['median_seconds']:8.2f}s {feast['rows_per_s']:>10,} rows/s\n"
                f"  streamguard       : {ours['median_seconds']:8.2f}s {ours['rows_per_s']:>10,} rows/s\n"
                f"  speedup {result['speedup_of_medians']}x",
                flush=True,
            )
    report = {
        "benchmark": "materialize",
        "measured_at": measured_at,
        "arguments": sys.argv[1:],
        "machine": {**facts, "load_average_at_end": os.getloadavg()},
        "redis": "a private redis-server (streamguard.devstack.private_redis), empty before every run",
        "note": "full-range materialization of the three FinServe profile views; both in-process, import and "
        "store construction excluded; the order alternates run by run; byte identity enforced after each run",
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
