"""Issue 12's acceptance, composed: the operator, the Spark job of the Deployment it renders and two real serving
Deployments, their pods containers of the project's images on the stack's node, against the stack's apiserver,
Kafka, registry and Redis. Serving is reached on 127.0.0.1 through ``kubectl port-forward``; the job's output is
read with ``kubectl logs``.

One serving Deployment requires every view (the default policy); the other declares the test's view advisory.
Nothing is emulated: the conditions are the operator's and the job's, the values and statuses are what serving
reads from the Redis the job writes.

- A StreamingWindow on a topic that does not exist: within the grace period ``Ready=False`` (``TopicMissing``),
  serving answers ``stale`` (never ``present``) well within the view's ``freshnessSla``, and ``/readyz`` fails
  only where the view is required. Once the topic is created and events arrive, the values turn ``present`` and
  equal the reference computation.
- The subject deleted from the registry behind the operator's back: the operator registers it again within its
  resync period; while the job dead-letters the records written with the id the registry no longer knows, the
  StreamingWindow is not Ready and serving says ``stale``; once records carry a known id again, all recovers.
"""

import contextlib
import dataclasses
import io
import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import fastavro
import httpx
import pytest
from confluent_kafka import Consumer, KafkaException, TopicPartition
from confluent_kafka.admin import AdminClient
from confluent_kafka.cimpl import NewTopic

from streamguard.api.streamingwindow import default_subject
from streamguard.contracts import wire
from streamguard.contracts.registry import SchemaRegistry
from streamguard.demo.manifests import redis_secret
from streamguard.devstack import image
from streamguard.devstack.chart import ServingDeployment, render_serving
from streamguard.devstack.endpoints import Endpoints
from streamguard.devstack.kube import port_forward
from streamguard.devstack.supervisor import Supervisor, free_port
from streamguard.windows import WindowShape, aggregate
from streamguard.workloads.producer.kafka import TransactionSender
from tests.operator import manifests
from tests.operator.conftest import Cluster, delete_behind_the_operators_back
from tests.operator.process import OperatorProcess
from tests.workloads.streaming.support import V1, V2, delete_topics

pytestmark = [pytest.mark.stack, pytest.mark.spark, pytest.mark.slow, pytest.mark.timeout(1200)]

VIEW = "device-activity"
SLA_SECONDS = 90
LENGTH, SLIDE = "1h", "5m"
"""Long enough that the events stay in the window however slowly a loaded machine starts Spark."""
FEATURES = [f"{VIEW}:txn_count_1h", f"{VIEW}:amount_sum_1h"]
ACCOUNTS = ("A1", "A2", "A3")
"""A3 gets no events: once the stream is caught up its window is the empty one (count 0, sum 0)."""
SMALL_STREAM = json.dumps({"requests": {"cpu": "250m", "memory": "1Gi"}, "limits": {"memory": "2Gi"}})
"""The stream's CPU request scaled down for the one 2-core node the whole suite shares (as the demo does)."""


# ---- the platform: the operator's pods on the node, two serving Deployments ----------------------------------


@pytest.fixture
def on_the_node(stack: Endpoints, cluster: Cluster, project_images: image.ProjectImages) -> dict[str, str]:
    """The operator's settings for pods on the node (the project's images, the stack's services at the addresses
    pods reach), and the Redis Secret those pods use (each workload's ServiceAccount is the operator's)."""
    cluster.apply(redis_secret(cluster.namespace, stack.pod_redis_url))
    return {"image": project_images.main.name, "spark_image": project_images.spark.name,
            "image_pull_policy": "Never", "kafka_bootstrap": stack.pod_kafka_bootstrap,
            "registry_url": stack.pod_registry_url, "operator_kafka_bootstrap": stack.kafka_bootstrap,
            "operator_registry_url": stack.registry_url, "stream_resources": SMALL_STREAM}


@dataclass
class Serving:
    """One serving Deployment, reached on 127.0.0.1 through its port-forward."""

    name: str
    url: str

    def lookup(self) -> dict[str, Any]:
        response = httpx.post(f"{self.url}/features", timeout=10,
                              json={"features": FEATURES, "entities": [{"account_id": a} for a in ACCOUNTS]})
        assert response.status_code == 200, f"{self.name}: {response.status_code} {response.text}"
        body: dict[str, Any] = response.json()
        return body

    def readyz(self) -> tuple[int, dict[str, Any]]:
        response = httpx.get(f"{self.url}/readyz", timeout=10)
        return response.status_code, response.json()


def _alive(url: str) -> bool:
    try:
        return httpx.get(f"{url}/livez", timeout=5).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture
def servings(stack: Endpoints, cluster: Cluster, on_the_node: dict[str, str],
             tmp_path: Path) -> Iterator[tuple[Serving, Serving]]:
    """Two serving Deployments of the project image, each forwarded to a port on 127.0.0.1: one requires every
    view (the default), the other declares the test's view advisory."""
    ns = cluster.namespace
    required = ServingDeployment(namespace=ns, auth_token_secret=None, name="serving-required",
                                 image=on_the_node["image"], image_pull_policy="Never", replicas=1, workers=1)
    deployments = (required, dataclasses.replace(required, name="serving-advisory", advisory_views=(VIEW,)))
    cluster.apply(*[o for d in deployments for o in render_serving(d)])
    forwards = Supervisor(tmp_path / "forwards")
    urls = []
    try:
        for deployment in deployments:
            port = free_port()
            port_forward(forwards, deployment.name, stack, ns, f"deployment/{deployment.name}", port, deployment.port)
            urls.append(f"http://127.0.0.1:{port}")
        for deployment, url in zip(deployments, urls, strict=True):
            cluster.wait_for(partial(_alive, url), 420, f"{deployment.name} answering /livez through its forward")
        yield Serving(deployments[0].name, urls[0]), Serving(deployments[1].name, urls[1])
    finally:
        for deployment in deployments:
            forwards.stop(deployment.name)


# ---- the resources -------------------------------------------------------------------------------------------


def feature_view(project: str, sla_seconds: int = SLA_SECONDS) -> dict[str, Any]:
    """A view filled only by its stream (no batch source), keyed by account."""
    view = manifests.feature_view(name=VIEW, windows=(LENGTH,), source=False)
    view["spec"].update(project=project, freshnessSla=f"{sla_seconds}s",
                        entities=[{"name": "account", "joinKey": "account_id"}])
    return view


def streaming_window(topic: str, partitions: int | None) -> dict[str, Any]:
    window = manifests.streaming_window(name=VIEW, view=VIEW, topic=topic, windows=((LENGTH, SLIDE),),
                                        schema=json.loads(V1), deletion_policy="Delete", partitions=partitions)
    window["spec"].update(keyField="account_id", triggerInterval="1s")
    return window


def conditions(cluster: Cluster) -> dict[str, dict[str, Any]]:
    window = cluster.get("streamingwindow", VIEW) or {}
    return {c["type"]: c for c in (window.get("status") or {}).get("conditions") or []}


def condition_is(cluster: Cluster, kind: str, status: str, reason: str | None = None) -> dict[str, Any] | None:
    found = conditions(cluster).get(kind)
    if found and found["status"] == status and (reason is None or found["reason"] == reason):
        return found
    return None


def until_condition(cluster: Cluster, kind: str, status: str, reason: str | None, timeout: float,
                    job_log: Callable[[], str]) -> dict[str, Any]:
    """Wait for the StreamingWindow's ``kind=status`` (``reason``); on timeout, fail with its conditions and the
    stream pod's log as they are then."""
    try:
        found: dict[str, Any] = cluster.wait_for(partial(condition_is, cluster, kind, status, reason), timeout,
                                                 f"{kind}={status} ({reason or 'any reason'})")
        return found
    except AssertionError as error:
        raise AssertionError(f"{error}\nconditions: {json.dumps(conditions(cluster), indent=1)}\n"
                             f"stream pod log:\n{job_log()}") from None


def event(account: str, age_s: float, amount: float) -> dict[str, Any]:
    return {"transaction_id": uuid.uuid4().hex, "account_id": account, "customer_id": "C1", "merchant_id": "M1",
            "amount": amount, "currency": "EUR", "channel": "ECOMMERCE",
            "event_time": int((time.time() - age_s) * 1000), "is_fraud": False}


def reference(events: list[dict[str, Any]], t_ms: int) -> list[list[Any]]:
    """Per account, the value at ``t`` of each feature by the time rule: the window containing ``t``, over the
    events before ``t`` (``streamguard.windows``, the definition the job, the batch side and serving share)."""
    shape = WindowShape.parse(LENGTH, SLIDE)
    end = shape.end_as_of(t_ms)
    rows = []
    for account in ACCOUNTS:
        amounts = [e["amount"] for e in events
                   if e["account_id"] == account and end - shape.length_ms <= e["event_time"] < t_ms]
        rows.append([aggregate("count", amounts), aggregate("sum", amounts)])
    return rows


def served(body: dict[str, Any]) -> tuple[list[list[str]], list[list[Any]]]:
    return [r["statuses"] for r in body["results"]], [r["values"] for r in body["results"]]


def until_present_and_correct(serving: Serving, events: list[dict[str, Any]] | Callable[[], list[dict[str, Any]]],
                              timeout: float, job_log: Callable[[], str]) -> list[list[Any]]:
    """Poll until every value is ``present`` and equal to the reference at the time of the lookup (serving's
    clock is read between the two ends of the request: the value at either end is right). ``events``: those
    to count, or a function telling them at each look."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        before = int(time.time() * 1000)
        statuses, values = served(serving.lookup())
        counted = events() if callable(events) else events
        expected = (reference(counted, before), reference(counted, int(time.time() * 1000)))
        last = (statuses, values, expected)
        if all(s == ["present", "present"] for s in statuses) and values in expected:
            return values
        assert all(set(s) <= {"stale", "present"} for s in statuses), statuses
        time.sleep(1)
    raise AssertionError(f"{serving.name}: not present and correct after {timeout:.0f}s: (statuses, values, "
                         f"expected) = {last}\njob log tail:\n{job_log()}")


def stream_log(cluster: Cluster) -> Callable[[], str]:
    """The last lines of each stream pod's output (``kubectl logs``)."""
    def tail() -> str:
        texts = []
        for pod in cluster.items("pods", selector="app.kubernetes.io/component=stream"):
            texts.append(cluster.kubectl("logs", "-n", cluster.namespace, pod["metadata"]["name"], "--tail=40",
                                         check=False).stdout)
        return "\n".join(texts) or "(no stream pod log)"
    return tail


# ---- acceptance ----------------------------------------------------------------------------------------------


def test_missing_topic_is_not_ready_and_stale_then_present_and_correct_once_created(
        start_operator: Callable[..., OperatorProcess], cluster: Cluster, servings: tuple[Serving, Serving],
        on_the_node: dict[str, str], stack: Endpoints) -> None:
    required, advisory = servings
    start_operator(probe_initial_delay_seconds="10", **on_the_node)
    suffix = uuid.uuid4().hex[:8]
    topic, project = f"composed-{suffix}", f"composed{suffix}"
    grace_s = 2 * 1 + 60  # the default: twice the trigger interval plus 60 s
    try:
        applied = time.monotonic()
        cluster.apply(feature_view(project), streaming_window(topic, partitions=None))

        ready = cluster.wait_for(lambda: condition_is(cluster, "Ready", "False", "TopicMissing"), 60,
                                 "Ready=False (TopicMissing)")
        assert time.monotonic() - applied < grace_s, "Ready=False must come within the grace period"
        assert repr(topic) in ready["message"]
        assert cluster.get("deployment", f"{VIEW}-stream") is not None, "the job is deployed and waits"

        # serving: stale from the first answer on (well within the SLA), readiness only where required
        for serving in (required, advisory):
            body = cluster.wait_for(partial(_stale_answer, serving), 60, f"{serving.name} answering stale")
            assert served(body)[1] == [[None, None]] * len(ACCOUNTS), "never written: null, never a present zero"
        assert time.monotonic() - applied < SLA_SECONDS, "stale while a heartbeat-based rule would say fresh"
        code, body = required.readyz()
        assert code == 503 and any(VIEW in reason for reason in body["reasons"]), body
        code, body = advisory.readyz()
        assert code == 200 and body["reasons"] == [], body
        assert any(VIEW in advisory_note for advisory_note in body["advisories"]), body

        # the job reports it once Spark has started in its container (slowly on a loaded machine)
        running = cluster.wait_for(lambda: condition_is(cluster, "StreamRunning", "False", "TopicMissing"), 420,
                                   "the job itself reporting TopicMissing")
        assert topic in running["message"]
        assert served(required.lookup())[0] == [["stale", "stale"]] * len(ACCOUNTS)

        # the topic is created (by its owner: the operator does not manage it); events arrive; the values
        # become present and correct
        admin = AdminClient({"bootstrap.servers": stack.kafka_bootstrap})
        admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(30)
        sender = TransactionSender(stack.kafka_bootstrap, stack.registry_url, topic, V1,
                                   default_subject(cluster.namespace, topic))
        events = [event("A1", 20, 12.5), event("A1", 12, 7.25), event("A2", 8, 100.0), event("A1", 3, 0.5)]
        for item in events:
            sender.send(item)
        sender.flush()

        job_log = stream_log(cluster)
        values = until_present_and_correct(required, events, 480, job_log)
        assert values[:2] == [[3, 20.25], [1, 100.0]] and values[2] == [0, 0.0]
        until_present_and_correct(advisory, events, 30, job_log)
        cluster.wait_for(lambda: condition_is(cluster, "Ready", "True"), 60, "Ready=True")
        assert condition_is(cluster, "StreamRunning", "True", "Running")
        assert condition_is(cluster, "TopicReady", "True")
        cluster.wait_for(lambda: required.readyz()[0] == 200, 30, "the required serving Ready again")
    finally:
        cluster.kubectl("delete", "-n", cluster.namespace, f"streamingwindow/{VIEW}", "--timeout=90s", check=False)
        for name in (topic, f"{topic}.dlq"):
            with contextlib.suppress(KafkaException):  # never created when the test failed early
                delete_topics(stack.kafka_bootstrap, name)


def _stale_answer(serving: Serving) -> dict[str, Any] | None:
    """The lookup once it says ``stale``. Before, serving's catalog may not have the view yet (400), or the
    job may not have written its first progress record yet (``not_found``: nothing known at all). It is
    never ``present``."""
    response = httpx.post(f"{serving.url}/features", timeout=10,
                          json={"features": FEATURES, "entities": [{"account_id": a} for a in ACCOUNTS]})
    if response.status_code == 400:  # the catalog does not have the view or its windows yet
        return None
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    statuses = {status for row in served(body)[0] for status in row}
    assert statuses <= {"not_found", "stale"}, body
    return body if statuses == {"stale"} else None


def dead_lettered(bootstrap: str, topic: str, schema: str) -> set[str]:
    """Transaction ids of every record in ``<topic>.dlq`` (the job copies the original record there): each
    partition read from its first offset up to its end."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"dlq-{uuid.uuid4().hex}",
                         "enable.auto.commit": False})
    parsed = fastavro.parse_schema(json.loads(schema))
    found: set[str] = set()
    try:
        metadata = consumer.list_topics(f"{topic}.dlq", timeout=10).topics[f"{topic}.dlq"]
        for partition in metadata.partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(f"{topic}.dlq", partition), timeout=10)
            consumer.assign([TopicPartition(f"{topic}.dlq", partition, low)])
            position = low
            while position < high:
                message = consumer.poll(5)
                assert message is not None and message.error() is None, "reading the dead-letter topic"
                position = (message.offset() or 0) + 1
                _, body = wire.unframe(message.value() or b"")
                record = fastavro.schemaless_reader(io.BytesIO(body), parsed, parsed)
                found.add(str(record["transaction_id"]))  # type: ignore[index,call-overload]
    finally:
        consumer.close()
    return found


def own_version(schema: str, suffix: str) -> str:
    """``schema`` with one more optional field named after ``suffix``: the registry holds its content under this
    test's subject alone, so deleting the subject makes its id unknown (the registry keeps an id while any
    subject, e.g. another test's, holds the same content)."""
    parsed = json.loads(schema)
    parsed["fields"].append({"name": f"trace_{suffix}", "type": ["null", "string"], "default": None})
    return json.dumps(parsed)


class Steady:
    """A producer that keeps sending one event every ``period`` seconds (with its cached schema id) until
    stopped; returns what it sent."""

    def __init__(self, sender: TransactionSender, period: float = 0.5) -> None:
        self.sender, self.period = sender, period
        self.sent: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        i = 0
        while not self._stop.wait(self.period):
            item = event(ACCOUNTS[i % 2], 0.5, 1.0 + i % 4)
            self.sender.send(item)
            self.sent.append(item)
            i += 1
        self.sender.flush()

    def start(self) -> "Steady":
        self._thread.start()
        return self

    def stop(self) -> list[dict[str, Any]]:
        self._stop.set()
        self._thread.join(60)
        return self.sent


def test_subject_deleted_behind_the_operators_back_is_registered_again_while_not_ready_and_stale(
        start_operator: Callable[..., OperatorProcess], cluster: Cluster, servings: tuple[Serving, Serving],
        on_the_node: dict[str, str], stack: Endpoints, registry_url: str) -> None:
    """The issue's second failure, replayed: the registry loses the subject and the job restarts (the stack was
    restarted). The producer keeps writing with the id of its own version (V2) that the registry no longer
    knows; the operator registers the contract (V1) again, not the producer's version. So the job dead-letters,
    and meanwhile the StreamingWindow must not be Ready and serving must say stale. When the producer registers
    its version again, the job decodes its records again and everything recovers; every event is either
    counted or in the dead-letter topic."""
    required, _ = servings
    resync_s, sla_s = 30, 30
    start_operator(probe_initial_delay_seconds="10", resync_seconds=str(resync_s), stream_grace_seconds="5",
                   unknown_schema_grace_seconds="0", dead_letter_window_seconds="15", **on_the_node)
    suffix = uuid.uuid4().hex[:8]
    topic, project = f"composed-{suffix}", f"composed{suffix}"
    subject = default_subject(cluster.namespace, topic)
    job_log = stream_log(cluster)
    try:
        cluster.apply(feature_view(project, sla_s), streaming_window(topic, partitions=1))
        cluster.wait("condition=Ready", f"streamingwindow/{VIEW}", timeout=60)
        cluster.wait_for(lambda: condition_is(cluster, "StreamRunning", "True"), 420, "the job running")
        v2 = own_version(V2, suffix)
        producer = TransactionSender(stack.kafka_bootstrap, stack.registry_url, topic, v2, subject)
        events = [event("A1", 5, 2.5), event("A2", 4, 4.0)]
        for item in events:
            producer.send(item)
        producer.flush()
        until_present_and_correct(required, events, 480, job_log)

        # behind the operator's back: the registry loses the subject, the job restarts (its checkpoint is on
        # the claim the operator renders by default, so it resumes where it was)
        delete_behind_the_operators_back(registry_url, subject, forgotten=producer.schema_id)
        deleted = time.monotonic()
        for pod in cluster.items("pods", selector="app.kubernetes.io/component=stream"):
            cluster.kubectl("delete", "pod", "-n", cluster.namespace, pod["metadata"]["name"], "--wait=false")
        steady = Steady(producer).start()  # keeps sending with V2's id, cached before the loss
        try:
            cluster.wait_for(lambda: httpx.get(f"{registry_url}/subjects/{subject}/versions").status_code == 200,
                             resync_s, "the operator registering the subject again within its resync period")
            assert time.monotonic() - deleted <= resync_s
            assert any(e["reason"] == "SchemaReregistered" for e in cluster.items("events"))

            ready = until_condition(cluster, "Ready", "False", "DeadLettering", 300, job_log)
            assert "unknown to the registry" in ready["message"], ready
            running = conditions(cluster)["StreamRunning"]
            assert (running["status"], running["reason"]) == ("False", "DeadLettering")
            stale = cluster.wait_for(
                lambda: (body := required.lookup()) and all(s == ["stale", "stale"] for s in served(body)[0])
                and body, sla_s + 30, "serving saying stale while records are dead-lettered")
            assert condition_is(cluster, "StreamRunning", "False", "DeadLettering"), "still dead-lettering"
            assert served(stale)[1][:2] != [[None, None], [None, None]], "stale keeps the value as last known"
            assert required.readyz()[0] == 503

        finally:
            sent = steady.stop()
        # the producer registers its version again: the job learns its id is known again and decodes it
        with SchemaRegistry(registry_url) as registry:
            registry.register(subject, v2)
        until_condition(cluster, "Ready", "True", None, 300, job_log)
        again = TransactionSender(stack.kafka_bootstrap, stack.registry_url, topic, v2, subject)
        recovered = [event("A1", 1, 16.0), event("A3", 1, 0.25)]
        for item in recovered:
            again.send(item)
        again.flush()
        everything = events + sent + recovered

        def counted() -> list[dict[str, Any]]:
            """Every event but the dead letters so far (the dead-letter query runs behind the windows one)."""
            lost = dead_lettered(stack.kafka_bootstrap, topic, v2)
            return [e for e in everything if e["transaction_id"] not in lost]

        until_present_and_correct(required, counted, 300, job_log)
        cluster.wait_for(lambda: required.readyz()[0] == 200, 30, "the required serving Ready again")
        # Each record is counted or dead-lettered, never both, never neither: dead letters are records sent while
        # the registry did not know their id, not those counted before the restart (the batch the restart
        # interrupted runs again with the verdict it first had) nor those sent once the id is known again.
        lost = dead_lettered(stack.kafka_bootstrap, topic, v2)
        assert lost and lost <= {e["transaction_id"] for e in sent}, "only records sent while the id was unknown"
        until_present_and_correct(required, counted, 30, job_log)
    finally:
        cluster.kubectl("delete", "-n", cluster.namespace, f"streamingwindow/{VIEW}", "--timeout=90s", check=False)
        for name in (topic, f"{topic}.dlq"):
            with contextlib.suppress(KafkaException):
                delete_topics(stack.kafka_bootstrap, name)
