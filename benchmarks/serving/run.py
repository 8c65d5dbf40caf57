"""Serving latency at fixed request rates: StreamGuard's server vs Feast's feature server, same Redis data.

One request = one FinServe feature vector: the 22 features of ``examples/finserve`` (customer-profile 5,
account-profile 4, merchant-profile 4, account-realtime 9) for one random customer / account /
merchant. The data is written once under a throw-away project in a private Redis (``private_redis``):

- the three batch views in Feast's layout (read by both servers);
- account-realtime in the streaming job's pane layout with a caught-up progress record (read by ``streamguard``,
  which combines each window from its panes: a pane in every slide, as a busy account has) and
  the same values in Feast's layout (read by ``feast``, which cannot read the window layout, and by
  ``streamguard-feast-layout``, our server reading byte-for-byte what Feast reads).

The headline is like for like: ``feast`` against ``streamguard-feast-layout`` (the same Redis hashes), each
with ``--workers-per-core`` worker processes per core (Feast: ``feast serve --workers N --no-access-log
--max-requests 0``, its best configuration; ours: ``streamguard serve --workers N``), driven by the same
client with the same connection limit. ``streamguard`` (the window layout) is reported beside it, not
compared; ``streamguard-cluster`` (not in the default ``--servers``) is ``streamguard`` reading the same data
from a Redis Cluster of 3 masters on loopback (``private_redis_cluster``), for the cluster path's cost against
the single-node one. Servers run one at a time (never competing for the cores), each warmed up, then driven by the
open-loop generator (``loadgen.py``, its own process) at every rate. Percentiles are over every request
sent: errors and requests unanswered after ``--timeout`` seconds rank as +inf (``"miss"``). Before timing,
one vector from each server is compared value by value.

    .venv/bin/python benchmarks/serving/run.py [--rates 200,1000,3000] [--duration 15] [--pin]

``--pin`` runs the servers on core 0 and Redis and the load generator on the other cores.

Prints a table and writes ``benchmarks/results/serving.json`` (with the machine it ran on).
"""

import argparse
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import zlib
from collections.abc import Iterator, Mapping
from contextlib import ExitStack, contextmanager
from datetime import UTC, datetime
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import redis
import yaml

from streamguard.api.featureview import FeatureView
from streamguard.api.streamingwindow import StreamingWindow
from streamguard.devstack.machine import machine_facts
from streamguard.devstack.private_redis import private_redis, private_redis_cluster
from streamguard.devstack.supervisor import free_port
from streamguard.finserve.resources import load_manifests
from streamguard.onlinestore.client import Store
from streamguard.onlinestore.feast_layout import feature_field, redis_key, serialize_entity_key, timestamp_field
from streamguard.onlinestore.generation import BATCH, EVERYTHING_MS, STREAM
from streamguard.onlinestore.pane_layout import PaneShape, encode_pane, pane_field, pane_key
from streamguard.onlinestore.tenancy import DEFAULT_NAMESPACE, store_project
from streamguard.onlinestore.valueproto import encode_timestamp, encode_value
from streamguard.onlinestore.window_layout import StreamProgress, heartbeat_key
from streamguard.onlinestore.writers import commit_coverage, ensure_generation
from streamguard.serving.catalog import panes_of
from streamguard.windows import WindowShape

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
RESULTS = ROOT / "benchmarks" / "results" / "serving.json"
BIN = Path(sys.executable).parent
COUNTS = {"customer_id": ("C", 6, 5000), "account_id": ("A", 6, 6000), "merchant_id": ("M", 5, 800)}
STREAM_VIEW = "account-realtime"


def entity_ids(join_key: str, count: int) -> list[str]:
    prefix, width, total = COUNTS[join_key]
    return [f"{prefix}{i:0{width}d}" for i in range(min(count, total))]


def value_for(dtype: str, feature: str, entity: str) -> Any:
    """A deterministic value per (feature, entity)."""
    seed = (zlib.crc32(f"{feature}/{entity}".encode()) & 0xFFFF) + 1
    if dtype in ("INT64", "INT32"):
        return seed % 97
    if dtype in ("FLOAT64", "FLOAT32"):
        return round(seed / 7.0, 2)
    if dtype == "BOOL":
        return seed % 2 == 0
    return f"{feature}-{seed}"


class Data:
    """The FinServe views under a fresh project, and the Redis writes both servers read."""

    def __init__(self, client: redis.Redis, entities: int, horizon_s: int) -> None:
        self.client = client
        self.project = f"bench_{uuid.uuid4().hex[:10]}"
        self.keys = store_project(DEFAULT_NAMESPACE, self.project)
        """The store project serving reads (the manifests carry no namespace)."""
        manifests = load_manifests()
        self.views: dict[str, FeatureView] = {}
        for name, view in manifests.feature_views.items():
            self.views[name] = view.model_copy(update={"spec": view.spec.model_copy(update={"project": self.project})})
        self.window: StreamingWindow = manifests.windows[next(iter(manifests.windows))]
        assert self.window.spec.feature_view == STREAM_VIEW
        self.entities = entities
        self.horizon_s = horizon_s
        self.refs = [f"{n}:{f.name}" for n, v in sorted(self.views.items()) for f in v.spec.features]

    def manifests(self, with_window: bool) -> list[dict[str, Any]]:
        docs = [
            {"apiVersion": v.api_version, "kind": "FeatureView", "metadata": {"name": n}, "spec": v.spec.wire()}
            for n, v in sorted(self.views.items())
        ]
        if with_window:
            docs.append(
                {
                    "apiVersion": self.window.api_version,
                    "kind": "StreamingWindow",
                    "metadata": {"name": "account-activity"},
                    "spec": self.window.spec.wire(),
                }
            )
        return docs

    def write(self, other: Store | None = None) -> int:
        """Every view in Feast's layout for the sampled entities, plus account-realtime's windows, in a store
        generation every view covers (as the writers leave it after seeding); into ``other`` when given."""
        client = other or self.client
        now = time.time()
        now_ms = int(now * 1000)
        generation, _ = ensure_generation(client, self.keys, now_ms)
        stamp = encode_timestamp(datetime.fromtimestamp(now - 60, UTC))
        pipe = client.pipeline(transaction=False)
        writes = 0
        for name, view in self.views.items():
            join_key = view.spec.entities[0].join_key
            for entity in entity_ids(join_key, self.entities):
                mapping = {
                    feature_field(name, f.name): encode_value(f.dtype, value_for(f.dtype, f.name, entity))
                    for f in view.spec.features
                }
                mapping[timestamp_field(name)] = stamp
                pipe.hset(redis_key(self.keys, {join_key: entity}), mapping=mapping)  # type: ignore[arg-type]
                writes += 1
        pipe.execute()
        dtypes = {f.name: f.dtype for f in self.views[STREAM_VIEW].spec.features}
        prefix, shape = panes_of(STREAM_VIEW, self.views[STREAM_VIEW].spec, self.window.spec, self.keys)
        for entity in entity_ids("account_id", self.entities):
            key = pane_key(prefix, serialize_entity_key({"account_id": entity}))
            pipe.hset(key, mapping=self._panes(shape, dtypes, entity, now_ms))  # type: ignore[arg-type]
            pipe.expire(key, self.horizon_s + 600)
            writes += 1
            if writes % 2000 == 0:
                pipe.execute()
        pipe.hset(
            heartbeat_key(self.keys, STREAM_VIEW),  # type: ignore[arg-type]
            mapping=StreamProgress(processed_at_ms=now_ms, progress_at_ms=now_ms, newest_event_ms=now_ms, lag=0,
                                   watermark_ms=now_ms, batch_id=1, state="running").mapping(),  # caught up
        )
        pipe.execute()
        for name in self.views:
            for part in (BATCH, STREAM) if name == STREAM_VIEW else (BATCH,):
                if commit_coverage(client, self.keys, name, part, generation, EVERYTHING_MS) is None:
                    raise RuntimeError(f"the store's generation {generation} ended while the benchmark wrote its data")
        return writes

    def _panes(self, shape: PaneShape, dtypes: Mapping[str, str], entity: str, now_ms: int) -> dict[bytes, bytes]:
        """Every pane of the entity's windows over the horizon, as a busy account has them (a pane in every slide):
        in each window, one pane holds the feature's value and the others hold no event, so every window the
        horizon reads combines all of its panes into the value Feast's layout holds."""
        out = {}
        for w in self.window.spec.windows:
            window = WindowShape.parse(w.length, w.slide)
            span = window.length_ms // window.slide_ms
            first = window.end_as_of(now_ms) - window.length_ms
            last = window.end_as_of(now_ms + self.horizon_s * 1000) - window.slide_ms
            for start in range(first, last + 1, window.slide_ms):
                holds = start // window.slide_ms % span == 0
                partials: list[int | float | None] = []
                for _, agg, part in shape.partials():
                    feature = f"{agg.name}_{w.suffix}"
                    if part == "n":
                        partials.append((value_for(dtypes[feature], feature, entity) if agg.function == "count"
                                         else 1) if holds else 0)
                    else:
                        partials.append(value_for(dtypes[feature], feature, entity) if holds else None)
                field = pane_field(shape.slide_number(window.slide_ms), start)
                out[field] = encode_pane(partials)
        return out

    def bodies(self, count: int) -> tuple[list[str], list[str]]:
        """(ours, feast) request bodies for the same random entity rows."""
        rng = random.Random(7)
        ours, feast = [], []
        for _ in range(count):
            row = {k: rng.choice(entity_ids(k, self.entities)) for k in COUNTS}
            ours.append(json.dumps({"features": self.refs, "entities": [row]}))
            feast.append(json.dumps({"features": self.refs, "entities": {k: [v] for k, v in row.items()}}))
        return ours, feast

    def delete(self) -> None:
        for key in self.client.scan_iter(match=f"*{self.project}*", count=5000):
            self.client.delete(key)


def feast_repo(data: Data, folder: Path, redis_url: str) -> Path:
    """A Feast repository of the same four views (generated from the specs), applied."""
    from streamguard.feastrepo.repo import apply_repo, write_repo

    specs = {}
    for name, view in data.views.items():
        assert view.spec.source is not None
        path = folder / "sources" / Path(view.spec.source.path).name
        path.mkdir(parents=True, exist_ok=True)
        source = view.spec.source.model_copy(update={"path": str(path)})
        specs[name] = view.spec.model_copy(update={"source": source})
    repo = write_repo(folder / "feast", data.project, specs, redis_url, base_dir=folder)
    apply_repo(repo)
    return repo


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time of every live process in process group ``pgid`` (the server and its workers)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


def serve_command(config: Path, redis_url: str, port: int, workers: int, *extra: str) -> list[str]:
    """``streamguard serve`` of ``config`` on 127.0.0.1:``port``, with ``extra`` options."""
    return [str(BIN / "streamguard"), "serve", "--config", str(config), "--redis-url", redis_url,
            "--host", "127.0.0.1", "--port", str(port), "--workers", str(workers), *extra]


@contextmanager
def server(command: list[str], health_url: str, log: Path, timeout: float = 120,
           env: dict[str, str] | None = None) -> Iterator[int]:
    """Start a server process group (with ``env`` when given); yield its id once ``health_url`` answers 200;
    stop the group (our own PIDs only)."""
    with log.open("w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"{command[0]} exited with {process.returncode}: {log.read_text()[-2000:]}")
            try:
                if httpx.get(health_url, timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{' '.join(command)} did not answer {health_url} in {timeout:.0f}s")
            time.sleep(0.25)
        yield process.pid
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()


def vector(url: str, body: str, feast: bool) -> dict[str, Any]:
    """Feature name -> value of one response (Feast's column-major shape flattened)."""
    response = httpx.post(url, content=body, headers={"content-type": "application/json"}, timeout=10)
    response.raise_for_status()
    data = response.json()
    if feast:
        names = data["metadata"]["feature_names"]
        return {n: r["values"][0] for n, r in zip(names, data["results"], strict=True) if not n.endswith("_id")}
    row = data["results"][0]
    assert set(row["statuses"]) == {"present"}, row["statuses"]
    return {ref.split(":")[1]: v for ref, v in zip(data["features"], row["values"], strict=True)}


def load(url: str, bodies: Path, rate: float, duration: float, timeout: float, connections: int) -> dict[str, Any]:
    result = subprocess.run(
        [
            sys.executable,
            str(HERE / "loadgen.py"),
            "--url",
            url,
            "--bodies",
            str(bodies),
            "--rate",
            str(rate),
            "--duration",
            str(duration),
            "--timeout",
            str(timeout),
            "--connections",
            str(connections),
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=duration + timeout + 120,
    )
    figures: dict[str, Any] = json.loads(result.stdout.strip().splitlines()[-1])
    return figures


def machine() -> dict[str, Any]:
    return {
        **machine_facts(),
        "versions": {p: version(p) for p in ("fastapi", "uvicorn", "redis", "hiredis", "orjson", "feast")},
        "note": "load generator, servers and Redis share the same cores",
    }


def headline(results: dict[str, Any], rates: list[float]) -> dict[str, Any]:
    """Like for like: Feast's server vs ours over the same Feast-layout hashes, p99 per rate (ratio when both
    are latencies, not misses)."""
    rows: dict[str, Any] = {}
    for rate in rates:
        feast = results.get("feast", {}).get(str(int(rate)))
        ours = results.get("streamguard-feast-layout", {}).get(str(int(rate)))
        if feast is None or ours is None:
            continue
        feast_p99, ours_p99 = feast["latency_ms"]["p99"], ours["latency_ms"]["p99"]
        rows[str(int(rate))] = {
            "feast_p99_ms": feast_p99,
            "streamguard_p99_ms": ours_p99,
            "feast_misses": feast["misses"],
            "streamguard_misses": ours["misses"],
            "feast_over_streamguard_p99": (
                round(feast_p99 / ours_p99, 1)
                if isinstance(feast_p99, float) and isinstance(ours_p99, float) and ours_p99
                else None
            ),
        }
    return {"compared": "feast vs streamguard-feast-layout: same Redis hashes, workers, client", "p99_by_rps": rows}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", default="200,1000,3000", help="Comma-separated requests/s.")
    parser.add_argument("--duration", type=float, default=15.0, help="Seconds per rate.")
    parser.add_argument("--warmup", type=float, default=3.0)
    parser.add_argument("--entities", type=int, default=1000, help="Entities per join key written and asked for.")
    parser.add_argument("--workers-per-core", type=int, default=1, help="Worker processes per core, both servers.")
    parser.add_argument("--timeout", type=float, default=2.0, help="Seconds after which a request is a miss.")
    parser.add_argument("--connections", type=int, default=256, help="The client's connection limit.")
    parser.add_argument("--servers", default="feast,streamguard-feast-layout,streamguard")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--pin", action="store_true",
                        help="Servers on core 0, everything else (Redis, the load generator, this script) on the "
                             "other cores: a server's CPU then excludes what sharing a core with Redis costs it, "
                             "as on a machine of its own. Workers per core count the servers' one core.")
    args = parser.parse_args()
    rates = [float(r) for r in args.rates.split(",")]
    servers = args.servers.split(",")
    cores = os.cpu_count() or 1
    if args.pin:
        if cores < 2:
            parser.error("--pin needs 2 cores or more")
        os.sched_setaffinity(0, set(range(1, cores)))  # inherited by every process started from here
    workers = args.workers_per_core * (1 if args.pin else cores)
    pinned = ["taskset", "--cpu-list", "0"] if args.pin else []
    horizon = int(len(servers) * (len(rates) * (args.duration + 10) + args.warmup + 150))
    info = machine()
    measured_at = datetime.now(UTC).isoformat(timespec="seconds")
    workdir = Path(tempfile.mkdtemp(prefix="sg-bench-serving-"))
    stack = ExitStack()
    client = stack.enter_context(private_redis(workdir / "redis"))
    redis_url = f"redis://127.0.0.1:{client.connection_pool.connection_kwargs['port']}/0"
    data = Data(client, args.entities, horizon)
    results: dict[str, Any] = {}
    try:
        started = time.perf_counter()
        writes = data.write()
        print(f"wrote {writes} hashes under project {data.project} in {time.perf_counter() - started:.1f}s")
        cluster_url = None
        if "streamguard-cluster" in servers:
            cluster = stack.enter_context(private_redis_cluster(workdir / "redis-cluster", masters=3, replicas=0))
            cluster_url = cluster.url
            data.write(cluster.client())
            print(f"and the same into a Redis Cluster of 3 masters ({cluster_url})")
        ours_bodies, feast_bodies = data.bodies(2000)
        (workdir / "ours.jsonl").write_text("\n".join(ours_bodies) + "\n")
        (workdir / "feast.jsonl").write_text("\n".join(feast_bodies) + "\n")
        for name, with_window in (("streamguard", True), ("streamguard-feast-layout", False)):
            (workdir / f"{name}.yaml").write_text(yaml.safe_dump_all(data.manifests(with_window)))
        repo = feast_repo(data, workdir, redis_url) if "feast" in servers else None
        reference: dict[str, Any] | None = None
        for name in servers:
            port = free_port()
            if name == "feast":
                assert repo is not None
                command = [
                    str(BIN / "feast"),
                    "-c",
                    str(repo),
                    "serve",
                    "-h",
                    "127.0.0.1",
                    "-p",
                    str(port),
                    "--workers",
                    str(workers),
                    "--no-access-log",
                    "--max-requests",
                    "0",
                ]
                url, health, body_file = (
                    f"http://127.0.0.1:{port}/get-online-features",
                    f"http://127.0.0.1:{port}/health",
                    workdir / "feast.jsonl",
                )
            else:
                config = workdir / f"{'streamguard' if name == 'streamguard-cluster' else name}.yaml"
                store_url = cluster_url if name == "streamguard-cluster" else redis_url
                assert store_url is not None
                command = serve_command(config, store_url, port, workers,
                                        "--cache-staleness", "0",
                                        # the benchmark measures lookups, not auth, and its one load generator is
                                        # one client: no per-client rate
                                        "--insecure-no-auth", "--client-values-per-second", "0")
                url, health, body_file = (
                    f"http://127.0.0.1:{port}/features",
                    f"http://127.0.0.1:{port}/livez",
                    workdir / "ours.jsonl",
                )
            with server([*pinned, *command], health, workdir / f"{name}.log") as pgid:
                got = vector(url, (feast_bodies if name == "feast" else ours_bodies)[0], name == "feast")
                if reference is None:
                    reference = got
                elif got != reference:
                    diff = {
                        k: (reference.get(k), got.get(k))
                        for k in set(reference) | set(got)
                        if reference.get(k) != got.get(k)
                    }
                    raise RuntimeError(f"{name} returned other values than {servers[0]}: {diff}")
                load(url, body_file, 200, args.warmup, args.timeout, args.connections)
                results[name] = {}
                for rate in rates:
                    cpu_before = group_cpu_seconds(pgid)
                    figures = load(url, body_file, rate, args.duration, args.timeout, args.connections)
                    cpu = group_cpu_seconds(pgid) - cpu_before
                    figures["server_cpu_ms_per_request"] = round(1000 * cpu / max(1, figures["sent"]), 3)
                    results[name][str(int(rate))] = figures
                    lat = figures["latency_ms"]
                    print(
                        f"{name:26s} {rate:6.0f} rps  p50 {lat['p50']} ms  p99 {lat['p99']} ms  "
                        f"p99.9 {lat['p99.9']} ms  misses {figures['misses']}  achieved {figures['achieved_rps']}",
                        flush=True,
                    )
    finally:
        stack.close()
        shutil.rmtree(workdir, ignore_errors=True)
    report = {
        "benchmark": "serving",
        "measured_at": measured_at,
        "finished_at": datetime.now(UTC).isoformat(),
        "arguments": sys.argv[1:],
        "request": "one FinServe vector: 22 features, 3 entities (customer, account, merchant), 4 views",
        "duration_s_per_rate": args.duration,
        "workers_per_server": workers,
        "pinned": "servers on core 0, Redis and the load generator on the others" if args.pin else None,
        "client": {"generator": "loadgen.py (open loop)", "connections": args.connections, "timeout_s": args.timeout},
        "feast_config": f"feast serve --workers {workers} --no-access-log --max-requests 0",
        "our_config": f"streamguard serve --workers {workers} --cache-staleness 0 --insecure-no-auth "
        "--client-values-per-second 0",
        "percentiles": "over every request sent; errors and timeouts rank as +inf and read 'miss'",
        "machine": {**info, "load_average_at_end": os.getloadavg()},
        "results": results,
        "headline": headline(results, rates),
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(report, indent=2) + "\n")
    print(json.dumps(report["headline"], indent=2))
    print(f"written to {args.output}")


if __name__ == "__main__":
    main()
