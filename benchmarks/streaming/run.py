"""Streaming benchmark: sustained events/s Kafka -> Spark -> Redis -> serving with the FinServe windows, and
freshness (event produced -> its window served over HTTP) p50/p95/p99 at every rate.

Runs against Kafka, the registry and Redis of its own (``benchmarks/private_stack.py``, a run directory
that is removed afterwards; the shared stack is not touched): one streaming job (``streamguard workload
stream``, Spark ``local[2]``) on a fresh 6-partition topic, fed by a paced producer in this process on the
same cores, and ``streamguard serve`` (one worker, the chart's default cache staleness) reading the view.
Before the measured phases, a warm-up phase (``--warm-up`` seconds at ``--warm-up-rate``, reported apart): the
job's JVM spends its first minutes compiling Spark's code (its JIT compiler threads took half a core at first,
a tenth after about five minutes at 10 events/s), which a job running for hours does not pay; each phase reports
the JIT compilers' CPU time. Each phase produces at a target rate for ``--duration`` seconds; probe events on their
own accounts (event time = send time) measure freshness twice: *served* when ``POST /features`` answers the probe's
``txn_count_1m`` as ``present`` (or ``partial`` while the job's first hour is incomplete) and at least 1, which is
what a model reads, and *in Redis* when its 15 s pane exists. A phase is *sustained* when the job
drained it (the phase's last probe served) within ``--drain-limit`` seconds of the phase's end and the probes'
freshness did not keep growing.

    .venv/bin/python benchmarks/streaming/run.py [--rates 10,5000,10000,20000] [--duration 30] [--baseline DIR]

``--baseline DIR`` first measures the job of another checkout (``git worktree add DIR <commit>``: its
``streamguard`` package is put first on the job's and serving's ``PYTHONPATH``: a design is served as it
shipped) on the same private stack, then this one, and reports both with the ratios. Prints a table and writes
``benchmarks/results/streaming.json``.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import sys
import tempfile
import threading
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import redis
import yaml

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))

from benchmarks.private_stack import private_stack  # noqa: E402
from benchmarks.serving.run import serve_command, server  # noqa: E402
from streamguard.api.common import API_VERSION  # noqa: E402
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
from streamguard.devstack.supervisor import free_port  # noqa: E402
from streamguard.jobspec import StreamJob  # noqa: E402
from streamguard.onlinestore.feast_layout import serialize_entity_key  # noqa: E402
from streamguard.onlinestore.pane_layout import PaneShape, pane_field, pane_key  # noqa: E402
from streamguard.onlinestore.tenancy import store_project  # noqa: E402
from streamguard.serving.catalog import panes_of  # noqa: E402
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
PROBE_FEATURE = "txn_count_1m"
SERVED = ("present", "partial")
"""Statuses under which a model reads the value as it is (``partial``: the window began before the job's data)."""
CACHE_STALENESS_S = 1.0
"""Serving's ``--cache-staleness``: the chart's default (``serving.cacheStaleness``)."""


@dataclass
class Phase:
    target_rate: float
    duration_s: float
    produced: int = 0
    produced_rate: float = 0.0
    probes: int = 0
    freshness_s: list[float] = field(default_factory=list)
    """Seconds from a probe's send to its value served over HTTP."""
    redis_freshness_s: list[float] = field(default_factory=list)
    """Seconds from a probe's send to its pane existing in Redis."""
    drain_s: float | None = None
    sustained: bool = False
    job_processed_rows_per_second: float | None = None
    job_cpu_seconds: float | None = None
    """CPU time the job (Python driver + Spark JVM) used during the phase and its drain."""
    events_per_job_cpu_second: float | None = None
    """Load-independent efficiency: what one fully available core would sustain."""
    redis_cpu_seconds: float | None = None
    """CPU time Redis used meanwhile (``INFO cpu``, its children included: the write scripts run in Redis, and
    the append-only file's rewrites in a child)."""
    events_per_cpu_second: float | None = None
    """Events per CPU-second of the job and Redis together."""
    job_jit_cpu_seconds: float | None = None
    """Of :attr:`job_cpu_seconds`, the CPU time of the JVM's JIT compiler threads (C1 and C2)."""
    job_batch_seconds_mean: float | None = None
    job_peak_rss_mb: float = 0.0
    """Highest resident memory of the job's process tree, sampled once a second during the phase and its drain."""
    serving_errors: int = 0
    """Probe lookups serving did not answer with 200 (each retried at the next poll)."""

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items() if k not in ("freshness_s", "redis_freshness_s")}
        for prefix, values in (("freshness", self.freshness_s), ("redis_freshness", self.redis_freshness_s)):
            ordered = sorted(values)
            for pct in (50, 95, 99):
                out[f"{prefix}_p{pct}_s"] = _percentile(ordered, pct)
            out[f"{prefix}_max_s"] = round(ordered[-1], 3) if ordered else None
        out["probes_seen"] = len(self.freshness_s)
        return out


def _percentile(values: list[float], pct: float) -> float | None:
    if not values:
        return None
    index = min(len(values) - 1, max(0, round(pct / 100 * len(values) + 0.5) - 1))
    return round(values[index], 3)


@dataclass
class Probe:
    pane: tuple[bytes, bytes]
    """The pane hash and field of its 15 s pane (the first pane of its 1-minute window to hold it)."""
    sent: float
    phase: Phase
    in_redis: bool = False


class ProbeWatcher(threading.Thread):
    """Polls for probes every 50 ms: their pane in Redis (this checkout's pane layout: a baseline of another
    layout reports no "in Redis" figure), then their ``txn_count_1m`` through serving's ``POST /features`` (all
    pending probes in one request); records (seen - sent) of each."""

    def __init__(self, client: "redis.Redis", panes: tuple[bytes, PaneShape], view: str, serving_url: str) -> None:
        super().__init__(daemon=True)
        self.client, self.panes, self.view = client, panes, view
        self.http = httpx.Client(base_url=serving_url, timeout=5)
        self.pending: dict[str, Probe] = {}
        self.lock = threading.Lock()
        self.stop = threading.Event()

    def watch(self, account: str, event_ms: int, sent: float, phase: Phase) -> str:
        prefix, shape = self.panes
        pane = (pane_key(prefix, serialize_entity_key({"account_id": account})),
                pane_field(shape.slide_number(ONE_MINUTE.slide_ms), event_ms - event_ms % ONE_MINUTE.slide_ms))
        with self.lock:
            self.pending[account] = Probe(pane, sent, phase)
        return account

    def outstanding(self, account: str) -> bool:
        with self.lock:
            return account in self.pending

    def _served(self, accounts: list[str], phase: Phase) -> list[str]:
        """The accounts whose probe serving answers as a model would read it."""
        body = {"features": [f"{self.view}:{PROBE_FEATURE}"], "entities": [{"account_id": a} for a in accounts]}
        try:
            response = self.http.post("/features", json=body)
        except httpx.TransportError:
            phase.serving_errors += 1
            return []
        if response.status_code != 200:
            phase.serving_errors += 1
            return []
        rows = response.json()["results"]
        return [a for a, row in zip(accounts, rows, strict=True)
                if row["statuses"][0] in SERVED and (row["values"][0] or 0) >= 1]

    def run(self) -> None:
        while not self.stop.is_set():
            with self.lock:
                probes = dict(self.pending)
            if probes:
                unseen = [p for p in probes.values() if not p.in_redis]
                pipe = self.client.pipeline(transaction=False)
                for probe in unseen:
                    pipe.hexists(*probe.pane)  # type: ignore[arg-type]
                now = time.time()
                for probe, found in zip(unseen, pipe.execute() if unseen else [], strict=True):
                    if found:
                        probe.in_redis = True
                        probe.phase.redis_freshness_s.append(now - probe.sent)
                now = time.time()
                for account in self._served(list(probes), next(iter(probes.values())).phase):
                    with self.lock:
                        probe = self.pending.pop(account)
                    if not probe.in_redis:
                        probe.phase.redis_freshness_s.append(now - probe.sent)
                    probe.phase.freshness_s.append(now - probe.sent)
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


def _cpu_seconds(fields: list[str]) -> float:
    """utime + stime of one ``/proc/<pid>[/task/<tid>]/stat`` (its fields after the command name)."""
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def process_tree_cpu_seconds(root: int) -> float:
    """utime + stime of ``root`` and all its descendants."""
    return sum(_cpu_seconds(f) for f in _process_tree(root).values())


JIT_THREADS = ("C1 CompilerThre", "C2 CompilerThre")
"""How a HotSpot JVM names its JIT compiler threads (``/proc/<pid>/task/<tid>/comm``, cut at 15 characters)."""


def jit_cpu_seconds(root: int) -> float:
    """utime + stime of the JIT compiler threads of every process under ``root`` (the Spark JVM's)."""
    total = 0.0
    for pid in _process_tree(root):
        for task in Path(f"/proc/{pid}/task").glob("*"):
            try:
                if (task / "comm").read_text().strip().startswith(JIT_THREADS):
                    total += _cpu_seconds((task / "stat").read_text().rpartition(")")[2].split())
            except OSError:
                continue
    return total


def redis_cpu_seconds(client: "redis.Redis") -> float:
    """User + system CPU time of the Redis server and its children so far."""
    info = cast(dict[str, Any], client.info("cpu"))
    return sum(float(info[f"used_cpu_{kind}"]) for kind in ("user", "sys", "user_children", "sys_children"))


def process_tree_rss_mb(root: int) -> float:
    """Resident memory of ``root`` and all its descendants (the JVM, the Python driver and workers)."""
    return sum(int(f[21]) for f in _process_tree(root).values()) * os.sysconf("SC_PAGE_SIZE") / 2**20


def run_phase(phase: Phase, sender: TransactionSender, watcher: ProbeWatcher, seed: int, port: int,
              drain_limit: float, job_pid: int) -> None:
    profile = TrafficProfile(rate=phase.target_rate, accounts=6000, burst_every_s=60, burst_duration_s=5,
                             burst_rate=min(100.0, phase.target_rate))
    before = _job_metrics(port)
    cpu_before = process_tree_cpu_seconds(job_pid)
    jit_before = jit_cpu_seconds(job_pid)
    redis_before = redis_cpu_seconds(watcher.client)
    started = time.time()
    probe_every = 1.0
    next_probe = started
    last_probe: str | None = None
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
    phase.job_jit_cpu_seconds = round(jit_cpu_seconds(job_pid) - jit_before, 2)
    if phase.job_cpu_seconds > 0:
        phase.events_per_job_cpu_second = round(phase.produced / phase.job_cpu_seconds, 1)
    phase.redis_cpu_seconds = round(redis_cpu_seconds(watcher.client) - redis_before, 2)
    if phase.job_cpu_seconds + phase.redis_cpu_seconds > 0:
        phase.events_per_cpu_second = round(phase.produced / (phase.job_cpu_seconds + phase.redis_cpu_seconds), 1)
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
    parser.add_argument("--rates", default="10,5000,10000,20000", help="Target events/s per phase.")
    parser.add_argument("--duration", type=float, default=30.0, help="Seconds per phase.")
    parser.add_argument("--warm-up", type=float, default=180.0,
                        help="Seconds of the unmeasured warm-up phase before the measured ones (0: none).")
    parser.add_argument("--warm-up-rate", type=float, default=2000.0, help="Target events/s of the warm-up phase.")
    parser.add_argument("--runs", type=int, default=3, help="Runs of each design (alternating); medians reported.")
    parser.add_argument("--trigger", default="1s", help="The job's trigger interval.")
    parser.add_argument("--drain-limit", type=float, default=30.0, help="Max drain seconds to call a rate sustained.")
    parser.add_argument("--stop-after-failures", type=int, default=4, help="Stop after this many unsustained phases.")
    parser.add_argument("--baseline", type=Path, help="A checkout of the design to compare with, measured first.")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.baseline and not (args.baseline / "streamguard" / "workloads" / "streaming" / "job.py").exists():
        parser.error(f"--baseline {args.baseline}: not a StreamGuard checkout")
    facts = machine_facts()
    measured_at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    load_at_start = os.getloadavg()
    runs: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="sg-bench-stream-stack-") as tmp, private_stack(Path(tmp)) as (_, stack):
        for n in range(1, args.runs + 1):
            run: dict[str, Any] = {}
            if args.baseline:
                print(f"== run {n}/{args.runs}: the baseline, the job of {args.baseline}", flush=True)
                run["baseline"] = measure(args, stack, args.baseline)
            print(f"== run {n}/{args.runs}: this checkout", flush=True)
            run["current"] = measure(args, stack)
            runs.append(run)
    summary: dict[str, Any] = {design: medians([r[design]["phases"] for r in runs]) for design in runs[0]}
    if args.baseline:
        summary["ratios"] = ratios(summary["baseline"], summary["current"])
    result = {"benchmark": "streaming", "measured_at": measured_at, "arguments": sys.argv[1:],
              "machine": {**facts, "load_average_at_start": load_at_start, "load_average_at_end": os.getloadavg()},
              "baseline_checkout": str(args.baseline) if args.baseline else None, "medians": summary, "runs": runs}
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    for design in ("baseline", "current"):
        for row in summary.get(design, []):
            print(f"{design:>8} {row['target_rate']:>7.0f}/s: served p50/p95/p99 {row.get('freshness_p50_s')}/"
                  f"{row.get('freshness_p95_s')}/{row.get('freshness_p99_s')} s, in Redis p95 "
                  f"{row.get('redis_freshness_p95_s')} s, {row.get('events_per_job_cpu_second')} events/job CPU-s, "
                  f"{row.get('events_per_cpu_second')} events/(job + Redis) CPU-s, "
                  f"peak RSS {row.get('job_peak_rss_mb')} MB, sustained in {row['sustained_runs']}/{row['runs']} runs")
    print(json.dumps(summary.get("ratios"), indent=2))
    print(f"written {args.output}")
    return 0


def medians(runs: list[list[dict[str, Any]]]) -> list[dict[str, Any]]:
    """Per target rate, the median over the runs that reached it of each numeric figure of its phase, and in how
    many of them it was sustained."""
    by_rate: dict[float, list[dict[str, Any]]] = {}
    for phases in runs:
        for phase in phases:
            by_rate.setdefault(phase["target_rate"], []).append(phase)
    out = []
    for rate, phases in sorted(by_rate.items()):
        row: dict[str, Any] = {"target_rate": rate, "runs": len(phases),
                               "sustained_runs": sum(bool(p["sustained"]) for p in phases)}
        for key in phases[0]:
            numbers = [p[key] for p in phases if type(p.get(key)) in (int, float)]
            if key not in row and numbers:
                row[key] = round(statistics.median(numbers), 3)
        out.append(row)
    return out


FASTER = {"freshness_p95": "freshness_p95_s", "freshness_p99": "freshness_p99_s",
          "batch_seconds_mean": "job_batch_seconds_mean"}
"""Ratio -> the figure it compares, lower is better."""
CHEAPER = ("events_per_job_cpu_second", "events_per_cpu_second")
"""Figures compared as ratios of their own name, higher is better."""


def ratios(baseline: list[dict[str, Any]], current: list[dict[str, Any]]) -> dict[str, dict[str, float | None]]:
    """Per target rate both designs ran: baseline / this checkout for served freshness p95, p99 and batch time
    (above 1: this one is faster); this checkout / baseline for events per job CPU-second and per job + Redis
    CPU-second (above 1: this one is cheaper)."""

    def over(a: float | None, b: float | None) -> float | None:
        return round(a / b, 2) if a and b else None

    before = {p["target_rate"]: p for p in baseline}
    out = {}
    for p in current:
        if (b := before.get(p["target_rate"])) is not None:
            out[f"{p['target_rate']:.0f}/s"] = {
                **{name: over(b.get(field), p.get(field)) for name, field in FASTER.items()},
                **{name: over(p.get(name), b.get(name)) for name in CHEAPER},
            }
    return out


def _print_phase(label: str, phase: Phase) -> None:
    s = phase.summary()
    print(f"{label}: produced {s['produced_rate']:>8.1f}/s, freshness p50 "
          f"{s['freshness_p50_s']}s p95 {s['freshness_p95_s']}s p99 {s['freshness_p99_s']}s (in Redis: p95 "
          f"{s['redis_freshness_p95_s']}s), drain {s['drain_s']}s, batch mean "
          f"{s['job_batch_seconds_mean']}s, job CPU {s['job_cpu_seconds']}s (JIT {s['job_jit_cpu_seconds']}s; "
          f"{s['events_per_job_cpu_second']} events/CPU-s), Redis CPU {s['redis_cpu_seconds']}s, "
          f"peak RSS {s['job_peak_rss_mb']} MB, sustained={s['sustained']}", flush=True)


def _manifests(spec: StreamingWindowSpec, view: FeatureViewSpec) -> list[dict[str, Any]]:
    """The view and its window as serving's ``--config`` reads them, in the job's namespace."""
    return [{"apiVersion": API_VERSION, "kind": kind, "metadata": {"name": name, "namespace": NAMESPACE},
             "spec": resource.wire()}
            for kind, name, resource in (("FeatureView", spec.feature_view, view), ("StreamingWindow", "bench", spec))]


def measure(args: argparse.Namespace, stack: Endpoints, checkout: Path | None = None) -> dict[str, Any]:
    """Start the job (of ``checkout`` when given) on ``stack``, run the phases, stop the job; the figures."""
    suffix = uuid.uuid4().hex[:8]
    topic, project = f"bench-{suffix}", f"bench{suffix}"
    spec = _spec(topic, args.trigger)
    view = FeatureViewSpec(project=project, entities=[Entity(name="account", join_key="account_id")],
                           features=[Feature(name=n, dtype="FLOAT64") for n in spec.feature_names()])
    work = Path(tempfile.mkdtemp(prefix="sg-bench-stream-"))
    port = free_port()
    job_file = work / "job.json"
    job_file.write_text(StreamJob(namespace=NAMESPACE, name="bench", window=spec, view_name=spec.feature_view,
                                  view=view, subject=f"{topic}-value", checkpoint_dir=str(work / "checkpoint"),
                                  metrics_port=port).model_dump_json(by_alias=True, exclude_none=True))
    redis.Redis.from_url(stack.redis_url).flushall()  # each design starts on an empty store, as a fresh stack would
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
    serving_port = free_port()
    serving_config = work / "serving.yaml"
    serving_config.write_text(yaml.safe_dump_all(_manifests(spec, view)))
    serving = serve_command(serving_config, stack.redis_url, serving_port, 1, "--insecure-no-auth",
                            "--cache-staleness", str(CACHE_STALENESS_S))
    client = redis.Redis.from_url(stack.redis_url)
    watcher = ProbeWatcher(client, panes_of(spec.feature_view, view, spec, store_project(NAMESPACE, project)),
                           spec.feature_view, f"http://127.0.0.1:{serving_port}")
    watcher.start()
    phases: list[Phase] = []
    warm_up: Phase | None = None
    try:
        with server(serving, f"http://127.0.0.1:{serving_port}/livez", work / "serving.log", env=env):
            print(f"waiting for the job (log: {work / 'job.log'}) ...", flush=True)
            deadline = time.time() + 600
            while (not _job_metrics(port).get("streamguard_stream_batch_duration_seconds_count")
                   and time.time() < deadline):
                if job.poll() is not None:
                    raise SystemExit(f"the job exited ({job.returncode}); see {work / 'job.log'}")
                time.sleep(2)
            if args.warm_up > 0:
                warm_up = Phase(args.warm_up_rate, args.warm_up)
                run_phase(warm_up, sender, watcher, 999, port, args.drain_limit, job.pid)
                _print_phase("warm-up", warm_up)
                time.sleep(5)
            failures = 0
            for i, rate in enumerate(float(r) for r in args.rates.split(",")):
                phase = Phase(rate, args.duration)
                phases.append(phase)
                run_phase(phase, sender, watcher, 1000 + i, port, args.drain_limit, job.pid)
                _print_phase(f"rate {rate:>8.0f}/s", phase)
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
    shutil.rmtree(work, ignore_errors=True)  # its job log and checkpoint stay only when the run failed
    sustained = [p for p in phases if p.sustained]
    best = max(sustained, key=lambda p: p.produced_rate) if sustained else None
    low = next((p for p in phases if p.target_rate <= 10), None)
    return {
        "config": {"trigger": args.trigger, "windows": ["1m/15s", "5m/1m", "1h/5m"],
                   "aggregations": [a.name for a in AGGREGATIONS], "accounts": 6000, "partitions": 6,
                   "spark_master": os.environ.get("STREAMGUARD_SPARK_MASTER", "local[2]"),
                   "warm_up": {"seconds": args.warm_up, "events_per_second": args.warm_up_rate}},
        "serving": {"workers": 1, "cache_staleness_s": CACHE_STALENESS_S,
                    "probe": f"{spec.feature_view}:{PROBE_FEATURE}"},
        "targets": [{"events_per_second": 10000, "freshness_p95_s": 2.0},
                    {"events_per_second": 20000, "freshness_p95_s": 5.0}],
        "warm_up": warm_up.summary() if warm_up else None,
        "phases": [p.summary() for p in phases],
        "at_10_tps": low.summary() if low else None,
        "highest_sustained": best.summary() if best else None,
    }


if __name__ == "__main__":
    sys.exit(main())
