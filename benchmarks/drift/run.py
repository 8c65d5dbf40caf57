"""Benchmark: time and peak memory of one drift run on the FinServe transactions, scale factors 1 and 10.

    .venv/bin/python benchmarks/drift/run.py [--scales 1 10] [--data .run/bench/drift]

Data comes from the FinServe generator (``streamguard.demo.finserve_data``; 540k transactions over 90
days at scale 1). The monitor watches the transaction attributes the fraud features are built from:
``amount`` (KS test) and ``is_foreign``, ``is_night``, ``channel``, ``country`` (PSI); reference = the
first 83 days, current = ``last: 7d``, with amounts of the current week shifted by 1.3x. Each run
happens in a fresh child process (the exporter's own code path, ``run_drift``) so peak RSS is that of
one run. Prints a table and writes ``benchmarks/results/drift.json``.
"""

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from streamguard.devstack.machine import machine_facts  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "drift.json"
SHIFT = 1.3
CURRENT_DAYS = 7


def _view() -> dict[str, object]:
    return {
        "entities": [{"name": "account", "joinKey": "account_id"}],
        "features": [
            {"name": "amount", "dtype": "FLOAT64"},
            {"name": "is_foreign", "dtype": "BOOL"},
            {"name": "is_night", "dtype": "BOOL"},
            {"name": "channel", "dtype": "STRING"},
            {"name": "country", "dtype": "STRING"},
        ],
        "source": {"path": "transactions.parquet", "timestampField": "event_time"},
    }


def prepare(scale: float, data_dir: Path) -> tuple[Path, dict[str, object]]:
    """Write the scaled transactions (current week's amounts shifted) once; return the path and the job."""
    from streamguard.demo.finserve_data import FinServeConfig, generate

    config = FinServeConfig(scale=scale)
    path = data_dir / f"transactions-x{scale:g}.parquet"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        table = generate(config).transactions
        boundary = pa.scalar(config.end - timedelta(days=CURRENT_DAYS), pa.timestamp("us", tz="UTC"))
        in_current = pc.greater_equal(table["event_time"], boundary)
        shifted = pc.if_else(in_current, pc.multiply(table["amount"], SHIFT), table["amount"])
        table = table.set_column(table.schema.get_field_index("amount"), "amount", shifted)
        pq.write_table(table, path, row_group_size=256_000)
    reference_end = (config.end - timedelta(days=CURRENT_DAYS)).isoformat()
    job: dict[str, object] = {
        "namespace": "bench",
        "name": f"transactions-x{scale:g}",
        "view_name": "transactions",
        "view": _view(),
        "monitor": {
            "featureView": "transactions",
            "features": ["amount", "is_foreign", "is_night", "channel", "country"],
            "ksFeatures": ["amount"],
            "reference": {"path": str(path), "timestampField": "event_time", "end": reference_end},
            "current": {"path": str(path), "timestampField": "event_time", "last": f"{CURRENT_DAYS}d"},
        },
    }
    return path, job


def child(job_file: Path) -> None:
    """One drift run in this process; print its figures as JSON."""
    from streamguard.jobspec import DriftJob, load
    from streamguard.workloads.drift.exporter import run_drift
    from streamguard.workloads.drift.plan import plan

    job = load(DriftJob, job_file)
    baseline_kb = _peak_rss_kib()
    started = time.perf_counter()
    result = run_drift(job, plan(job))
    seconds = time.perf_counter() - started
    peak_kb = _peak_rss_kib()
    print(
        json.dumps(
            {
                "seconds": seconds,
                "peak_rss_mib": peak_kb / 1024,
                "baseline_rss_mib": baseline_kb / 1024,
                "reference_rows": result.reference_rows,
                "current_rows": result.current_rows,
                "drift_share": result.drift_share,
                "drifted_features": list(result.drifted_features),
            }
        )
    )


def _peak_rss_kib() -> int:
    """This process's peak resident set (``VmHWM``; unlike ``ru_maxrss`` it does not inherit the parent's)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    raise RuntimeError("no VmHWM in /proc/self/status")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=float, nargs="+", default=[1.0, 10.0])
    parser.add_argument("--data", type=Path, default=REPO / ".run" / "bench" / "drift")
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child)
        return
    facts = machine_facts()
    measured_at = datetime.now(UTC).isoformat(timespec="seconds")
    rows = []
    for scale in args.scales:
        print(f"scale {scale:g}: preparing data ...", flush=True)
        path, job = prepare(scale, args.data)
        job_file = args.data / f"job-x{scale:g}.json"
        job_file.write_text(json.dumps(job))
        out = subprocess.run(
            [sys.executable, __file__, "--child", str(job_file)], check=True, capture_output=True, text=True
        )
        figures = json.loads(out.stdout.strip().splitlines()[-1])
        rows.append({"scale": scale, "parquet_mib": path.stat().st_size / 2**20, **figures})
        print(
            f"scale {scale:>4g}: {figures['reference_rows']:>9,} reference + {figures['current_rows']:>8,} current rows"
            f"  {figures['seconds']:7.2f} s  peak RSS {figures['peak_rss_mib']:7.0f} MiB"
            f" (after imports {figures['baseline_rss_mib']:.0f} MiB)"
            f"  drifted: {', '.join(figures['drifted_features']) or 'none'}",
            flush=True,
        )
    report = {
        "benchmark": "drift",
        "what": "one drift run (load both Parquet slices + Evidently PSI preset + KS), fresh process per scale",
        "measured_at": measured_at,
        "arguments": sys.argv[1:],
        "machine": {**facts, "load_average_at_end": os.getloadavg()},
        "results": rows,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {RESULTS}")


if __name__ == "__main__":
    main()
