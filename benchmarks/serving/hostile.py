"""A hostile client against serving, measured (never asserted): memory and a well-behaved client's latency.

The hostile client holds a valid token of its own and sends maximum-size lookups (bodies just under
``--max-body-bytes``: as many entity rows of long, distinct ids as fit, so every read misses the cache) from
``--concurrency`` connections (default 64) for ``--duration`` seconds (default 30), never waiting for a
Retry-After, plus over-limit bodies (refused on their Content-Length). Meanwhile the open-loop generator
(``loadgen.py``) sends one FinServe vector at ``--rate`` (default 200/s) with another token. The server runs
with its default limits (one worker), so the hostile token meets its own budgets (work in progress, values a
second) and the well-behaved one does not.
Reported: the server's peak RSS (every process of its group, sampled every 0.2 s) against the chart's memory
limit, the well-behaved client's p50/p99/errors, the hostile answers by status, and the load average at the
start and the end (a figure taken on a loaded machine says little).

    .venv/bin/python benchmarks/serving/hostile.py [--duration 30] [--concurrency 64] [--rate 200]

Writes ``benchmarks/results/serving-hostile.json``.
"""

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.serving.run import HERE, Data, machine, serve_command, server  # noqa: E402
from streamguard.devstack.endpoints import Endpoints  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "serving-hostile.json"
CHART_MEMORY_LIMIT_MIB = 512
"""``serving.resources.limits.memory`` of the chart's default values."""


def group_rss_mib(pgid: int) -> float:
    total_kib = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rsplit(")", 1)[1].split()[2]) != pgid:
                continue
            status = (stat.parent / "status").read_text()
        except (OSError, ValueError, IndexError):
            continue
        for line in status.splitlines():
            if line.startswith("VmRSS:"):
                total_kib += int(line.split()[1])
    return total_kib / 1024


def hostile_body(refs: list[str], limit: int, seed: int) -> bytes:
    """A lookup just under ``limit`` bytes: as many rows of long distinct ids as fit, up to 1000."""
    rows: list[dict[str, str]] = []
    body = json.dumps({"features": refs, "entities": rows}).encode()
    while len(rows) < 1000:
        pad = secrets.token_hex(240)
        row = {"customer_id": f"C{seed}-{pad}", "account_id": f"A{seed}-{pad}", "merchant_id": f"M{seed}-{pad}"}
        candidate = json.dumps({"features": refs, "entities": [*rows, row]}).encode()
        if len(candidate) >= limit:
            break
        rows.append(row)
        body = candidate
    return body


async def hostile(url: str, token: str, bodies: list[bytes], concurrency: int, duration: float) -> Counter[str]:
    statuses: Counter[str] = Counter()
    deadline = time.monotonic() + duration
    headers = {"authorization": f"Bearer {token}", "content-type": "application/json"}
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:

        async def one(worker: int) -> None:
            sent = 0
            while time.monotonic() < deadline:
                body = bodies[(worker + sent) % len(bodies)]
                sent += 1
                try:
                    statuses[str((await client.post(url, content=body, headers=headers)).status_code)] += 1
                except httpx.HTTPError as error:
                    statuses[type(error).__name__] += 1

        await asyncio.gather(*(one(worker) for worker in range(concurrency)))
    return statuses


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=30.0)
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--rate", type=float, default=200.0, help="Requests/s of the well-behaved client.")
    parser.add_argument("--max-body-bytes", type=int, default=1024 * 1024)
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    info = machine()
    measured_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    endpoints = Endpoints.load()
    data = Data(redis.Redis.from_url(endpoints.redis_url), 1000, int(args.duration) + 300)
    workdir = Path(tempfile.mkdtemp(prefix="sg-bench-hostile-"))
    hostile_token, polite_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    (workdir / "tokens").write_text(f"{hostile_token}\n{polite_token}\n")
    try:
        data.write()
        ours, _ = data.bodies(2000)
        (workdir / "good.jsonl").write_text("\n".join(ours) + "\n")
        (workdir / "features.yaml").write_text(yaml.safe_dump_all(data.manifests(True)))
        port = 18090
        url = f"http://127.0.0.1:{port}/features"
        hostile_bodies = [hostile_body(data.refs, args.max_body_bytes, seed) for seed in range(8)]
        hostile_bodies.append(b"{" + b" " * args.max_body_bytes + b"}")  # over the limit: refused unread
        command = serve_command(workdir / "features.yaml", endpoints.redis_url, port, 1,
                                "--auth-token-file", str(workdir / "tokens"),
                                "--max-body-bytes", str(args.max_body_bytes))
        with server(command, f"http://127.0.0.1:{port}/livez", workdir / "serve.log") as pgid:
            idle_rss = group_rss_mib(pgid)
            peak = [idle_rss]
            stop = threading.Event()

            def sample() -> None:
                while not stop.wait(0.2):
                    peak[0] = max(peak[0], group_rss_mib(pgid))

            sampler = threading.Thread(target=sample, daemon=True)
            sampler.start()
            good = subprocess.Popen(
                [
                    sys.executable,
                    str(HERE / "loadgen.py"),
                    "--url",
                    url,
                    "--bodies",
                    str(workdir / "good.jsonl"),
                    "--rate",
                    str(args.rate),
                    "--duration",
                    str(args.duration),
                    "--header",
                    f"Authorization: Bearer {polite_token}",
                ],
                stdout=subprocess.PIPE,
                text=True,
            )
            statuses = asyncio.run(hostile(url, hostile_token, hostile_bodies, args.concurrency, args.duration))
            out, _ = good.communicate(timeout=args.duration + 120)
            stop.set()
            sampler.join()
        well_behaved: dict[str, Any] = json.loads(out.strip().splitlines()[-1])
        result = {
            "benchmark": "serving-hostile",
            "measured_at": measured_at,
            "arguments": sys.argv[1:],
            "machine": {**info, "load_average_at_end": os.getloadavg()},
            "duration_s": args.duration,
            "hostile": {
                "concurrency": args.concurrency,
                "body_bytes": len(hostile_bodies[0]),
                "answers": dict(statuses),
            },
            "well_behaved": well_behaved,
            "rss_mib": {"idle": round(idle_rss, 1), "peak": round(peak[0], 1), "limit": CHART_MEMORY_LIMIT_MIB},
        }
        args.output.write_text(json.dumps(result, indent=2) + "\n")
        print(
            f"peak RSS {peak[0]:.0f} MiB (idle {idle_rss:.0f}, chart limit {CHART_MEMORY_LIMIT_MIB}); "
            f"well-behaved {args.rate:.0f}/s p99 {well_behaved['latency_ms']['p99']} ms, "
            f"{well_behaved['errors']} errors {well_behaved['error_kinds']}; hostile answers {dict(statuses)}; "
            f"load average {info['load_average_at_start'][0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end"
        )
    finally:
        data.delete()


if __name__ == "__main__":
    main()
