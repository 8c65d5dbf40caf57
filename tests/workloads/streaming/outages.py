"""One outage scenario against the real stack, shared by tests/workloads/streaming/test_outages.py and
benchmarks/recovery/run.py: a StreamingWindow applied to the kube-apiserver, its job (reporting
``StreamRunning`` there), the real serving app reading the same Redis, live events with a few really
undecodable records among them, and the reference computation.

A dependency (the registry, the Kafka broker, Redis, the object store holding the job's checkpoint) is taken
away *before the job starts* and again *mid-stream*, each time for ``OUTAGE_S``. During each outage the scenario
records what the job's condition, its progress record and serving said; after each return, how long until
every (entity, window) equals the reference and serving answers ``present`` with those values.
"""

import io
import json
import os
import random
import signal
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
import redis
import yaml
from confluent_kafka import Consumer, TopicPartition
from fastapi.testclient import TestClient
from kubernetes import client

from streamguard.api.featureview import FeatureView
from streamguard.api.streamingwindow import StreamingWindow
from streamguard.contracts import wire
from streamguard.contracts.registry import SchemaRegistry
from streamguard.devstack import objectstore
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.stack import Stack
from streamguard.objectstore import Credentials, s3_filesystem
from streamguard.onlinestore.tenancy import store_project
from streamguard.serving.app import create_app
from streamguard.serving.settings import Settings
from streamguard.windows import WindowShape
from streamguard.workloads.producer.kafka import TransactionSender, ensure_topic
from streamguard.workloads.streaming.dead_letters import DeadLetter
from streamguard.workloads.streaming.progress import (
    CHECKPOINT_UNAVAILABLE,
    KAFKA_UNAVAILABLE,
    REGISTRY_UNAVAILABLE,
    STORE_UNAVAILABLE,
)
from tests.workloads.streaming.support import (
    AGGREGATIONS,
    NAMES,
    V2,
    JobProcess,
    delete_topics,
    end_offsets,
    job_in,
    online_mismatches,
    progress,
    view_spec,
    wait_for,
    window_spec,
)

OUTAGE_S = 60.0
"""How long a dependency stays away (issue 20)."""
HEAL_S = 30.0
"""Within this long of the dependency's return every window must be exact."""
SLA, SLA_S = "15s", 15.0
"""The view's freshness SLA: well inside an outage, so serving must say ``stale`` during it."""
ACCOUNTS = [f"acct-{i}" for i in range(4)]
HOUR = WindowShape.parse("1h", "5m")
EVENTS = 300
"""Good events per phase: the two undecodable records among them stay under the 1 % dead-letter threshold."""
REGISTRY, KAFKA, REDIS, OBJECT_STORE = "apicurio-registry", "kafka", "redis", "seaweedfs"


def event(rng: random.Random, account: str) -> dict[str, Any]:
    """A live transaction: event time a few seconds before now."""
    return {"transaction_id": uuid.uuid4().hex, "account_id": account, "customer_id": "C1", "merchant_id": "M1",
            "amount": round(rng.uniform(1, 500), 2), "currency": "EUR", "channel": "ECOMMERCE", "is_fraud": False,
            "event_time": int(time.time() * 1000) - rng.randrange(5_000), "amount_usd": None, "note": None}


def framed(schema: str, schema_id: int, payload: dict[str, Any]) -> bytes:
    """``payload`` written with ``schema`` and framed with ``schema_id`` (no registry needed)."""
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(json.loads(schema)), payload)
    return wire.frame(schema_id, body.getvalue())


def undecodable(schema_id: int, n: int) -> list[bytes]:
    """Records no registry can make readable: not the wire format, and a framed body that does not decode."""
    return [f"not an Avro record {n}".encode(), wire.frame(schema_id, b"\xff\xff\xff" + str(n).encode())]


def read_dead_letters(bootstrap: str, topic: str) -> list[DeadLetter]:
    """Every record of the dead-letter topic ``topic`` (none when it holds none)."""
    try:
        end = end_offsets(bootstrap, topic)
    except Exception:  # the topic does not exist: no dead letters
        return []
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"outage-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, "auto.offset.reset": "earliest"})
    out: list[DeadLetter] = []
    try:
        todo = {p: o for p, o in end.items() if o > 0}
        consumer.assign([TopicPartition(topic, p, 0) for p in todo])
        deadline = time.monotonic() + 60
        while todo and time.monotonic() < deadline:
            message = consumer.poll(1.0)
            if message is None or message.error() is not None:
                continue
            out.append(DeadLetter.of(message.headers(), message.key(), message.value()))
            partition, offset = message.partition(), message.offset()
            if partition is not None and offset is not None and offset + 1 >= todo.get(partition, 0):
                todo.pop(partition, None)
        assert not todo, f"could not read {topic} to its end"
    finally:
        consumer.close()
    return out


def start_object_store(stack: Stack) -> dict[str, str]:
    """Start SeaweedFS in ``stack`` (a private run directory) with the devstack's bucket; the ``AWS_*``
    environment of :mod:`streamguard.objectstore` that reaches it."""
    stack.restart(OBJECT_STORE)
    endpoint = f"http://127.0.0.1:{json.loads((stack.run_dir / 'ports.json').read_text())['s3']}"
    identity, _ = objectstore.ensure_identity(stack.run_dir / OBJECT_STORE)
    objectstore.ensure_bucket(identity, endpoint)
    credentials = identity.credentials(endpoint)
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_REGION": credentials.region,
            "AWS_ACCESS_KEY_ID": credentials.access_key, "AWS_SECRET_ACCESS_KEY": credentials.secret_key}


def kill(stack: Stack, name: str) -> None:
    """SIGKILL a stack service's whole process group: a crash, not a shutdown."""
    pid = stack.supervisor.running_pid(name)
    assert pid is not None, f"{name} is not running"
    os.killpg(pid, signal.SIGKILL)


@dataclass
class Observation:
    """What the job and serving said during one outage, and how the stream healed after it."""

    condition: dict[str, Any]
    state: str
    reason: str
    progress_frozen: bool | None
    """``None`` when the progress record is out of reach (it lives in Redis, and Redis is away)."""
    serving_statuses: list[str]
    serving_values: list[Any]
    readyz_status: int
    """Serving's ``/readyz`` answer (503: a required view is not fresh, or Redis is unreachable)."""
    view_health: dict[str, Any]
    """The view's entry in ``/readyz``: ``fresh``, ``stream_state`` (the progress record's), ``reason``."""
    lookup_status: int = 200
    """Serving's answer to the lookup (503: it refuses to answer while Redis is unreachable)."""
    restart_s: float = 0.0
    """How long the dependency took from its restart until it answered again (the registry its API, the broker
    a metadata request listing it): not part of ``heal_s``."""
    load_at_return: float = 0.0
    """The machine's 1-minute load average at the dependency's return."""
    heal_s: float = 0.0
    """From the dependency's return to every window exact."""
    serving_present_s: float = 0.0
    """From the dependency's return to serving answering ``present`` with the reference values."""


@dataclass
class Scenario:
    """A StreamingWindow on ``topic`` with its job, serving, the events sent and the dead letters expected."""

    stack: Endpoints
    kube: client.ApiClient | None
    """``None``: no kube-apiserver (the benchmark); the job's own progress record stands in for the condition."""
    redis_client: "redis.Redis"
    tmp: Path
    bootstrap: str
    registry_url: str
    schema: str
    redis_url: str = ""
    """The Redis the job and serving use (default: the stack's)."""
    seed: int = 20
    outage_s: float = OUTAGE_S
    namespace: str = field(default_factory=lambda: f"outage-{uuid.uuid4().hex[:8]}")
    sent: list[dict[str, Any]] = field(default_factory=list)
    garbage: set[bytes] = field(default_factory=set)
    checkpoint: str | None = None
    """The job's checkpoint location (``s3a://...``); ``None``: a folder in ``tmp``."""

    def __post_init__(self) -> None:
        self.topic = f"{self.namespace}-tx"
        self.project = self.namespace.replace("-", "")
        self.spec = window_spec(self.topic, self.schema, AGGREGATIONS, watermark="10m", trigger="1s")
        self.view = view_spec(self.spec, self.project).model_copy(update={"freshness_sla": SLA})
        self.rng = random.Random(self.seed)
        self.redis_url = self.redis_url or self.stack.redis_url

    # -- setup --------------------------------------------------------------------------------------------

    def apply(self) -> None:
        """The namespace, the FeatureView and the StreamingWindow in the kube-apiserver."""
        if self.kube is None:
            return
        core = client.CoreV1Api(self.kube)
        core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=self.namespace)))
        api = client.CustomObjectsApi(self.kube)
        for plural, body in zip(("featureviews", "streamingwindows"), self._manifests(), strict=True):
            api.create_namespaced_custom_object("streamguard.dev", "v1alpha1", self.namespace, plural, body)

    def _manifests(self) -> list[dict[str, Any]]:
        meta = {"namespace": self.namespace}
        return [FeatureView(metadata={**meta, "name": self.spec.feature_view}, spec=self.view).wire(),
                StreamingWindow(metadata={**meta, "name": "activity"}, spec=self.spec).wire()]

    def job(self, extra_env: dict[str, str]) -> JobProcess:
        kube = {"KUBECONFIG": self.stack.kubeconfig} if self.kube is not None else {}
        return job_in(self.tmp, self.stack, self.namespace, "activity", self.spec, self.view,
                      extra_env={**kube, "STREAMGUARD_REDIS_URL": self.redis_url, **extra_env},
                      checkpoint=self.checkpoint)

    @contextmanager
    def serving(self) -> Iterator[TestClient]:
        """The real serving app over the same Redis, configured with this view and its StreamingWindow."""
        path = self.tmp / "features.yaml"
        path.write_text(yaml.safe_dump_all(self._manifests(), sort_keys=False))
        settings = Settings.model_validate({"redis_url": self.redis_url, "config_file": str(path),
                                            "cache_staleness": 0.0, "insecure_no_auth": True})
        with TestClient(create_app(settings)) as http:
            yield http

    def cleanup(self) -> None:
        if self.kube is not None:
            client.CoreV1Api(self.kube).delete_namespace(self.namespace)

    # -- traffic ------------------------------------------------------------------------------------------

    def events(self, n: int) -> list[dict[str, Any]]:
        made = [event(self.rng, ACCOUNTS[i % len(ACCOUNTS)]) for i in range(n)]
        self.sent += made
        return made

    def junk(self, schema_id: int) -> list[bytes]:
        made = undecodable(schema_id, len(self.garbage))
        self.garbage.update(made)
        return made

    # -- what the job and serving say ---------------------------------------------------------------------

    def condition(self) -> dict[str, Any] | None:
        """The StreamingWindow's ``StreamRunning`` condition; without a kube-apiserver, the job's progress
        record (state and reason) in its place."""
        if self.kube is None:
            record = self.record()
            return record and {"status": "False" if record.state == "failing" else "True",
                               "reason": record.state, "message": record.reason}
        live: dict[str, Any] = client.CustomObjectsApi(self.kube).get_namespaced_custom_object(  # type: ignore[assignment]
            "streamguard.dev", "v1alpha1", self.namespace, "streamingwindows", "activity")
        found: dict[str, Any] | None = next((c for c in (live.get("status") or {}).get("conditions", [])
                                             if c["type"] == "StreamRunning"), None)
        return found

    def record(self) -> Any:
        return progress(self.redis_client, store_project(self.namespace, self.project), self.spec.feature_view)

    def lookup(self, http: TestClient) -> tuple[list[str], list[Any], int]:
        """Serving's statuses and values of ``txn_count_1h`` for every account, and the request time (ms)."""
        at = int(time.time() * 1000)
        response = http.post("/features", json={"features": [f"{self.spec.feature_view}:txn_count_1h"],
                                                "entities": [{"account_id": a} for a in ACCOUNTS]})
        assert response.status_code == 200, response.text
        results = response.json()["results"]
        return [r["statuses"][0] for r in results], [r["values"][0] for r in results], at

    def exact(self) -> bool:
        keys = store_project(self.namespace, self.project)
        return not online_mismatches(self.redis_client, keys, self.spec, self.sent, NAMES)

    def serving_exact(self, http: TestClient) -> bool:
        """Serving answers ``present`` with the reference's 1h count for every account."""
        statuses, values, at = self.lookup(http)
        end = HOUR.end_as_of(at)
        want = [sum(1 for e in self.sent if e["account_id"] == a and end - HOUR.length_ms <= e["event_time"] < at)
                for a in ACCOUNTS]
        return statuses == ["present"] * len(ACCOUNTS) and values == want

    def dead_letter_problems(self, job: JobProcess) -> list[str]:
        """Differences between the dead-letter topic and the undecodable records sent (duplicates from a
        replayed dead-letter batch carry the same origin and are allowed), once the dead-letter query has had
        time to catch up (it runs every 15 s)."""
        deadline = time.monotonic() + 90
        problems = self._dead_letter_problems()
        while problems and time.monotonic() < deadline and job.alive():
            time.sleep(3)
            problems = self._dead_letter_problems()
        return problems

    def _dead_letter_problems(self) -> list[str]:
        letters = read_dead_letters(self.bootstrap, self.topic + ".dlq")
        values = {letter.value for letter in letters}
        problems = [f"dead letter of a decodable record: {letter.reason} at {letter.origin}"
                    for letter in letters if letter.value not in self.garbage]
        problems += [f"undecodable record not dead-lettered: {v!r}" for v in self.garbage - values]
        if len({letter.origin for letter in letters}) != len(self.garbage & values):
            problems.append("dead letters with different origins for the same record")
        return problems

    # -- one outage ---------------------------------------------------------------------------------------

    def observe_outage(self, job: JobProcess, http: TestClient, down_since: float, reason: str) -> Observation:
        """While the dependency is away (since ``down_since``, monotonic): the condition turns ``reason``;
        once the SLA has passed, what the progress record, serving's lookups and its ``/readyz`` say. Returns
        when the dependency has been away for ``outage_s`` (or longer, when a slow job start made the
        observation take longer)."""
        wanted = reason if self.kube is not None else "failing"
        condition = wait_for(lambda: (c := self.condition()) and c["status"] == "False" and c["reason"] == wanted
                             and c, 180, f"StreamRunning=False {reason}", job)
        first = wait_for(self.record, 30, "the progress record", job)
        time.sleep(max(5.0, down_since + SLA_S + 10 - time.monotonic()))
        later = wait_for(self.record, 30, "the progress record", job)
        statuses, values, _ = self.lookup(http)
        readyz = http.get("/readyz")
        view = next(v for v in readyz.json()["views"] if v["view"] == self.spec.feature_view)
        time.sleep(max(0.0, down_since + self.outage_s - time.monotonic()))
        return Observation(condition=condition, state=later.state, reason=later.reason,
                           progress_frozen=later.progress_at_ms == first.progress_at_ms,
                           serving_statuses=statuses, serving_values=values, readyz_status=readyz.status_code,
                           view_health=view)

    def observe_store_outage(self, job: JobProcess, http: TestClient, down_since: float) -> Observation:
        """While Redis is away (since ``down_since``): the condition turns ``StoreUnavailable`` (with a
        kube-apiserver; without one there is nothing to read: the progress record lives in Redis), and once the
        SLA has passed, what serving answers a lookup and ``/readyz``."""
        condition: dict[str, Any] = {}
        if self.kube is not None:
            condition = wait_for(lambda: (c := self.condition()) and c["status"] == "False"
                                 and c["reason"] == STORE_UNAVAILABLE and c, 180,
                                 f"StreamRunning=False {STORE_UNAVAILABLE}", job)
        time.sleep(max(5.0, down_since + SLA_S + 10 - time.monotonic()))
        lookup = http.post("/features", json={"features": [f"{self.spec.feature_view}:txn_count_1h"],
                                              "entities": [{"account_id": a} for a in ACCOUNTS]})
        readyz = http.get("/readyz")
        views = [v for v in readyz.json().get("views", []) if v.get("view") == self.spec.feature_view]
        time.sleep(max(0.0, down_since + self.outage_s - time.monotonic()))
        return Observation(condition=condition, state="", reason="", progress_frozen=None, serving_statuses=[],
                           serving_values=[], readyz_status=readyz.status_code, view_health=views[0] if views else {},
                           lookup_status=lookup.status_code)

    def heal(self, job: JobProcess, http: TestClient, back_at: float, observed: Observation) -> Observation:
        """After the dependency's return (``back_at``, monotonic): until every window is exact, and serving
        says so (waits up to 5 min so a slow heal is measured rather than cut off)."""
        observed.load_at_return = os.getloadavg()[0]
        wait_for(self.exact, 300, "every window exact after the dependency returned", job, every=0.5)
        observed.heal_s = time.monotonic() - back_at
        wait_for(lambda: self.serving_exact(http), 300, "serving present and exact", job, every=0.5)
        observed.serving_present_s = time.monotonic() - back_at
        return observed



@dataclass
class Outcome:
    """Both outages of one dependency in one job run."""

    at_start: Observation
    mid_stream: Observation
    dead_letter_problems: list[str]
    job_alive: bool
    events: int


def _restart(stack: Stack, service: str) -> float:
    """Restart ``service``; how long until it was ready (``Stack.restart`` returns once it answers)."""
    began = time.monotonic()
    stack.restart(service)
    return time.monotonic() - began


def _restart_object_store(stack: Stack, store_env: dict[str, str]) -> float:
    """Restart SeaweedFS; how long until it was ready, i.e. took a write (its ports open first; writes wait
    until its volume server has reported to the master)."""
    began = time.monotonic()
    stack.restart(OBJECT_STORE)
    filesystem = s3_filesystem(Credentials.from_env(store_env))

    def writable() -> bool:
        with filesystem.open_output_stream(f"{objectstore.BUCKET}/ready/{uuid.uuid4().hex}") as out:
            out.write(b"ready")
        return True

    wait_for(writable, 120, "the object store taking a write again")
    return time.monotonic() - began


def _send(sender: TransactionSender, events: list[dict[str, Any]], junk: list[bytes]) -> None:
    """``events`` with ``junk`` in their middle."""
    half = len(events) // 2
    for item in events[:half]:
        sender.send(item)
    for raw in junk:
        sender.send_raw(ACCOUNTS[0], raw)
    for item in events[half:]:
        sender.send(item)


def registry_outages(run: Scenario, registry: Stack) -> Outcome:
    """The registry stopped before the job starts, then again while a new writer schema id arrives."""
    ensure_topic(run.bootstrap, run.topic)
    subject = run.spec.contract.subject or f"{run.topic}-value"
    with SchemaRegistry(run.registry_url) as client_:
        v1 = client_.register(subject, run.schema).id
    sender = TransactionSender(run.bootstrap, run.registry_url, run.topic, run.schema)
    run.apply()
    job = run.job({"STREAMGUARD_REGISTRY_URL": run.registry_url})
    try:
        _send(sender, run.events(EVENTS), run.junk(v1))
        sender.flush()
        with run.serving() as http:
            down = time.monotonic()
            registry.supervisor.stop(REGISTRY)
            job.start()
            at_start = run.observe_outage(job, http, down, REGISTRY_UNAVAILABLE)
            at_start.restart_s = _restart(registry, REGISTRY)
            at_start = run.heal(job, http, time.monotonic(), at_start)

            with SchemaRegistry(run.registry_url) as client_:
                v2 = client_.register(subject, V2).id
            down = time.monotonic()
            registry.supervisor.stop(REGISTRY)
            for item in run.events(EVENTS):  # written with a schema id the job has not met yet
                sender.send_raw(item["account_id"], framed(V2, v2, item))
            for raw in run.junk(v2):
                sender.send_raw(ACCOUNTS[1], raw)
            sender.flush()
            mid = run.observe_outage(job, http, down, REGISTRY_UNAVAILABLE)
            mid.restart_s = _restart(registry, REGISTRY)
            mid = run.heal(job, http, time.monotonic(), mid)
        return Outcome(at_start, mid, run.dead_letter_problems(job), job.alive(), len(run.sent))
    finally:
        job.stop()
        run.cleanup()
        delete_topics(run.bootstrap, run.topic, run.topic + ".dlq")


def broker_outages(run: Scenario, kafka: Stack) -> Outcome:
    """The broker SIGKILLed before the job starts, then again mid-stream while events keep being produced."""
    ensure_topic(run.bootstrap, run.topic)
    sender = TransactionSender(run.bootstrap, run.registry_url, run.topic, run.schema,
                               extra={"message.timeout.ms": 300_000, "retries": 1_000_000})
    run.apply()
    job = run.job({"STREAMGUARD_KAFKA_BOOTSTRAP": run.bootstrap})
    try:
        events = run.events(EVENTS)
        sender.send(events[0])
        sender.flush()
        with SchemaRegistry(run.registry_url) as client_:
            v1 = client_.version(run.spec.contract.subject or f"{run.topic}-value").id
        _send(sender, events[1:], run.junk(v1))
        sender.flush()
        with run.serving() as http:
            down = time.monotonic()
            kill(kafka, KAFKA)
            job.start()
            at_start = run.observe_outage(job, http, down, KAFKA_UNAVAILABLE)
            at_start.restart_s = _restart(kafka, KAFKA)
            at_start = run.heal(job, http, time.monotonic(), at_start)

            down = time.monotonic()
            kill(kafka, KAFKA)
            for item in run.events(EVENTS):  # buffered by the producer until the broker is back
                sender.send(item)
            mid = run.observe_outage(job, http, down, KAFKA_UNAVAILABLE)
            mid.restart_s = _restart(kafka, KAFKA)
            back = time.monotonic()
            sender.flush(120)
            mid = run.heal(job, http, back, mid)
        return Outcome(at_start, mid, run.dead_letter_problems(job), job.alive(), len(run.sent))
    finally:
        job.stop()
        run.cleanup()


def checkpoint_outages(run: Scenario, store: Stack, store_env: dict[str, str]) -> Outcome:
    """The object store holding the job's checkpoint (``run.checkpoint``, ``s3a://``) stopped before the job
    starts, then again mid-stream while events keep arriving."""
    assert run.checkpoint is not None and run.checkpoint.startswith("s3a://"), run.checkpoint
    return _outages_while_events_arrive(
        run, store_env, lambda: store.supervisor.stop(OBJECT_STORE),
        lambda job, http, down: run.observe_outage(job, http, down, CHECKPOINT_UNAVAILABLE),
        lambda: _restart_object_store(store, store_env))


def store_outages(run: Scenario, store: Stack) -> Outcome:
    """Redis SIGKILLed before the job starts, then again mid-stream while events keep coming; each time
    restarted after the outage (it reloads its append-only file; the job re-seeds what may have been lost)."""
    return _outages_while_events_arrive(run, {}, lambda: kill(store, REDIS), run.observe_store_outage,
                                        lambda: _restart(store, REDIS))


def _outages_while_events_arrive(run: Scenario, job_env: dict[str, str], take_away: Callable[[], object],
                                 observe: Callable[[JobProcess, TestClient, float], Observation],
                                 bring_back: Callable[[], float]) -> Outcome:
    """A dependency taken away before the job starts and brought back, then taken away again mid-stream while
    more events (and undecodable records) are sent. ``bring_back`` returns how long the restart took."""
    ensure_topic(run.bootstrap, run.topic)
    sender = TransactionSender(run.bootstrap, run.registry_url, run.topic, run.schema)
    run.apply()
    job = run.job(job_env)
    try:
        events = run.events(EVENTS)
        sender.send(events[0])
        sender.flush()
        with SchemaRegistry(run.registry_url) as client_:
            v1 = client_.version(run.spec.contract.subject or f"{run.topic}-value").id
        _send(sender, events[1:], run.junk(v1))
        sender.flush()
        with run.serving() as http:
            down = time.monotonic()
            take_away()
            job.start()
            at_start = observe(job, http, down)
            at_start.restart_s = bring_back()
            at_start = run.heal(job, http, time.monotonic(), at_start)

            down = time.monotonic()
            take_away()
            _send(sender, run.events(EVENTS), run.junk(v1))
            sender.flush()
            mid = observe(job, http, down)
            mid.restart_s = bring_back()
            mid = run.heal(job, http, time.monotonic(), mid)
        return Outcome(at_start, mid, run.dead_letter_problems(job), job.alive(), len(run.sent))
    finally:
        job.stop()
        run.cleanup()
        delete_topics(run.bootstrap, run.topic, run.topic + ".dlq")
