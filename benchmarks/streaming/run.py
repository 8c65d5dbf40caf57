"""Streaming benchmark: sustained events/s Kafka -> Spark -> Redis with the FinServe windows, and freshness
(event produced -> its window visible in Redis) p50/p95 at 10 TPS and at the highest sustained rate.

Runs against Kafka, the registry and Redis of its own (``benchmarks/private_stack.py``, a run directory
that is removed afterwards; the shared stack is not touched): one streaming job (``streamguard workload
stream``, Spark ``local[2]``) on a fresh 6-partition topic, fed by a paced producer in this process on the
same cores. Each phase produces at a target rate for ``--duration`` seconds; probe events on their own accounts
(event time = send time) measure freshness: a probe is visible when its 1-minute window hash exists in
Redis. A phase is *sustained* when the job drained it (the phase's last probe visible) within
``--drain-limit`` seconds of the phase's end and the probes' freshness did not keep growing.

    .venv/bin/python benchmarks/streaming/run.py [--rates 10,1000,2500,5000,10000] [--duration 60] [--baseline DIR]

``--baseline DIR`` first measures the job of another checkout (``git worktree add DIR <commit>``: its
``streamguard`` package is put first on the job's ``PYTHONPATH``) on the same private stack, then this one,
and reports both with the ratios. Prints a table and writes ``benchmarks/results/streaming.json``.
"""

import argparse
import json
import os
import random
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import redis

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.private_stack import private_stack  # noqa: E402
from streamguard.api.featureview import Entity, Feature, FeatureViewSpec  # noqa: E402
from streamguard.api.streamingwindow import (  # noqa: E402
    Aggregation,
    AvroContract,
    KafkaSource,
    StreamingWindowSpec,
    Window,
)
from streamguard.devstack.endpoints import Endpoints  # noqa: E402
from streamguard.devstack.machine import machine_facts  # noqa: E402
from streamguard.jobspec import StreamJob  # noqa: E402
from streamguard.onlinestore.tenancy import store_project  # noqa: E402
from streamguard.onlinestore.window_layout import window_key  # noqa: E402
from streamguard.windows import WindowShape  # noqa: E402
from streamguard.workloads.producer.events import TrafficProfile, generate  # noqa: E402
from streamguard.workloads.producer.kafka import TransactionSender, ensure_topic  # noqa: E402

RESULTS = REPO / "benchmarks" / "results" / "streaming.json"
CONTRACT = REPO / "examples" / "finserve" / "contracts" / "transaction-v1.avsc"
WINDOWS = [Window(name="1m", length="1m", slide="15s"), Window(name="5m", length="5m", slide="1m"),
           Window(name="1h", length="1h", slide="5m")]
AGGREGATIONS = [Aggregation(name="txn_count", function="count"),
                Aggregation(name="amount_sum", function="sum", field="amount"),
                Aggregation(name="amount_max", function="max", field="amount")]
ONE_MINUTE = WindowShape.parse("1m", "15s")
NAMESPACE = "bench"
"""The job's namespace: with the view's project, it names the store project its keys carry."""


@dataclass
class Phase:
    target_rate: float
    duration_s: float
    produced: int = 0
    produced_rate: float = 0.0
    probes: int = 0
    freshness_s: list[float] = field(default_factory=list)
    drain_s: float | None = None
    sustained: bool = False
    job_processed_rows_per_second: float | None = None
    job_cpu_seconds: float | None = None
    """CPU time the job (Python driver + Spark JVM) used during the phase and its drain."""
    events_per_job_cpu_second: float | None = None
    """Load-independent efficiency: what one fully available core would sustain."""
    job_batch_seconds_mean: float | None = None
    job_peak_rss_mb: float = 0.0
    """Highest resident memory of the job's process tree, sampled once a second during the phase and its drain."""

    def summary(self) -> dict[str, Any]:
        fresh = sorted(self.freshness_s)
        out = {k: v for k, v in asdict(self).items() if k != "freshness_s"}
        out["freshness_p50_s"] = _percentile(fresh, 50)
        out["freshness_p95_s"] = _percentile(fresh, 95)
        out["freshness_max_s"] = fresh[-1] if fresh else None
        out["probes_seen"] = len(fresh)
        return out


def _percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    index = min(len(values) - 1, max(0, round(pct / 100 * len(values) + 0.5) - 1))
    return round(values[index], 3)


class ProbeWatcher(threading.Thread):
    """Polls Redis for probes' 1-minute windows; records (seen - sent) for each."""

    def __init__(self, client: "redis.Redis", project: str, view: str) -> None:
        super().__init__(daemon=True)
        self.client, self.project, self.view = client, project, view
        self.pending: dict[bytes, tuple[float, Phase]] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def watch(self, account: str, event_ms: int, sent: float, phase: Phase) -> bytes:
        key = window_key(self.project, self.view, "1m", ONE_MINUTE.end_as_of(event_ms), {"account_id": account})
        with self.lock:
            self.pending[key] = (sent, phase)
        return key

    def outstanding(self, key: bytes) -> bool:
        with self.lock:
            return key in self.pending

    def run(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                keys = list(self.pending)
            if keys:
                pipe = self.client.pipeline(transaction=False)
                for key in keys:
                    pipe.exists(key)
                now = time.time()
                for key, found in zip(keys, pipe.execute(), strict=True):
                    if found:
                        with self.lock:
                            sent, phase = self.pending.pop(key)
                        phase.freshness_s.append(now - sent)
            time.sleep(0.05)


def _spec(topic: str, trigger: str) -> StreamingWindowSpec:
    return StreamingWindowSpec(
        feature_view="account-realtime", source=KafkaSource(topic=topic, starting_offsets="earliest"),
        contract=AvroContract(subject=f"{topic}-value", schema=CONTRACT.read_text()),  # type: ignore[call-arg]
        key_field="account_id", watermark="2m", trigger_interval=trigger, windows=WINDOWS,
        aggregations=AGGREGATIONS,
    )


def _job_metrics(port: int) -> dict[str, float]:
    import urllib.request

    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            text = response.read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            out[name.split("{")[0]] = float(value)
    return out


def _process_tree(root: int) -> dict[int, list[str]]:
    """The ``/proc/<pid>/stat`` fields (after the command name) of ``root`` and all its descendants."""
    stats: dict[int, list[str]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stats[int(entry.name)] = (entry / "stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
    tree, frontier = {root}, [root]
    while frontier:
        parent = frontier.pop()
        children = [pid for pid, fields in stats.items() if int(fields[1]) == parent and pid not in tree]
        tree.update(children)
        frontier.extend(children)
    return {pid: stats[pid] for pid in tree if pid in stats}


def process_tree_cpu_seconds(root: int) -> float:
    """utime + stime of ``root`` and all its descendants."""
    tick = os.sysconf("SC_CLK_TCK")
    return sum((int(f[11]) + int(f[12])) / tick for f in _process_tree(root).values())


def process_tree_rss_mb(root: int) -> float:
    """Resident memory of ``root`` and all its descendants (the JVM, the Python driver and workers)."""
    return sum(int(f[21]) for f in _process_tree(root).values()) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_phase(phase: Phase, sender: TransactionSender, watcher: ProbeWatcher, seed: int, port: int,
              drain_limit: float, job_pid: int) -> None:
    profile = TrafficProfile(rate=phase.target_rate, accounts=6000, burst_every_s=60, burst_duration_s=5,
                             burst_rate=min(100.0, phase.target_rate))
    before = _job_metrics(port)
    cpu_before = process_tree_cpu_seconds(job_pid)
    started = time.time()
    probe_every = 1.0
    next_probe = started
    last_probe: bytes | None = None
    rng = random.Random(seed)
    for emission in generate(profile, seed, int(started * 1000), duration_s=phase.duration_s):
        due = started + emission.send_offset_ms / 1000
        now = time.time()
        if due > now:
            time.sleep(due - now)
        event = emission.event
        event["event_time"] = int(time.time() * 1000)
        sender.send(event)
        phase.produced += 1
        if time.time() >= next_probe:
            account = f"probe-{seed}-{phase.probes}-{rng.randrange(10**6)}"
            sent = time.time()
            probe = {**event, "account_id": account, "event_time": int(sent * 1000)}
            sender.send(probe)
            last_probe = watcher.watch(account, probe["event_time"], sent, phase)
            phase.probes += 1
            next_probe += probe_every
            phase.job_peak_rss_mb = max(phase.job_peak_rss_mb, round(process_tree_rss_mb(job_pid)))
    sender.flush()
    ended = time.time()
    phase.produced_rate = round(phase.produced / max(ended - started, 1e-9), 1)
    deadline = ended + drain_limit * 4
    sampled = 0.0
    while last_probe is not None and watcher.outstanding(last_probe) and time.time() < deadline:
        if time.time() - sampled >= 1:
            phase.job_peak_rss_mb = max(phase.job_peak_rss_mb, round(process_tree_rss_mb(job_pid)))
            sampled = time.time()
        time.sleep(0.1)
    if last_probe is not None and not watcher.outstanding(last_probe):
        phase.drain_s = round(time.time() - ended, 2)
    after = _job_metrics(port)
    phase.job_cpu_seconds = round(process_tree_cpu_seconds(job_pid) - cpu_before, 2)
    if phase.job_cpu_seconds > 0:
        phase.events_per_job_cpu_second = round(phase.produced / phase.job_cpu_seconds, 1)
    phase.job_processed_rows_per_second = after.get("streamguard_stream_processed_rows_per_second")
    count = after.get("streamguard_stream_batch_duration_seconds_count", 0) - before.get(
        "streamguard_stream_batch_duration_seconds_count", 0)
    total = after.get("streamguard_stream_batch_duration_seconds_sum", 0) - before.get(
        "streamguard_stream_batch_duration_seconds_sum", 0)
    phase.job_batch_seconds_mean = round(total / count, 3) if count else None
    fresh = phase.freshness_s
    half = len(fresh) // 2
    growing = half >= 3 and statistics.median(fresh[half:]) > 2 * statistics.median(fresh[:half]) + 5
    phase.sustained = phase.drain_s is not None and phase.drain_s <= drain_limit and not growing


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rates", default="10,1000,2500,5000,10000", help="Target events/s per phase.")
    parser.add_argument("--duration", type=float, default=60.0, help="Seconds per phase.")
    parser.add_argument("--trigger", default="1s", help="The job's trigger interval.")
    parser.add_argument("--drain-limit", type=float, default=30.0, help="Max drain seconds to call a rate sustained.")
    parser.add_argument("--stop-after-failures", type=int, default=1, help="Stop after this many unsustained phases.")
    parser.add_argument("--baseline", type=Path, help="A checkout of the design to compare with, measured first.")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.baseline and not (args.baseline / "streamguard" / "workloads" / "streaming" / "job.py").exists():
        parser.error(f"--baseline {args.baseline}: not a StreamGuard checkout")
    facts = machine_facts()
    measured_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    with tempfile.TemporaryDirectory(prefix="sg-bench-stream-stack-") as tmp, private_stack(Path(tmp)) as (_, stack):
        baseline = None
        if args.baseline:
            print(f"== baseline: the job of {args.baseline}", flush=True)
            baseline = measure(args, stack, args.baseline)
            print("== this checkout", flush=True)
        result = measure(args, stack)
    if baseline is not None:
        result = {**result, "baseline": {"checkout": str(args.baseline), **baseline},
                  "ratios": ratios(baseline["phases"], result["phases"])}
    result = {"benchmark": "streaming", "measured_at": measured_at, "arguments": sys.argv[1:],
              "machine": {**facts, "load_average_at_end": os.getloadavg()}, **result}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result.get(k) for k in ("at_10_tps", "highest_sustained", "ratios")}, indent=2))
    print(f"written {args.output}")
    return 0


def ratios(baseline: list[dict[str, Any]], current: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Per target rate both designs ran: baseline / this checkout for freshness p95 and batch time (above 1:
    this one is faster), this checkout / baseline for events per job CPU-second (above 1: this one is cheaper)."""

    def over(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a and b else None

    before = {p["target_rate"]: p for p in baseline}
    return {f"{p['target_rate']:.0f}/s": {
        "freshness_p95": over(before[p["target_rate"]]["freshness_p95_s"], p["freshness_p95_s"]),
        "batch_seconds_mean": over(before[p["target_rate"]]["job_batch_seconds_mean"], p["job_batch_seconds_mean"]),
        "events_per_job_cpu_second": over(p["events_per_job_cpu_second"],
                                          before[p["target_rate"]]["events_per_job_cpu_second"]),
    } for p in current if p["target_rate"] in before}


def measure(args: argparse.Namespace, stack: Endpoints, checkout: Path | None = None) -> dict[str, Any]:
    """Start the job (of ``checkout`` when given) on ``stack``, run the phases, stop the job; the figures."""
    suffix = uuid.uuid4().hex[:8]
    topic, project = f"bench-{suffix}", f"bench{suffix}"
    spec = _spec(topic, args.trigger)
    view = FeatureViewSpec(project=project, entities=[Entity(name="account", join_key="account_id")],
                           features=[Feature(name=n, dtype="FLOAT64") for n in spec.feature_names()])
    work = Path(tempfile.mkdtemp(prefix="sg-bench-stream-"))
    port = _free_port()
    job_file = work / "job.json"
    job_file.write_text(StreamJob(namespace=NAMESPACE, name="bench", window=spec, view_name=spec.feature_view,
                                  view=view, subject=f"{topic}-value", checkpoint_dir=str(work / "checkpoint"),
                                  metrics_port=port).model_dump_json(by_alias=True, exclude_none=True))
    ensure_topic(stack.kafka_bootstrap, topic)
    sender = TransactionSender(stack.kafka_bootstrap, stack.registry_url, topic, CONTRACT.read_text())
    sender.send(next(generate(TrafficProfile(), 0, int(time.time() * 1000), count=1)).event)  # registers v1
    sender.flush()
    import subprocess

    env = {**os.environ, **stack.env()}
    env.pop("KUBECONFIG", None)
    if checkout is not None:
        env["PYTHONPATH"] = str(checkout.resolve())
    log = (work / "job.log").open("wb")
    # not this checkout's directory: Spark's Python workers (`python -m pyspark.daemon`) put theirs first on sys.path
    job = subprocess.Popen([str(Path(sys.executable).parent / "streamguard"), "workload", "stream", "--config",
                            str(job_file)], env=env, stdout=log, stderr=subprocess.STDOUT, cwd=work)
    client = redis.Redis.from_url(stack.redis_url)
    watcher = ProbeWatcher(client, store_project(NAMESPACE, project), spec.feature_view)
    watcher.start()
    phases: list[Phase] = []
    try:
        print(f"waiting for the job (log: {work / 'job.log'}) ...", flush=True)
        deadline = time.time() + 600
        while not _job_metrics(port).get("streamguard_stream_batch_duration_seconds_count") and time.time() < deadline:
            if job.poll() is not None:
                raise SystemExit(f"the job exited ({job.returncode}); see {work / 'job.log'}")
            time.sleep(2)
        failures = 0
        for i, rate in enumerate(float(r) for r in args.rates.split(",")):
            phase = Phase(rate, args.duration)
            phases.append(phase)
            run_phase(phase, sender, watcher, 1000 + i, port, args.drain_limit, job.pid)
            s = phase.summary()
            print(f"rate {rate:>8.0f}/s: produced {s['produced_rate']:>8.1f}/s, freshness p50 "
                  f"{s['freshness_p50_s']}s p95 {s['freshness_p95_s']}s, drain {s['drain_s']}s, batch mean "
                  f"{s['job_batch_seconds_mean']}s, job CPU {s['job_cpu_seconds']}s "
                  f"({s['events_per_job_cpu_second']} events/CPU-s), peak RSS {s['job_peak_rss_mb']} MB, "
                  f"sustained={s['sustained']}", flush=True)
            if not phase.sustained:
                failures += 1
                if failures >= args.stop_after_failures:
                    break
            time.sleep(5)
    finally:
        watcher.stop.set()
        job.terminate()
        try:
            job.wait(60)
        except subprocess.TimeoutExpired:
            job.kill()
    sustained = [p for p in phases if p.sustained]
    best = max(sustained, key=lambda p: p.produced_rate) if sustained else None
    low = next((p for p in phases if p.target_rate <= 10), None)
    return {
        "config": {"trigger": args.trigger, "windows": ["1m/15s", "5m/1m", "1h/5m"],
                   "aggregations": [a.name for a in AGGREGATIONS], "accounts": 6000, "partitions": 6,
                   "spark_master": os.environ.get("STREAMGUARD_SPARK_MASTER", "local[2]")},
        "target": {"events_per_second": 10000, "freshness_p95_s": 5.0},
        "phases": [p.summary() for p in phases],
        "at_10_tps": low.summary() if low else None,
        "highest_sustained": best.summary() if best else None,
    }


if __name__ == "__main__":
    sys.exit(main())
