"""Online store sizing and recovery: bytes per entity per view and per window, time to refill after a wipe.

Runs its own redis-server (no persistence, ``noeviction``) so nothing else shares the memory it measures.
For every FinServe batch view: a Parquet source with a daily row per entity over three days (the shape of
the profile tables; FinServe's entity counts at ``--scale``) is materialized with the real materializer;
the bytes per entity are ``MEMORY USAGE`` averaged over a sample of entity hashes, and the marginal bytes
per feature come from the same view reduced to one feature. Then ``FLUSHALL`` and the next run's backfill
is timed (the time from a wipe until the view is served again, besides waiting for its schedule).
For the StreamingWindow's windows: the pane hash per account the streaming job's script leaves (1-11 events
per account over the last hour, pruned at the watermark), its growth of ``used_memory`` per account.
Then the Redis time of the readers' generation checks. Last, the windows' time from a wipe until served
again: the real streaming job (FinServe's ``account-activity``) on a Kafka broker and registry of the
benchmark's own, fed the hour of FinServe traffic its longest window needs and then live traffic at
FinServe's rate; once caught up, ``FLUSHALL``; the time until the job has committed stream coverage in the
new generation (serving reads the windows as covered again), with the re-seed's own duration from the job's log.

    .venv/bin/python benchmarks/onlinestore/run.py --scale 1
"""

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import redis

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from streamguard.api.featureview import FeatureViewSpec  # noqa: E402
from streamguard.contracts.registry import API_PATH  # noqa: E402
from streamguard.demo.finserve_data import FinServeConfig  # noqa: E402
from streamguard.devstack.machine import machine_facts  # noqa: E402
from streamguard.devstack.private_redis import private_redis, private_redis_cluster  # noqa: E402
from streamguard.devstack.provision import artifacts  # noqa: E402
from streamguard.devstack.stack import Stack  # noqa: E402
from streamguard.devstack.supervisor import free_port  # noqa: E402
from streamguard.finserve.resources import EXAMPLES_DIR, Manifests, load_manifests  # noqa: E402
from streamguard.jobspec import StreamJob  # noqa: E402
from streamguard.onlinestore.client import Store  # noqa: E402
from streamguard.onlinestore.feast_layout import redis_key  # noqa: E402
from streamguard.onlinestore.generation import CURRENT_GENERATION, STREAM, generation_key  # noqa: E402
from streamguard.onlinestore.tenancy import DEFAULT_NAMESPACE, store_project  # noqa: E402
from streamguard.onlinestore.window_layout import StreamProgress, heartbeat_key  # noqa: E402
from streamguard.onlinestore.writers import ensure_generation, read_coverage  # noqa: E402
from streamguard.workloads.materialize.run import materialize_incremental  # noqa: E402
from streamguard.workloads.materialize.watermark import FileWatermark  # noqa: E402
from streamguard.workloads.producer.events import TrafficProfile, generate  # noqa: E402
from streamguard.workloads.producer.kafka import TransactionSender, ensure_topic, send_paced  # noqa: E402
from streamguard.workloads.streaming import panes  # noqa: E402
from streamguard.workloads.streaming.plan import StreamPlan, build  # noqa: E402
from streamguard.workloads.streaming.sink import RedisSink  # noqa: E402

BATCH_VIEWS = {
    "customer-profile": ("C", "customers"),
    "account-profile": ("A", "accounts"),
    "merchant-profile": ("M", "merchants"),
}
WINDOWS = "account-activity"
RUN_END = datetime(2026, 11, 2, tzinfo=UTC)
SAMPLE = 1000


def used_memory(client: redis.Redis) -> int:
    return int(cast(dict[str, Any], client.info("memory"))["used_memory"])


def mean_usage(client: Store, keys: list[bytes]) -> float:
    """Mean ``MEMORY USAGE`` (all fields counted: ``SAMPLES 0``) over ``keys``, each asked of its server."""
    sizes = [int(cast(int, size)) for key in keys if (size := client.memory_usage(key, samples=0)) is not None]
    return sum(sizes) / len(sizes)


def flush(masters: Sequence[redis.Redis]) -> None:
    for master in masters:
        master.flushall()


def source_table(spec: FeatureViewSpec, prefix: str, count: int, rng: np.random.Generator) -> pa.Table:
    """A daily row per entity over the three days before the run's end, values like FinServe's profiles."""
    ids = [f"{prefix}{i:06d}" for i in range(count)]
    days = [RUN_END - timedelta(days=d, hours=1) for d in (2, 1, 0)]
    rows = count * len(days)
    columns: dict[str, Any] = {
        spec.entities[0].join_key: ids * len(days),
        "event_timestamp": pa.array([d for d in days for _ in ids], pa.timestamp("us", tz="UTC")),
    }
    for feature in spec.features:
        if feature.dtype == "INT64":
            columns[feature.name] = pa.array(rng.integers(0, 400, rows), pa.int64())
        elif "ratio" in feature.name or "rate" in feature.name:
            columns[feature.name] = pa.array(rng.random(rows), pa.float64())
        else:
            columns[feature.name] = pa.array(np.round(rng.lognormal(4, 1, rows), 2), pa.float64())
    return pa.table(columns)


def measure_view(
    client: Store, masters: Sequence[redis.Redis], name: str, spec: FeatureViewSpec, prefix: str, count: int,
    work: Path, seed: int,
) -> dict[str, Any]:
    """``client`` one server (``masters`` = ``[client]``) or a cluster of those masters: ``used_memory`` growth is
    summed over them; ``MEMORY USAGE`` goes to each sampled key's master."""
    path = work / f"{name}.parquet"
    pq.write_table(source_table(spec, prefix, count, np.random.default_rng(seed)), path)
    assert spec.source is not None

    def materialize(project: str, view_spec: FeatureViewSpec, state: Path) -> tuple[float, float, float]:
        view_spec = view_spec.model_copy(
            update={"project": project, "source": view_spec.source.model_copy(update={"path": str(path)})}  # type: ignore[union-attr]
        )
        before = sum(used_memory(master) for master in masters)
        result = materialize_incremental(client, name, view_spec, FileWatermark(state), end=RUN_END)
        assert result.stats.written == count, f"{name}: wrote {result.stats.written} of {count} entities"
        keys = [
            redis_key(store_project(DEFAULT_NAMESPACE, project), {spec.entities[0].join_key: f"{prefix}{i:06d}"})
            for i in random.Random(seed).sample(range(count), min(SAMPLE, count))
        ]
        used = sum(used_memory(master) for master in masters) - before
        return mean_usage(client, keys), used / count, result.seconds

    project = f"size{uuid.uuid4().hex[:8]}"
    full, full_used, first_seconds = materialize(project, spec, work / f"{name}.json")
    one = spec.model_copy(update={"features": spec.features[:1]})
    single, _, _ = materialize(f"one{uuid.uuid4().hex[:8]}", one, work / f"{name}-one.json")
    per_feature = (full - single) / (len(spec.features) - 1)

    flush(masters)
    began = time.perf_counter()
    refill = materialize_incremental(
        client,
        name,
        spec.model_copy(update={"project": project, "source": spec.source.model_copy(update={"path": str(path)})}),
        FileWatermark(work / f"{name}.json"),
        end=RUN_END,
    )
    wipe_to_served = time.perf_counter() - began
    assert refill.stats.written == count, f"{name}: the backfill wrote {refill.stats.written} of {count}"
    flush(masters)
    return {
        "view": name,
        "entities": count,
        "features": len(spec.features),
        "bytes_per_entity": round(full, 1),
        "bytes_per_entity_used_memory": round(full_used, 1),
        "bytes_per_feature": round(per_feature, 1),
        "bytes_per_entity_base": round(single - per_feature, 1),
        "first_run_seconds": round(first_seconds, 3),
        "wipe_to_served_seconds": round(wipe_to_served, 3),
    }


def window_job(work: Path, project: str | None = None, topic: str | None = None) -> StreamJob:
    """FinServe's StreamingWindow as the job runs it (optionally in another project, on another topic)."""
    manifests = load_manifests(EXAMPLES_DIR)
    window = manifests.windows[WINDOWS]
    spec = window.spec
    if topic:
        spec = spec.model_copy(update={"source": spec.source.model_copy(update={"topic": topic})})
    view = manifests.feature_views[spec.feature_view].spec
    if project:
        view = view.model_copy(update={"project": project})
    return StreamJob(
        namespace="bench",
        name=WINDOWS,
        generation=1,
        window=spec,
        view_name=spec.feature_view,
        view=view,
        subject=spec.contract.subject,
        checkpoint_dir=str(work / "ck"),
        metrics_port=free_port(),
    )


def window_plan(work: Path) -> StreamPlan:
    return build(window_job(work))


def measure_windows(client: redis.Redis, accounts: int, work: Path, seed: int) -> list[dict[str, Any]]:
    """The job's pane hashes: each account with 1-11 events over the last hour (uniform), written through the
    job's own script at a watermark of now minus the plan's delay (what Spark's state and the script keep)."""
    plan = replace(window_plan(work), project=f"w{uuid.uuid4().hex[:8]}")
    rng = np.random.default_rng(seed)
    now = int(RUN_END.timestamp() * 1000)
    watermark = now - plan.watermark_ms
    columns = panes.partial_columns(plan)
    panes_of: dict[tuple[str, int, int], list[float]] = {}
    for i in range(accounts):
        for ts in rng.integers(now - 3_600_000, now, int(rng.integers(1, 12))):
            amount = float(np.round(rng.lognormal(4, 1), 2))
            for index, slide in enumerate(plan.slides):
                start = int(ts) - int(ts) % slide
                if start + plan.longest(slide) > watermark:
                    panes_of.setdefault((f"A{i:06d}", index, start), []).append(amount)
    frame: dict[str, list[Any]] = {panes.KEY: [], panes.SLIDE: [], panes.PANE: [], **{n: [] for n, _, _ in columns}}
    for (account, index, start), amounts in panes_of.items():
        frame[panes.KEY].append(account)
        frame[panes.SLIDE].append(index)
        frame[panes.PANE].append(start)
        for name, aggregation, _ in columns:
            frame[name].append(len(amounts) if aggregation.function == "count" else
                               round(sum(amounts), 2) if aggregation.function == "sum" else max(amounts))
    before = used_memory(client)
    RedisSink(client, plan).write_panes(frame, watermark, panes.NEVER)
    used = (used_memory(client) - before) / accounts
    keys = list(client.scan_iter(match=panes.pane_prefix(plan) + b"*", count=10000))[:SAMPLE]
    client.flushall()
    return [{
        "view": plan.view,
        "windows": [w.suffix for w in plan.windows],
        "aggregations": len(plan.aggregations),
        "events_per_account": "1-11 over the last hour",
        "panes_per_account": round(len(panes_of) / accounts, 1),
        "bytes_per_pane_hash": round(mean_usage(client, keys) if keys else 0.0, 1),
        "bytes_per_active_entity": round(used),
    }]


def measure_generation_check(client: redis.Redis, calls: int = 3000) -> dict[str, float]:
    """Redis time of the readers' checks: the marker per lookup (``HGET``), the identity per connection
    and health tick (``INFO server stats memory``), and the same check as one script (``CURRENT_GENERATION``)."""
    key = generation_key("bench")
    ensure_generation(client, "bench", int(time.time() * 1000))
    script = client.register_script(CURRENT_GENERATION)
    client.config_resetstat()
    pipe = client.pipeline(transaction=False)
    for _ in range(calls):
        pipe.hget(key, "id")  # type: ignore[arg-type]
        pipe.info("server")
        script(keys=[key], client=pipe)
    pipe.execute()
    stats = cast(dict[str, Any], client.info("commandstats"))
    client.config_resetstat()
    pipe = client.pipeline(transaction=False)
    for _ in range(calls):
        pipe.execute_command("INFO", "server", "stats", "memory")  # type: ignore[no-untyped-call]
    pipe.execute()
    info = cast(dict[str, Any], client.info("commandstats"))["cmdstat_info"]
    client.flushall()
    return {
        "marker_hget_usec": float(stats["cmdstat_hget"]["usec_per_call"]),
        "identity_info_usec": float(info["usec_per_call"]),
        "current_generation_script_usec": float(stats["cmdstat_evalsha"]["usec_per_call"]),
    }


def _wait(check: Any, timeout: float, what: str, job: subprocess.Popen[bytes], log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            found = check()
        except redis.RedisError:
            found = None
        if found:
            return found
        if job.poll() is not None:
            raise RuntimeError(f"the streaming job exited while waiting for {what}:\n{log.read_text()[-3000:]}")
        time.sleep(0.2)
    raise RuntimeError(f"timed out after {timeout}s waiting for {what}:\n{log.read_text()[-3000:]}")


def measure_window_recovery(client: redis.Redis, work: Path, seed: int) -> dict[str, Any]:
    """Wipe-to-served of FinServe's windows with the real job, Kafka and registry (private ones)."""
    services = Stack(work / "services")
    services.run_dir.mkdir(parents=True, exist_ok=True)
    try:
        services.restart("kafka")
        services.restart("apicurio-registry")
        ports = json.loads((services.run_dir / "ports.json").read_text())
        bootstrap = f"127.0.0.1:{ports['kafka']}"
        registry = f"http://127.0.0.1:{ports['registry']}{API_PATH}"
        job = window_job(work, project=f"wipe{uuid.uuid4().hex[:8]}", topic="finserve.transactions")
        plan = build(job)
        ensure_topic(bootstrap, plan.topic)
        history_s = (max(w.length_ms + w.slide_ms for w in plan.windows) + plan.watermark_ms) / 1000 + 300
        now = int(time.time() * 1000)
        profile = TrafficProfile()
        sender = TransactionSender(bootstrap, registry, plan.topic, job.window.contract.schema_, job.subject)
        history = send_paced(sender, generate(profile, seed, now - int(history_s * 1000), duration_s=history_s),
                             speed=0)
        stop = threading.Event()

        def live() -> None:
            for emission in generate(profile, seed + 1, int(time.time() * 1000), duration_s=3600):
                if stop.is_set():
                    break
                sender.send(emission.event)
                time.sleep(1 / profile.rate)
            sender.flush()

        config = work / "job.json"
        config.write_text(job.model_dump_json(by_alias=True, exclude_none=True))
        jars = sorted(str(p) for p in (artifacts()["spark-connectors"].directory / "jars").glob("*.jar"))
        port = client.connection_pool.connection_kwargs["port"]
        env = {**os.environ, "STREAMGUARD_KAFKA_BOOTSTRAP": bootstrap, "STREAMGUARD_REGISTRY_URL": registry,
               "STREAMGUARD_REDIS_URL": f"redis://127.0.0.1:{port}/0", "STREAMGUARD_SPARK_JARS": ",".join(jars)}
        env.pop("KUBECONFIG", None)
        log = work / "job.log"
        command = [str(Path(sys.executable).parent / "streamguard"), "workload", "stream", "--config", str(config)]
        feeder = threading.Thread(target=live, daemon=True)
        with log.open("ab") as out:
            process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            feeder.start()

            def caught_up() -> bool:
                record = StreamProgress.parse(client.hgetall(heartbeat_key(plan.project, plan.view)))  # type: ignore[arg-type]
                coverage = read_coverage(client, plan.project, plan.view, STREAM)
                return record is not None and record.state == "running" and coverage is not None

            began = time.perf_counter()
            _wait(caught_up, 1800, "the job caught up with the hour of history", process, log)
            caught_up_s = time.perf_counter() - began
            windows_before = sum(1 for _ in client.scan_iter(match=panes.pane_prefix(plan) + b"*", count=10_000))
            client.flushall()
            wiped = time.perf_counter()

            def served() -> bool:
                current = client.eval(CURRENT_GENERATION, 1, generation_key(plan.project))
                coverage = read_coverage(client, plan.project, plan.view, STREAM)
                return bool(current) and coverage is not None and coverage.generation == cast(bytes, current).decode()

            _wait(served, 600, "stream coverage in the new generation", process, log)
            wipe_to_served = time.perf_counter() - wiped
            windows_after = sum(1 for _ in client.scan_iter(match=panes.pane_prefix(plan) + b"*", count=10_000))
        finally:
            stop.set()
            process.terminate()
            process.wait(120)
            feeder.join(60)
        reseeds = re.findall(r"re-seeded (\d+) windows .* from (\d+) records .* in ([\d.]+)s", log.read_text())
        if not reseeds:
            raise RuntimeError(f"the job logged no re-seed:\n{log.read_text()[-3000:]}")
        windows, records, seconds = reseeds[-1]
        client.flushall()
        return {
            "view": plan.view,
            "history_s": round(history_s),
            "history_events": history,
            "live_rate_per_s": profile.rate,
            "first_catch_up_seconds": round(caught_up_s, 1),
            "pane_hashes_before_wipe": windows_before,
            "pane_hashes_after_reseed": windows_after,
            "reseed_replayed_records": int(records),
            "reseed_written_windows": int(windows),
            "reseed_seconds": float(seconds),
            "wipe_to_served_seconds": round(wipe_to_served, 1),
            "goal_seconds": 60,
        }
    finally:
        services.down()


def measure_batch(client: Store, masters: Sequence[redis.Redis], manifests: Manifests, config: FinServeConfig,
                  work: Path, seed: int) -> list[dict[str, Any]]:
    return [measure_view(client, masters, name, manifests.feature_views[name].spec, prefix, getattr(config, attr),
                         work, seed) for name, (prefix, attr) in BATCH_VIEWS.items()]


def print_batch(batch: list[dict[str, Any]], where: str = "") -> None:
    print(
        f"{'batch view' + where:<26}{'entities':>9}{'features':>9}{'B/entity':>10}{'B/used':>9}{'B/feature':>10}"
        f"{'refill s':>10}"
    )
    for row in batch:
        print(
            f"{row['view']:<26}{row['entities']:>9,}{row['features']:>9}{row['bytes_per_entity']:>10.0f}"
            f"{row['bytes_per_entity_used_memory']:>9.0f}"
            f"{row['bytes_per_feature']:>10.0f}{row['wipe_to_served_seconds']:>10.2f}"
        )


def batch_on_a_cluster(args: argparse.Namespace) -> None:
    """The batch views' hashes on one server and on a cluster of ``--cluster-masters`` masters, in the same run."""
    config = FinServeConfig(scale=args.scale)
    manifests = load_manifests(EXAMPLES_DIR)
    with tempfile.TemporaryDirectory(prefix="sg-onlinestore-") as tmp:
        work = Path(tmp)
        with private_redis(work / "server", "--maxmemory-policy", "noeviction") as client:
            version = cast(dict[str, Any], client.info("server"))["redis_version"]
            server = measure_batch(client, [client], manifests, config, work, args.seed)
        with private_redis_cluster(work / "cluster", masters=args.cluster_masters, replicas=0) as cluster:
            cluster_client = cluster.client()
            masters = [cluster.node(port) for port in cluster.ports]
            try:
                on_cluster = measure_batch(cluster_client, masters, manifests, config, work, args.seed)
            finally:
                cluster_client.close()
                for master in masters:
                    master.close()
    print(f"Redis {version}, FinServe scale {args.scale:g}")
    print_batch(server, " (one server)")
    print_batch(on_cluster, f" ({args.cluster_masters} masters)")
    write_report(args.out, "onlinestore-batch-cluster", machine_facts(), version, args.scale, {
        "masters": args.cluster_masters,
        "note": "the batch views' entity hashes written by the real materializer into one server and into a Redis "
        "Cluster (no replicas) in the same run; bytes_per_entity: MEMORY USAGE (SAMPLES 0) mean over up to 1000 "
        "keys, each asked of its master; *_used_memory: used_memory growth summed over the masters per entity",
        "server": server,
        "cluster": on_cluster,
    })


def write_report(out: Path, benchmark: str, machine: dict[str, Any], version: str, scale: float,
                 parts: dict[str, Any]) -> None:
    """The results JSON: what was measured where, then ``parts``, then the load average at the end."""
    report = {"benchmark": benchmark, "measured_at": datetime.now(UTC).isoformat(), "machine": machine,
              "redis_version": version, "scale": scale, **parts, "load_average_at_end": os.getloadavg()}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="FinServe scale (1 = 5k customers, 6k accounts)")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--cluster-masters", type=int, default=0,
                        help="measure only the batch views, on one server and on a Redis Cluster of this many masters")
    parser.add_argument("--out", type=Path, default=None,
                        help="default benchmarks/results/onlinestore.json (onlinestore-batch-cluster.json with "
                        "--cluster-masters)")
    args = parser.parse_args()
    if args.cluster_masters:
        args.out = args.out or REPO / "benchmarks" / "results" / "onlinestore-batch-cluster.json"
        batch_on_a_cluster(args)
        return
    args.out = args.out or REPO / "benchmarks" / "results" / "onlinestore.json"
    config = FinServeConfig(scale=args.scale)
    machine = machine_facts()
    manifests = load_manifests(EXAMPLES_DIR)
    with tempfile.TemporaryDirectory(prefix="sg-onlinestore-") as tmp:
        work = Path(tmp)
        with private_redis(work, "--maxmemory-policy", "noeviction") as client:
            version = cast(dict[str, Any], client.info("server"))["redis_version"]
            batch = measure_batch(client, [client], manifests, config, work, args.seed)
            windows = measure_windows(client, config.accounts, work, args.seed)
            check = measure_generation_check(client)
            recovery = measure_window_recovery(client, work, args.seed)
    print(f"Redis {version}, FinServe scale {args.scale:g}")
    print_batch(batch)
    print(f"{'windows':<18}{'panes':>9}{'B/hash':>9}{'B/active entity':>17}")
    for row in windows:
        print(f"{row['view']:<18}{row['panes_per_account']:>9}{row['bytes_per_pane_hash']:>9.0f}"
              f"{row['bytes_per_active_entity']:>17,}")
    print(
        f"Redis time per check: marker HGET {check['marker_hget_usec']:.1f} us (per lookup), "
        f"INFO server stats memory {check['identity_info_usec']:.1f} us (per connection and tick), "
        f"CURRENT_GENERATION script {check['current_generation_script_usec']:.1f} us"
    )
    print(
        f"windows wipe-to-served {recovery['wipe_to_served_seconds']:.1f}s (goal {recovery['goal_seconds']}s): "
        f"re-seed replayed {recovery['reseed_replayed_records']:,} records into "
        f"{recovery['reseed_written_windows']:,} windows in {recovery['reseed_seconds']:.1f}s"
    )
    write_report(args.out, "onlinestore", machine, version, args.scale, {
        "note": "MEMORY USAGE (SAMPLES 0) mean over up to 1000 keys per view or window; *_used_memory: growth of "
        "used_memory per key written (adds the keyspace and expiry dict entries: what maxmemory counts; "
        "bytes_per_active_entity uses it); bytes_per_feature is the "
        "marginal cost of one more batch feature in an entity hash; live_hashes_per_active_entity = "
        "ceil((length + key expiry) / slide) for an entity with events in every slide; wipe_to_served_seconds "
        "is the backfill run after FLUSHALL (the schedule's wait comes on top); window_recovery: the real streaming "
        "job fed history_s of FinServe traffic then live traffic at live_rate_per_s, FLUSHALL once caught up; "
        "wipe_to_served_seconds until the job committed stream coverage in the new generation (detection at "
        "the next batch + re-seed + the batch), reseed_seconds the Kafka replay and its writes alone",
        "batch": batch,
        "windows": windows,
        "generation_check": check,
        "window_recovery": recovery,
    })


if __name__ == "__main__":
    main()
